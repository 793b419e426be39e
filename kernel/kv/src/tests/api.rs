//! What the store promises when nothing crashes: the API, limits, refusals, compaction.

use super::sim::{SimDisk, run};
use super::{contents, open, open_with};
use crate::{Error, MAX_KEY, Write};
use fata_hal::block::Disk;

#[test]
fn a_blank_disk_is_formatted_only_when_asked_and_a_foreign_one_never() {
    let d = SimDisk::new(512, 1024);
    assert_eq!(open_with(&d, false).err(), Some(Error::NotFormatted));
    assert_eq!(d.0.borrow().ops, 0, "nothing was written");

    let foreign = SimDisk::new(512, 1024);
    foreign.0.borrow_mut().stable[70_000] = 1;
    let before = foreign.0.borrow().stable.clone();
    assert_eq!(open_with(&foreign, true).err(), Some(Error::Foreign));
    assert_eq!(foreign.0.borrow().ops, 0);
    assert_eq!(foreign.0.borrow().stable, before);

    let (s, mut bg) = open(&d).unwrap();
    assert_eq!(s.stats().keys, 0);
    run(&mut bg, s.put(b"k", b"v")).unwrap();
    drop((s, bg));
    let (s, mut bg) = open_with(&d, false).unwrap();
    assert_eq!(
        run(&mut bg, s.get(b"k")).unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn put_get_delete_list_and_batch_survive_a_reopen() {
    let d = SimDisk::new(512, 4096);
    let (s, mut bg) = open(&d).unwrap();
    for i in 0..100u32 {
        run(
            &mut bg,
            s.put(
                format!("key/{i:03}").as_bytes(),
                &i.to_le_bytes().repeat(i as usize + 1),
            ),
        )
        .unwrap();
    }
    run(&mut bg, s.delete(b"key/050")).unwrap();
    run(&mut bg, s.delete(b"never-there")).unwrap();
    run(
        &mut bg,
        s.batch(&[
            Write::Put(b"a".to_vec(), b"1".to_vec()),
            Write::Delete(b"key/000".to_vec()),
            Write::Put(b"a".to_vec(), b"2".to_vec()),
        ]),
    )
    .unwrap();
    assert_eq!(
        run(&mut bg, s.get(b"a")).unwrap().as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(run(&mut bg, s.get(b"key/000")).unwrap(), None);
    let page = s.list(b"key/", Some(b"key/048"), 3);
    let keys: Vec<_> = page.iter().map(|e| e.key.as_slice()).collect();
    assert_eq!(keys, [&b"key/049"[..], b"key/051", b"key/052"]);
    assert_eq!(page[0].value_len, 4 * 50);
    assert!(s.list(b"zzz", None, 10).is_empty());
    assert_eq!(s.list(b"", Some(b"key/098"), 10).len(), 1);
    let before = contents(&s, &mut bg).unwrap();
    assert_eq!(before.len(), 99);
    drop((s, bg));
    let (s, mut bg) = open_with(&d, false).unwrap();
    assert_eq!(contents(&s, &mut bg).unwrap(), before);
    assert_eq!(s.stats().recovered_records, 103);
}

#[test]
fn limits_are_enforced_with_clear_errors() {
    let d = SimDisk::new(512, 1024);
    let (s, mut bg) = open(&d).unwrap();
    let max = s.stats().max_value;
    assert!(
        max > 1000 && max < 512 * 1024 / 8,
        "max value {max} scales with the disk"
    );
    assert_eq!(
        run(&mut bg, s.put(b"", b"x")),
        Err(Error::BadKey { len: 0 })
    );
    let long = vec![b'k'; MAX_KEY + 1];
    assert_eq!(
        run(&mut bg, s.put(&long, b"x")),
        Err(Error::BadKey { len: MAX_KEY + 1 })
    );
    run(&mut bg, s.put(&long[..MAX_KEY], b"x")).unwrap();
    let big = vec![0; max + 1];
    assert_eq!(
        run(&mut bg, s.put(b"k", &big)),
        Err(Error::ValueTooLarge { len: max + 1, max })
    );
    run(&mut bg, s.put(b"k", &big[..max])).unwrap();
    let many: Vec<Write> = (0..100)
        .map(|i| Write::Put(vec![i], vec![0; max / 10]))
        .collect();
    assert!(matches!(
        run(&mut bg, s.batch(&many)),
        Err(Error::BatchTooLarge { .. })
    ));
    assert_eq!(
        run(&mut bg, s.get(b"k")).unwrap().map(|v| v.len()),
        Some(max)
    );
    assert!(
        Error::BadKey { len: 0 }
            .to_string()
            .contains("1 to 1024 bytes")
    );

    let tiny = SimDisk::new(512, 64);
    assert!(matches!(open(&tiny).err(), Some(Error::TooSmall { .. })));
}

#[test]
fn a_read_only_disk_serves_reads_and_refuses_writes() {
    let d = SimDisk::new(512, 1024);
    let (s, mut bg) = open(&d).unwrap();
    run(&mut bg, s.put(b"k", b"v")).unwrap();
    drop((s, bg));
    d.0.borrow_mut().info.read_only = true;
    let (s, mut bg) = open_with(&d, false).unwrap();
    assert_eq!(
        run(&mut bg, s.get(b"k")).unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(run(&mut bg, s.put(b"k", b"w")), Err(Error::ReadOnly));
    assert_eq!(run(&mut bg, s.compact()), Err(Error::ReadOnly));
    // A blank read-only disk cannot be formatted.
    let blank = SimDisk::new(512, 1024);
    blank.0.borrow_mut().info.read_only = true;
    assert_eq!(open(&blank).err(), Some(Error::ReadOnly));
}

#[test]
fn overwrites_are_reclaimed_by_compaction_and_a_full_store_says_so() {
    let d = SimDisk::new(512, 512);
    let (s, mut bg) = open(&d).unwrap();
    // 50 rounds of 20 keys of 300 bytes: far more than a region, so compaction must run.
    for round in 0..50u8 {
        for k in 0..20u8 {
            run(&mut bg, s.put(&[k], &[round; 300])).unwrap();
        }
    }
    let st = s.stats();
    assert!(st.compactions > 0, "{st:?}");
    assert_eq!(st.keys, 20);
    let want = contents(&s, &mut bg).unwrap();
    assert!(want.values().all(|v| v == &vec![49; 300]));
    run(&mut bg, s.compact()).unwrap();
    assert_eq!(contents(&s, &mut bg).unwrap(), want);
    drop((s, bg));
    let (s, mut bg) = open_with(&d, false).unwrap();
    assert_eq!(contents(&s, &mut bg).unwrap(), want);
    // Distinct keys until no compaction can make room.
    let mut n = 0u32;
    let err = loop {
        match run(&mut bg, s.put(&n.to_le_bytes(), &[1; 300])) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::Full { .. }), "{err}");
    assert!(n > 100, "only {n} keys fit");
    // Still consistent, and deletes make room again.
    run(&mut bg, s.delete(&0u32.to_le_bytes())).unwrap_or(());
    drop((s, bg));
    let (s, mut bg) = open_with(&d, false).unwrap();
    assert!(contents(&s, &mut bg).unwrap().len() as u32 >= n + 20 - 1);
}

#[test]
fn concurrent_writers_share_commits() {
    let d = SimDisk::new(512, 4096);
    let (s, mut bg) = open(&d).unwrap();
    let keys: Vec<[u8; 1]> = (0..16u8).map(|i| [i]).collect();
    let vals: Vec<[u8; 100]> = (0..16u8).map(|i| [i; 100]).collect();
    let puts: Vec<_> = keys
        .iter()
        .zip(&vals)
        .map(|(k, v)| Box::pin(s.put(k, v)))
        .collect();
    let all = async {
        let mut puts = puts;
        let mut done = vec![false; puts.len()];
        std::future::poll_fn(|cx| {
            for (p, d) in puts.iter_mut().zip(done.iter_mut()) {
                if !*d && p.as_mut().poll(cx).is_ready() {
                    *d = true;
                }
            }
            if done.iter().all(|&d| d) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await
    };
    run(&mut bg, all);
    let st = s.stats();
    assert_eq!((st.batches, st.keys), (16, 16));
    assert!(st.commits < 4, "16 batches took {} commits", st.commits);
    assert_eq!(st.flushes, st.commits);
}

#[test]
fn a_flipped_bit_in_a_value_is_an_error_never_the_value() {
    let d = SimDisk::new(512, 1024);
    let (s, mut bg) = open(&d).unwrap();
    run(&mut bg, s.put(b"first", &[7; 200])).unwrap();
    run(&mut bg, s.put(b"second", &[8; 200])).unwrap();
    // Flip a bit inside the first value.
    let at =
        d.0.borrow()
            .stable
            .windows(8)
            .position(|w| w == [7; 8])
            .unwrap();
    d.0.borrow_mut().stable[at + 10] ^= 0x20;
    assert!(matches!(
        run(&mut bg, s.get(b"first")),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(run(&mut bg, s.get(b"second")).unwrap(), Some(vec![8; 200]));
    assert_eq!(s.stats().corrupt_reads, 1);
    assert!(matches!(
        run(&mut bg, s.compact()),
        Err(Error::Corrupt { .. })
    ));
    drop((s, bg));
    // At reopen the damaged record is followed by a valid one: not a torn tail.
    assert!(matches!(
        open_with(&d, false).err(),
        Some(Error::Corrupt { .. })
    ));
}

#[test]
fn a_damaged_superblock_slot_falls_back_to_the_other_and_two_are_an_error() {
    let d = SimDisk::new(512, 1024);
    let (s, mut bg) = open(&d).unwrap();
    run(&mut bg, s.put(b"k", b"v")).unwrap();
    run(&mut bg, s.compact()).unwrap();
    run(&mut bg, s.put(b"k2", b"v2")).unwrap();
    drop((s, bg));
    for slot in 0..2 {
        let img = d.0.borrow().stable.clone();
        let one = SimDisk::from_image(512, img.clone());
        one.0.borrow_mut().stable[slot * 512 + 30] ^= 1;
        let (s, mut bg) = open_with(&one, false).unwrap();
        assert_eq!(
            contents(&s, &mut bg).unwrap().len(),
            2,
            "slot {slot} damaged"
        );
        assert_eq!(s.stats().generation, 2);
    }
    let both = SimDisk::from_image(512, d.0.borrow().stable.clone());
    both.0.borrow_mut().stable[30] ^= 1;
    both.0.borrow_mut().stable[512 + 30] ^= 1;
    assert!(matches!(
        open_with(&both, true).err(),
        Some(Error::Corrupt { sector: 0, .. })
    ));
}

#[test]
fn an_io_error_fails_the_write_poisons_the_store_and_a_reopen_recovers() {
    let d = SimDisk::new(512, 1024);
    let (s, mut bg) = open(&d).unwrap();
    run(&mut bg, s.put(b"a", b"1")).unwrap();
    let next = d.0.borrow().ops + 1;
    d.0.borrow_mut().fail_at = Some(next);
    assert!(matches!(run(&mut bg, s.put(b"b", b"2")), Err(Error::Io(_))));
    assert_eq!(run(&mut bg, s.put(b"c", b"3")), Err(Error::Poisoned));
    assert_eq!(
        run(&mut bg, s.get(b"a")).unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert!(s.stats().poisoned);
    drop((s, bg));
    let (s, mut bg) = open_with(&d, false).unwrap();
    run(&mut bg, s.put(b"c", b"3")).unwrap();
    let c = contents(&s, &mut bg).unwrap();
    assert_eq!(c.get(&b"a"[..]).map(Vec::as_slice), Some(&b"1"[..]));
    assert_eq!(c.get(&b"c"[..]).map(Vec::as_slice), Some(&b"3"[..]));
}

#[test]
fn four_kib_sectors_and_hostile_geometry() {
    let d = SimDisk::new(4096, 256);
    let (s, mut bg) = open(&d).unwrap();
    run(&mut bg, s.put(b"k", &[1; 5000])).unwrap();
    drop((s, bg));
    let (s, mut bg) = open_with(&d, false).unwrap();
    assert_eq!(run(&mut bg, s.get(b"k")).unwrap(), Some(vec![1; 5000]));
    drop((s, bg));
    // The same image on a device that now reports 512-byte sectors is refused.
    let img = d.0.borrow().stable.clone();
    let other = SimDisk::from_image(512, img);
    assert!(matches!(
        open_with(&other, false).err(),
        Some(Error::Incompatible(_))
    ));
    // A device claiming more bytes than a 64-bit offset reaches.
    let huge = SimDisk::new(4096, 256);
    huge.0.borrow_mut().info.sectors = u64::MAX / 1024;
    assert!(matches!(open(&huge).err(), Some(Error::Incompatible(_))));
    // A device whose largest request is less than a sector.
    let odd = SimDisk::new(512, 1024);
    odd.0.borrow_mut().info.max_request_bytes = 100;
    assert!(matches!(open(&odd).err(), Some(Error::Incompatible(_))));
    // A disk that shrank below what the superblock says.
    let img = SimDisk::new(512, 1024);
    let (s, mut bg) = open(&img).unwrap();
    run(&mut bg, s.put(b"k", b"v")).unwrap();
    drop((s, bg));
    let cut = img.0.borrow().stable[..512 * 600].to_vec();
    assert!(matches!(
        open_with(&SimDisk::from_image(512, cut), false).err(),
        Some(Error::Incompatible(_))
    ));
    let _ = d.info();
}

#[test]
fn a_weak_handle_reads_the_figures_without_keeping_the_store_open() {
    let d = SimDisk::new(512, 1024);
    let (s, mut bg) = open(&d).unwrap();
    let weak = s.downgrade();
    run(&mut bg, s.put(b"k", b"v")).unwrap();
    let st = weak.stats().expect("open");
    assert_eq!((st.keys, st.commits > 0), (1, true));
    drop((s, bg));
    assert!(
        weak.stats().is_none(),
        "the weak handle kept the store open"
    );
}
