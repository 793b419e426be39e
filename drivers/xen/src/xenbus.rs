//! The xenbus handshake of a front-end device, over [`XenStore`]: find the back end, wait for
//! its state, publish our ring references and event channel with our state in one
//! transaction, wait for the back end to connect.
//!
//! Everything read from xenstore is untrusted: a missing or malformed key, a back-end id that
//! is not a domain id, or a back end that closes instead of connecting is an error that names
//! the key; the waits are bounded.

use crate::xenstore::{Error as XsError, Tx, XenStore};
use crate::{Notify, SharedPage};
use alloc::format;
use alloc::string::String;
use core::fmt;

/// `enum xenbus_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// 0.
    Unknown = 0,
    /// 1.
    Initialising = 1,
    /// 2: the back end waits for the front end's details.
    InitWait = 2,
    /// 3: the front end has published its details.
    Initialised = 3,
    /// 4.
    Connected = 4,
    /// 5.
    Closing = 5,
    /// 6.
    Closed = 6,
}

impl State {
    /// Parses a state value as xenstore holds it (decimal).
    pub fn parse(s: &str) -> Option<State> {
        Some(match s.trim_end_matches('\0') {
            "0" => State::Unknown,
            "1" => State::Initialising,
            "2" => State::InitWait,
            "3" => State::Initialised,
            "4" => State::Connected,
            "5" => State::Closing,
            "6" => State::Closed,
            _ => return None,
        })
    }

    /// The decimal value to write.
    pub fn value(self) -> &'static str {
        ["0", "1", "2", "3", "4", "5", "6"][self as usize]
    }
}

/// Why a handshake failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// xenstore failed.
    Store(XsError),
    /// A key is missing or holds something else than it must (the key and what was found).
    BadKey(String, String),
    /// The back end closed (or is closing) instead of reaching the state waited for.
    Closed(String),
}

impl From<XsError> for Error {
    fn from(e: XsError) -> Error {
        Error::Store(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Store(e) => write!(f, "{e}"),
            Error::BadKey(k, v) => write!(f, "xenbus: `{k}` holds {v:?}"),
            Error::Closed(p) => write!(f, "xenbus: the back end at {p} closed"),
        }
    }
}

/// A front-end device and its back end, as xenstore names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Our directory, e.g. `device/vbd/51712`.
    pub path: String,
    /// The back end's directory, e.g. `/local/domain/0/backend/vbd/5/51712`.
    pub backend: String,
    /// The back end's domain.
    pub backend_id: u16,
}

/// Reads `path/backend` and `path/backend-id`.
pub fn device<P: SharedPage, N: Notify>(
    xs: &mut XenStore<P, N>,
    path: &str,
    wait: &mut dyn FnMut(),
) -> Result<Device, Error> {
    let key = format!("{path}/backend");
    let backend = xs.read(Tx::NONE, &key, wait)?;
    if !backend.starts_with('/') {
        return Err(Error::BadKey(key, backend));
    }
    let key = format!("{path}/backend-id");
    let id = xs.read(Tx::NONE, &key, wait)?;
    let backend_id = id
        .parse::<u16>()
        .ok()
        .filter(|&d| d < 0x7FF0)
        .ok_or(Error::BadKey(key, id))?;
    Ok(Device {
        path: path.into(),
        backend,
        backend_id,
    })
}

/// Waits (watching it) until the state at `dir/state` is `want` or later; a back end that
/// goes to Closing or Closed first is [`Error::Closed`].
pub fn wait_state<P: SharedPage, N: Notify>(
    xs: &mut XenStore<P, N>,
    dir: &str,
    want: State,
    wait: &mut dyn FnMut(),
) -> Result<State, Error> {
    let key = format!("{dir}/state");
    // A second wait on the same key finds the watch already set: xenstored says EEXIST.
    match xs.watch(&key, "fata-state", wait) {
        Ok(()) => {}
        Err(XsError::Xs(e)) if e == "EEXIST" => {}
        Err(e) => return Err(e.into()),
    }
    loop {
        let v = xs.read(Tx::NONE, &key, wait)?;
        let s = State::parse(&v).ok_or_else(|| Error::BadKey(key.clone(), v))?;
        if s >= State::Closing && want < State::Closing {
            return Err(Error::Closed(dir.into()));
        }
        if s >= want {
            return Ok(s);
        }
        // Until the watch fires again.
        let mut waits = 0u32;
        while xs.next_event()?.is_none() {
            waits += 1;
            if waits > 10_000 {
                return Err(Error::Store(XsError::Timeout));
            }
            wait();
        }
    }
}

