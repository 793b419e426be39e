//! The key-value store (cargo feature `kv`): `fata-kv` on one of the platform's disks.
//!
//! ```ignore
//! let store = fata::kv::open().await?;       // the disk named by the `disk` key
//! store.put(b"greeting", b"hello").await?;   // returns once durable
//! let v = store.get(b"greeting").await?;     // Some(b"hello".to_vec())
//! ```
//! A blank disk is formatted only with `format=true` on the boot command line; a disk holding
//! anything else is refused and left untouched. See `docs/storage.md` for the format, the
//! guarantees and the limits.

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
pub use fata_kv::{
    CacheMode, Entry, Error, MAX_KEY, MAX_RECORD, MAX_VALUE, OpenOptions, Stats, Write,
};

/// The store on a fata disk.
pub type Store = fata_kv::Store<crate::block::Disk>;

crate::config! {
    /// Keys of images built with the store.
    #[derive(Clone)]
    pub(crate) struct KvKeys {
        /// The disk the store lives on (disk0 is the first disk attached).
        disk: String = "disk0",
        /// Format the disk if it is blank (a disk holding anything else is never formatted).
        format: bool = false,
    }
}

static KEYS: crate::single::Local<spin::Once<KvKeys>> = crate::single::Local(spin::Once::new());

/// Every store opened, by disk name, without keeping any open: for `fata::metrics`.
type Opened = Vec<(String, fata_kv::WeakStore<crate::block::Disk>)>;
static OPENED: crate::single::Local<RefCell<Opened>> =
    crate::single::Local(RefCell::new(Vec::new()));

/// The figures of every store still open, with its disk's name.
pub(crate) fn open_stats() -> Vec<(String, Stats)> {
    let mut opened = OPENED.0.borrow_mut();
    opened.retain(|(_, w)| w.stats().is_some());
    opened
        .iter()
        .filter_map(|(n, w)| Some((n.clone(), w.stats()?)))
        .collect()
}

pub(crate) fn set_keys(k: KvKeys) {
    KEYS.0.call_once(|| k);
}

/// Why the store could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The disk could not be acquired.
    Disk(crate::block::OpenError),
    /// The store on it could not be opened.
    Store(Error),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Disk(e) => write!(f, "kv: {e}"),
            OpenError::Store(e) => write!(f, "kv: {e}"),
        }
    }
}

/// Opens the store on the disk named by the `disk` key, formatting a blank disk if the
/// `format` key is set; starts its committer task.
pub async fn open() -> Result<Store, OpenError> {
    let k = KEYS
        .0
        .get()
        .cloned()
        .unwrap_or_else(<KvKeys as crate::config::Config>::defaults);
    open_on(&k.disk, k.format).await
}

/// Opens the store on disk `name` (see [`open`]).
pub async fn open_on(name: &str, format: bool) -> Result<Store, OpenError> {
    let disk = crate::block::open(name).map_err(OpenError::Disk)?;
    let started = crate::time::Instant::now();
    let opts = OpenOptions {
        format,
        store_id: store_id(),
    };
    let (store, committer) = Store::open(disk, opts).await.map_err(OpenError::Store)?;
    crate::spawn(committer.run());
    OPENED.0.borrow_mut().push((name.into(), store.downgrade()));
    let s = store.stats();
    log::info!(
        "kv: {name}: {} keys, {} of {} bytes of log in use, generation {}, {} records recovered in {} ms, values up to {} bytes",
        s.keys,
        s.log_bytes,
        s.region_bytes,
        s.generation,
        s.recovered_records,
        started.elapsed().as_millis(),
        s.max_value
    );
    match s.cache {
        Some(CacheMode::NoFlush) => log::warn!(
            "kv: {name} cannot flush and does not promise durable writes: a power cut may lose acknowledged data"
        ),
        _ if s.read_only => log::warn!("kv: {name} is read-only: writes will be refused"),
        _ => {}
    }
    Ok(store)
}

/// Bits for a new store's identity (not secret; distinct per format).
fn store_id() -> u64 {
    use fata_hal::Platform;
    let a = crate::platform::Plat::monotonic_ns();
    let b = crate::platform::Plat::wall_ns().unwrap_or(0);
    let mut z = a ^ b.rotate_left(29) ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
