//! Crashes at every point. The oracle is a model map: after a crash and a reopen, the store
//! holds exactly the state after some commit at or beyond the last acknowledged one — never a
//! partial batch, never a value that was not written — and it goes on working (a write after
//! recovery survives the next reopen, so no stale record can come back).

use super::sim::{Rng, SimDisk, run};
use super::{contents, open, open_with};
use crate::{Error, Store, Write};
use std::collections::BTreeMap;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Clone, Debug)]
enum Step {
    Put(u8, Vec<u8>),
    Delete(u8),
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    Compact,
}

fn key(k: u8) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

fn apply(m: &mut Model, step: &Step) {
    match step {
        Step::Put(k, v) => {
            m.insert(key(*k), v.clone());
        }
        Step::Delete(k) => {
            m.remove(&key(*k));
        }
        Step::Batch(ops) => {
            for (k, v) in ops {
                match v {
                    Some(v) => m.insert(key(*k), v.clone()),
                    None => m.remove(&key(*k)),
                };
            }
        }
        Step::Compact => {}
    }
}

async fn perform(s: &Store<SimDisk>, step: &Step) -> Result<(), Error> {
    match step {
        Step::Put(k, v) => s.put(&key(*k), v).await,
        Step::Delete(k) => s.delete(&key(*k)).await,
        Step::Batch(ops) => {
            let w: Vec<Write> = ops
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => Write::Put(key(*k), v.clone()),
                    None => Write::Delete(key(*k)),
                })
                .collect();
            s.batch(&w).await
        }
        Step::Compact => s.compact().await,
    }
}

/// A formatted disk with the device set to die at its `crash`-th write or flush from now.
/// Returns the disk, the model states (`states[i]` after `i` steps) and how many steps were
/// acknowledged before the device died.
fn run_workload(
    sector_size: u32,
    sectors: u64,
    steps: &[Step],
    crash: Option<u64>,
) -> (SimDisk, Vec<Model>, usize) {
    run_failing_workload(sector_size, sectors, steps, crash, None)
}

/// [`run_workload`], with the write or flush number `fail` (from now) failing with an I/O
/// error first: the store refuses writes from then on, and the crash comes later.
fn run_failing_workload(
    sector_size: u32,
    sectors: u64,
    steps: &[Step],
    crash: Option<u64>,
    fail: Option<u64>,
) -> (SimDisk, Vec<Model>, usize) {
    let d = SimDisk::new(sector_size, sectors);
    let (s, mut bg) = open(&d).unwrap();
    let base = d.0.borrow().ops;
    d.0.borrow_mut().crash_at = crash.map(|c| base + c);
    d.0.borrow_mut().fail_at = fail.map(|c| base + c);
    let mut states = vec![Model::new()];
    let mut acked = 0;
    for step in steps {
        let mut next = states.last().unwrap().clone();
        apply(&mut next, step);
        states.push(next);
        match run(&mut bg, perform(&s, step)) {
            Ok(()) => acked += 1,
            Err(Error::Full { .. }) if crash.is_none() => {
                // Not applied: the model stays where it was.
                states.pop();
                let prev = states.last().unwrap().clone();
                states.push(prev);
                acked += 1;
            }
            Err(_) => break,
        }
    }
    (d, states, acked)
}

/// Reopens `image` and checks the oracle; `what` names the case in a failure.
fn check(sector_size: u32, image: Vec<u8>, states: &[Model], acked: usize, what: &str) {
    let d = SimDisk::from_image(sector_size, image);
    let (s, mut bg) = open_with(&d, false).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let got = contents(&s, &mut bg).unwrap_or_else(|e| panic!("{what}: read failed: {e}"));
    let Some(k) = (acked..states.len()).find(|&k| states[k] == got) else {
        panic!(
            "{what}: state after recovery matches no commit at or after the {acked} acknowledged:\n got {got:?}\n acked state {:?}",
            states[acked]
        );
    };
    // The recovered store keeps working, and what it writes now survives the next reopen.
    let mut after = states[k].clone();
    run(&mut bg, s.put(b"after-recovery", b"yes"))
        .unwrap_or_else(|e| panic!("{what}: write after recovery: {e}"));
    after.insert(b"after-recovery".to_vec(), b"yes".to_vec());
    drop((s, bg));
    let (s, mut bg) = open_with(&d, false).unwrap_or_else(|e| panic!("{what}: second reopen: {e}"));
    assert_eq!(
        contents(&s, &mut bg).unwrap(),
        after,
        "{what}: second reopen"
    );
}

fn random_steps(rng: &mut Rng, n: usize) -> Vec<Step> {
    let value = |rng: &mut Rng| {
        let len = [0, 10, 200, 700, 1500][rng.below(5) as usize];
        vec![rng.next() as u8; len]
    };
    (0..n)
        .map(|_| match rng.below(20) {
            0..=9 => Step::Put(rng.below(8) as u8, value(rng)),
            10..=12 => Step::Delete(rng.below(8) as u8),
            13..=18 => Step::Batch(
                (0..1 + rng.below(4))
                    .map(|_| {
                        let k = rng.below(8) as u8;
                        (k, (!rng.chance(25)).then(|| value(rng)))
                    })
                    .collect(),
            ),
            _ => Step::Compact,
        })
        .collect()
}