/// Writes `entries` (key under the device, value) and our `state`, in one transaction
/// retried on conflicts.
pub fn publish<P: SharedPage, N: Notify>(
    xs: &mut XenStore<P, N>,
    dev: &Device,
    entries: &[(&str, String)],
    state: State,
    wait: &mut dyn FnMut(),
) -> Result<(), Error> {
    xs.transaction(10, wait, |xs, tx, w| {
        for (k, v) in entries {
            xs.write(tx, &format!("{}/{k}", dev.path), v, w)?;
        }
        xs.write(tx, &format!("{}/state", dev.path), state.value(), w)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::tests::{Daemon, setup};
    use alloc::rc::Rc;
    use alloc::string::ToString;
    use core::cell::RefCell;

    fn run_backend(d: &Rc<RefCell<Daemon>>) -> impl FnMut() + '_ {
        move || d.borrow_mut().step()
    }

    #[test]
    fn a_front_end_connects_when_its_back_end_does() {
        let (mut xs, d) = setup(9);
        {
            let mut dm = d.borrow_mut();
            dm.store.insert(
                "device/vbd/51712/backend".into(),
                "/local/domain/0/backend/vbd/5/51712".into(),
            );
            dm.store
                .insert("device/vbd/51712/backend-id".into(), "0".into());
            dm.store.insert(
                "/local/domain/0/backend/vbd/5/51712/state".into(),
                "1".into(),
            );
            // The back end moves on as the front end does: InitWait a little after start,
            // Connected once we say Initialised.
            dm.script = Some(alloc::boxed::Box::new(|path: &str, value: &str| {
                match (path, value) {
                    ("device/vbd/51712/ring-ref", _) => alloc::vec![(
                        "/local/domain/0/backend/vbd/5/51712/state".to_string(),
                        "2".to_string()
                    )],
                    ("device/vbd/51712/state", "3") => alloc::vec![(
                        "/local/domain/0/backend/vbd/5/51712/state".to_string(),
                        "4".to_string()
                    )],
                    _ => alloc::vec![],
                }
            }));
        }
        let mut w = run_backend(&d);
        let dev = device(&mut xs, "device/vbd/51712", &mut w).unwrap();
        assert_eq!(dev.backend_id, 0);
        publish(
            &mut xs,
            &dev,
            &[("ring-ref", "8".into())],
            State::Initialising,
            &mut w,
        )
        .unwrap();
        assert_eq!(
            wait_state(&mut xs, &dev.backend, State::InitWait, &mut w),
            Ok(State::InitWait)
        );
        publish(
            &mut xs,
            &dev,
            &[
                ("event-channel", "5".into()),
                ("protocol", "x86_64-abi".into()),
            ],
            State::Initialised,
            &mut w,
        )
        .unwrap();
        assert_eq!(
            wait_state(&mut xs, &dev.backend, State::Connected, &mut w),
            Ok(State::Connected)
        );
        let store = &d.borrow().store;
        assert_eq!(store["device/vbd/51712/state"], "3");
        assert_eq!(store["device/vbd/51712/protocol"], "x86_64-abi");
    }

    #[test]
    fn bad_keys_and_a_closing_back_end_are_errors_that_name_them() {
        let (mut xs, d) = setup(64);
        let mut w = run_backend(&d);
        assert!(matches!(
            device(&mut xs, "device/vif/0", &mut w),
            Err(Error::Store(_))
        ));
        d.borrow_mut()
            .store
            .insert("device/vif/0/backend".into(), "relative/path".into());
        assert!(
            matches!(device(&mut xs, "device/vif/0", &mut w), Err(Error::BadKey(k, _)) if k.ends_with("/backend"))
        );
        d.borrow_mut()
            .store
            .insert("device/vif/0/backend".into(), "/be".into());
        for bad in ["-1", "70000", "32752", "x"] {
            d.borrow_mut()
                .store
                .insert("device/vif/0/backend-id".into(), bad.into());
            assert!(
                matches!(device(&mut xs, "device/vif/0", &mut w), Err(Error::BadKey(k, _)) if k.ends_with("backend-id")),
                "{bad}"
            );
        }
        d.borrow_mut().store.insert("/be/state".into(), "6".into());
        assert_eq!(
            wait_state(&mut xs, "/be", State::Connected, &mut w),
            Err(Error::Closed("/be".into()))
        );
        d.borrow_mut()
            .store
            .insert("/be/state".into(), "banana".into());
        assert!(matches!(
            wait_state(&mut xs, "/be", State::Connected, &mut w),
            Err(Error::BadKey(..))
        ));
        assert_eq!(State::parse("4\0"), Some(State::Connected));
        assert_eq!(State::Initialised.value(), "3");
    }
}
