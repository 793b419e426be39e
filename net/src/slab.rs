//! A table whose ids are never reused: an id names one entry for ever, so a handle kept by the
//! application (a `TcpStream` whose connection the stack reclaimed) can never reach a newer
//! entry. Entries live in a B-tree keyed by a serial number, so iteration is oldest first and
//! the memory of a peak (a thousand connections at once) is given back as entries go.

use alloc::collections::BTreeMap;

/// An entry's id: a serial number unique over the table's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Id(u64);

pub(crate) struct Slab<T> {
    entries: BTreeMap<u64, T>,
    serial: u64,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: BTreeMap::new(),
            serial: 0,
        }
    }
}

impl<T> Slab<T> {
    pub(crate) fn insert(&mut self, value: T) -> Id {
        self.serial += 1;
        self.entries.insert(self.serial, value);
        Id(self.serial)
    }

    pub(crate) fn get(&self, id: Id) -> Option<&T> {
        self.entries.get(&id.0)
    }

    pub(crate) fn get_mut(&mut self, id: Id) -> Option<&mut T> {
        self.entries.get_mut(&id.0)
    }

    pub(crate) fn remove(&mut self, id: Id) -> Option<T> {
        self.entries.remove(&id.0)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Id, &T)> {
        self.entries.iter().map(|(k, v)| (Id(*k), v))
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.entries.values_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_and_stale_ids_find_nothing() {
        let mut s = Slab::default();
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_ne!(a, b);
        assert_eq!(s.get(a), None);
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.len(), 1);
        let c = s.insert("c");
        let order: alloc::vec::Vec<_> = s.iter().map(|(id, _)| id).collect();
        assert_eq!(order, [b, c], "oldest first");
    }
}