/// Seeded random workloads on small disks (so compaction runs on its own too), sometimes an
/// I/O error, a crash at a random write or flush, then a power cut that keeps any subset of the unflushed sectors, in
/// any order, some torn or garbage.
#[test]
fn random_workloads_survive_a_power_cut_at_any_point() {
    let seeds = 3000;
    let mut compactions = 0;
    for seed in 0..seeds {
        let mut rng = Rng(seed);
        let (ss, sectors) = [(512, 160), (512, 1024), (4096, 64)][rng.below(3) as usize];
        let n = 1 + rng.below(30) as usize;
        let steps = random_steps(&mut rng, n);
        let crash = 1 + rng.below(80);
        // A quarter of the runs meet an I/O error before the crash.
        let fail = rng.chance(25).then(|| 1 + rng.below(crash));
        let (d, states, acked) = run_failing_workload(ss, sectors, &steps, Some(crash), fail);
        compactions += usize::from(d.0.borrow().ops > 2 * steps.len() as u64 + 4);
        let image = d.power_cut(&mut rng);
        check(ss, image, &states, acked, &format!("seed {seed}"));
    }
    assert!(
        compactions > seeds as usize / 10,
        "compaction ran in {compactions} workloads only"
    );
}

/// Every workload of up to three operations, crashed at every write and flush, with every
/// subset of the sectors written since the last flush reaching the disk.
#[test]
fn every_small_workload_crashed_at_every_point_with_every_subset_of_pending_sectors() {
    let small = vec![1u8; 100];
    let big = vec![2u8; 1200];
    let alphabet = [
        Step::Put(1, small.clone()),
        Step::Put(1, big.clone()),
        Step::Delete(1),
        Step::Batch(vec![(2, Some(small)), (3, Some(big)), (1, None)]),
        Step::Compact,
    ];
    let mut workloads: Vec<Vec<Step>> = vec![vec![]];
    let mut all = Vec::new();
    for _ in 0..3 {
        workloads = workloads
            .iter()
            .flat_map(|w| {
                alphabet.iter().map(move |s| {
                    let mut w = w.clone();
                    w.push(s.clone());
                    w
                })
            })
            .collect();
        all.extend(workloads.iter().cloned());
    }
    let mut cases = 0u64;
    for (wi, steps) in all.iter().enumerate() {
        // Count the writes and flushes of the whole workload.
        let (full, _, _) = run_workload(512, 256, steps, None);
        let total = full.0.borrow().ops - 3;
        for crash in 1..=total {
            let (d, states, acked) = run_workload(512, 256, steps, Some(crash));
            let pending = d.pending_len();
            assert!(pending <= 16, "{pending} pending sectors");
            for keep in 0..(1u64 << pending) {
                let what = format!("workload {wi} {steps:?}, crash at op {crash}, kept {keep:b}");
                check(512, d.with_pending(keep), &states, acked, &what);
                cases += 1;
            }
        }
    }
    assert!(cases > 2_500, "only {cases} cases");
}

/// A bit flipped in data written before the last step is either harmless (padding, a dead
/// region, one superblock slot) or reported: the store refuses to open, or the value's read
/// fails. A wrong value is never served.
#[test]
fn flipped_bits_are_reported_never_served() {
    let mut outcomes = [0usize; 3];
    for seed in 0..1500u64 {
        let mut rng = Rng(seed ^ 0xf11b);
        let n = 2 + rng.below(20) as usize;
        let steps = random_steps(&mut rng, n);
        let (d, states, acked) = run_workload(512, 1024, &steps[..steps.len() - 1], None);
        assert_eq!(acked, steps.len() - 1);
        let before = d.0.borrow().stable.clone();
        d.0.borrow_mut().touched.clear();
        let (s, mut bg) = open_with(&d, false).unwrap();
        let last = steps.last().unwrap();
        run(&mut bg, perform(&s, last)).unwrap();
        drop((s, bg));
        let mut want = states.last().unwrap().clone();
        apply(&mut want, last);
        // Sectors written before the last step and left alone by it (a flip in the last
        // record looks like a write torn by a crash: see docs/storage.md).
        let mut img = d.0.borrow().stable.clone();
        let written: Vec<usize> = (0..before.len() / 512)
            .filter(|&i| {
                let r = i * 512..(i + 1) * 512;
                before[r].iter().any(|&b| b != 0) && !d.0.borrow().touched.contains(&(i as u64))
            })
            .collect();
        let sector = written[rng.below(written.len() as u64) as usize];
        let bit = rng.below(512 * 8) as usize;
        let at = sector * 512 + bit / 8;
        // Odd seeds: the bit rots under an open store, so only reads can notice.
        let under_open = seed % 2 == 1;
        if !under_open {
            img[at] ^= 1 << (bit % 8);
        }
        let disk = SimDisk::from_image(512, img);
        let opened = open_with(&disk, false);
        if under_open {
            disk.0.borrow_mut().stable[at] ^= 1 << (bit % 8);
        }
        match opened {
            Err(Error::Corrupt { .. }) => outcomes[0] += 1,
            Err(e) => panic!("seed {seed}: {e}"),
            Ok((s, mut bg)) => {
                let keys: Vec<Vec<u8>> = s
                    .list(b"", None, usize::MAX)
                    .into_iter()
                    .map(|e| e.key)
                    .collect();
                assert_eq!(
                    keys,
                    want.keys().cloned().collect::<Vec<_>>(),
                    "seed {seed}: keys"
                );
                let mut reported = false;
                for k in keys {
                    match run(&mut bg, s.get(&k)) {
                        Ok(v) => assert_eq!(
                            v.as_ref(),
                            want.get(&k),
                            "seed {seed}: a wrong value was served"
                        ),
                        Err(Error::Corrupt { .. }) => reported = true,
                        Err(e) => panic!("seed {seed}: {e}"),
                    }
                }
                outcomes[if reported { 1 } else { 2 }] += 1;
            }
        }
    }
    assert!(
        outcomes.iter().all(|&n| n > 50),
        "refused, reported on read, harmless: {outcomes:?}"
    );
}
