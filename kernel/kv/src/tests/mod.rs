//! The store on a simulated disk: its API, its limits, and crashes at every point.

mod api;
mod crash;
mod sim;

use crate::{Error, OpenOptions, Store};
use sim::{SimDisk, run};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

type Bg = Vec<Pin<Box<dyn Future<Output = ()>>>>;

/// Opens (formatting a blank disk) and returns the store with its committer ready to be run.
fn open(disk: &SimDisk) -> Result<(Store<SimDisk>, Bg), Error> {
    open_with(disk, true)
}

fn open_with(disk: &SimDisk, format: bool) -> Result<(Store<SimDisk>, Bg), Error> {
    let opts = OpenOptions {
        format,
        store_id: 0x005e_ed0f_da7a,
    };
    let (store, committer) = run(&mut [], Store::open(disk.clone(), opts))?;
    Ok((store, vec![Box::pin(committer.run())]))
}

/// Every key and value, read through `get` (so every value's checksum is checked).
fn contents(store: &Store<SimDisk>, bg: &mut Bg) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, Error> {
    let mut out = BTreeMap::new();
    for e in store.list(b"", None, usize::MAX) {
        let v = run(bg, store.get(&e.key))?.expect("a listed key has a value");
        assert_eq!(v.len(), e.value_len);
        out.insert(e.key, v);
    }
    Ok(out)
}
