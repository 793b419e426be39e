//! Disks and the key-value store end to end: `examples/kv` on virtio-blk (MMIO, PCI modern and
//! legacy) and on a file under `unix`; reboots, SIGKILL at random moments, power cuts under a
//! disk with a volatile cache (an NBD server in this process), and bad disks and requests.
#![forbid(unsafe_code)]

use fata_tests::kv::{Kv, PutStream, check_keys, value_for};
use fata_tests::nbd::{NbdConfig, NbdServer};
use fata_tests::rng::Rng;
use fata_tests::{
    BOOT_TIMEOUT, BootOpts, Exit, Machine, NetVm, Target, UserNetBoot, free_port, image,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use xtask::disk::DiskSpec;

/// A fresh path for a disk image (removed if it exists).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fata-storage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

fn boot_virtio(machine: Machine, disks: &[DiskSpec], args: &[&str], extra: &[&str]) -> NetVm {
    UserNetBoot {
        args,
        qemu_extra: extra,
        disks,
        ..UserNetBoot::new("kv", machine, 80)
    }
    .boot()
}

fn boot_unix(disks: &[DiskSpec], args: &[&str]) -> (xtask::runner::Running, SocketAddr) {
    let port = free_port();
    let mut all = vec![format!("port={port}"), "net=socket".to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    let vm = xtask::runner::boot(
        &image(Target::Unix, "kv"),
        &BootOpts {
            args: all,
            disks: disks.to_vec(),
            ..Default::default()
        },
    )
    .unwrap();
    if let Err(e) = vm.wait_for_line(&format!("fata: ready tcp/{port}"), BOOT_TIMEOUT) {
        let out = vm.wait(Duration::from_secs(1)).map(|o| o.console());
        panic!("kv never became ready: {e}\n{}", out.unwrap_or_default());
    }
    (vm, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Puts `n` keys over 4 connections at once (so commits are shared), checks every answer.
fn put_keys(addr: SocketAddr, prefix: &str, n: usize) -> Vec<String> {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let prefix = prefix.to_string();
            std::thread::spawn(move || {
                let mut kv = Kv::connect(addr).unwrap();
                let mut keys = Vec::new();
                for i in (t..n).step_by(4) {
                    let key = format!("{prefix}-{i:04}");
                    assert_eq!(kv.put(&key, &value_for(&key)).unwrap(), 201, "PUT {key}");
                    keys.push(key);
                }
                keys
            })
        })
        .collect();
    let mut keys: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    keys.sort();
    keys
}

/// The listing holds exactly `keys` (with their sizes) and each reads back byte-exact.
fn check_all(addr: SocketAddr, prefix: &str, keys: &[String]) {
    let listed = Kv::connect(addr).unwrap().list_all(prefix).unwrap();
    let want: Vec<(String, usize)> = keys
        .iter()
        .map(|k| (k.clone(), value_for(k).len()))
        .collect();
    assert_eq!(listed, want, "the listing after the reboot");
    check_keys(addr, keys).unwrap();
}

fn thousand_keys_across_a_reboot(machine: Machine, extra: &[&str], name: &str) {
    let disk = DiskSpec::sized(scratch(name), 32 << 20);
    let vm = boot_virtio(
        machine,
        std::slice::from_ref(&disk),
        &["format=true"],
        extra,
    );
    let keys = put_keys(vm.addr, "k", 1000);
    let status = Kv::connect(vm.addr)
        .unwrap()
        .send("GET", "/status", None)
        .unwrap();
    let status = String::from_utf8(status.body).unwrap();
    assert!(status.contains("\"keys\":1000"), "{status}");
    assert!(status.contains("\"disk_bad_completions\":0"), "{status}");
    drop(vm);
    let vm = boot_virtio(machine, &[disk], &[], extra);
    vm.vm
        .wait_for_line("kv: disk0: 1000 keys", Duration::from_secs(1))
        .unwrap();
    check_all(vm.addr, "k", &keys);
}

#[test]
fn virtio_mmio_disk_keeps_a_thousand_keys_across_a_reboot() {
    thousand_keys_across_a_reboot(Machine::Microvm, &[], "mmio.img");
}

#[test]
fn virtio_pci_disk_keeps_a_thousand_keys_across_a_reboot() {
    thousand_keys_across_a_reboot(Machine::Q35, &[], "pci.img");
}

/// A legacy-only virtio-pci disk, given through our own QEMU arguments; `props` are added to
/// its `-device`.
fn legacy_pci_disk(name: &str, props: &str, expect: &str) {
    let path = scratch(name);
    std::fs::File::create(&path)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let drive = format!("id=d0,file={},format=raw,if=none", path.display());
    let device = format!("virtio-blk-pci,drive=d0,disable-modern=on,disable-legacy=off{props}");
    let extra = ["-drive", &drive, "-device", &device];
    let vm = boot_virtio(Machine::Pc, &[], &["format=true"], &extra);
    vm.vm
        .wait_for_line(expect, Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("{e}"));
    let keys = put_keys(vm.addr, "l", 200);
    drop(vm);
    let vm = boot_virtio(Machine::Pc, &[], &[], &extra);
    check_all(vm.addr, "l", &keys);
}

#[test]
fn legacy_virtio_pci_disk_keeps_keys_across_a_reboot() {
    legacy_pci_disk("legacy.img", "", "legacy");
}

#[test]
fn a_legacy_pci_disk_without_msix_is_polled_and_works() {
    legacy_pci_disk("legacy-intx.img", ",vectors=0", "no MSI-X: polled");
}

#[test]
fn unix_file_disk_keeps_a_thousand_keys_across_a_restart() {
    let disk = DiskSpec::sized(scratch("unix.img"), 32 << 20);
    let (vm, addr) = boot_unix(std::slice::from_ref(&disk), &["format=true"]);
    let keys = put_keys(addr, "u", 1000);
    drop(vm);
    let (_vm, addr) = boot_unix(&[disk], &[]);
    check_all(addr, "u", &keys);
}

/// Rounds of: boot, stream PUTs, kill at a random moment (SIGKILL), then check in the next
/// boot that every acknowledged key of every earlier round reads back exactly.
fn kill_rounds(rounds: usize, mut boot: impl FnMut(bool) -> (Box<dyn std::any::Any>, SocketAddr)) {
    let mut rng = Rng::from_time("kill rounds");
    let mut acked: Vec<String> = Vec::new();
    let mut last_round: Vec<String> = Vec::new();
    for round in 0..rounds {
        let (vm, addr) = boot(round == 0);
        // Everything acknowledged so far is there: the last round's keys byte-exact, all of
        // them in the listing.
        check_keys(addr, &last_round).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let listed: std::collections::BTreeSet<String> = Kv::connect(addr)
            .unwrap()
            .list_all("r")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        if let Some(lost) = acked.iter().find(|k| !listed.contains(*k)) {
            panic!("round {round}: acknowledged key {lost} is gone");
        }
        let stream = PutStream::start(addr, &format!("r{round:02}"));
        std::thread::sleep(rng.between(Duration::from_millis(200), Duration::from_millis(2500)));
        drop(vm); // SIGKILL
        let keys = stream
            .finish()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        acked.extend(keys.iter().cloned());
        last_round = keys;
    }
    assert!(
        acked.len() > rounds * 5,
        "only {} puts acknowledged in {rounds} rounds",
        acked.len()
    );
    let (_vm, addr) = boot(false);
    check_keys(addr, &acked).unwrap();
}

#[test]
fn killing_qemu_at_random_moments_loses_no_acknowledged_put() {
    // Sparse, and large enough for 20 rounds of puts without ever filling the store.
    let disk = DiskSpec::sized(scratch("kill.img"), 1 << 30);
    kill_rounds(20, |first| {
        let args: &[&str] = if first { &["format=true"] } else { &[] };
        let vm = boot_virtio(Machine::Microvm, std::slice::from_ref(&disk), args, &[]);
        let addr = vm.addr;
        (Box::new(vm), addr)
    });
}

#[test]
fn killing_the_unix_process_at_random_moments_loses_no_acknowledged_put() {
    // A process puts fast: room for 20 rounds of them.
    let disk = DiskSpec::sized(scratch("kill-unix.img"), 1 << 30);
    kill_rounds(20, |first| {
        let args: &[&str] = if first { &["format=true"] } else { &[] };
        let (vm, addr) = boot_unix(std::slice::from_ref(&disk), args);
        (Box::new(vm), addr)
    });
}

/// Power cuts: QEMU's disk is served over NBD by a server that keeps writes in memory until
/// the guest flushes, and at the cut drops, reorders and tears what was not flushed. Every
/// acknowledged PUT must survive. `lying_disk`: the server acknowledges flushes without making
/// anything stable (a host that lies), which must lose acknowledged writes — proof that the
/// test can see a missing flush.
/// `Err` names the first acknowledged key lost.
fn power_cut_rounds(rounds: usize, lying_disk: bool) -> Result<usize, String> {
    let mut rng = Rng::from_time("power cuts");
    let mut image = vec![0u8; 64 << 20];
    let mut acked: Vec<String> = Vec::new();
    for round in 0..rounds {
        let config = NbdConfig {
            // The format in the first round is kept, so later boots find the store.
            ignore_flush: lying_disk && round > 0,
            ..NbdConfig::volatile(rng.next_u64())
        };
        let server = NbdServer::start_with(image, config).unwrap();
        let drive = server.qemu_drive_arg("d0");
        let extra = [
            "-drive",
            drive.as_str(),
            "-device",
            "virtio-blk-device,drive=d0",
        ];
        let args: &[&str] = if round == 0 { &["format=true"] } else { &[] };
        // A store that finds acknowledged data missing refuses to open: a loss too.
        let vm = UserNetBoot {
            args,
            qemu_extra: &extra,
            ..UserNetBoot::new("kv", Machine::Microvm, 80)
        }
        .try_boot()
        .map_err(|e| format!("round {round}: {e}"))?;
        if let Err(e) = check_keys(vm.addr, &acked) {
            return Err(format!("round {round}: {e}"));
        }
        let stream = PutStream::start(vm.addr, &format!("p{round:02}"));
        std::thread::sleep(rng.between(Duration::from_millis(300), Duration::from_millis(2500)));
        image = server.power_cut();
        drop(vm);
        let keys = stream
            .finish()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        acked.extend(keys);
        let stats = server.stats();
        assert_eq!(stats.handler_panics, 0);
    }
    Ok(acked.len())
}

#[test]
fn a_power_cut_under_a_volatile_disk_cache_loses_no_acknowledged_put() {
    let n = power_cut_rounds(12, false).unwrap();
    assert!(n > 50, "only {n} puts acknowledged");
}

#[test]
fn the_power_cut_test_sees_lost_writes_when_the_disk_ignores_flushes() {
    let lost = (0..3).any(|_| power_cut_rounds(4, true).is_err());
    assert!(
        lost,
        "with a disk that ignores flushes, acknowledged puts should have been lost"
    );
}

fn run_unix(disks: &[DiskSpec], args: &[&str]) -> fata_tests::Outcome {
    let vm = xtask::runner::boot(
        &image(Target::Unix, "kv"),
        &BootOpts {
            args: ["net=socket", &format!("port={}", free_port())]
                .iter()
                .chain(args)
                .map(|s| s.to_string())
                .collect(),
            disks: disks.to_vec(),
            ..Default::default()
        },
    )
    .unwrap();
    vm.wait(Duration::from_secs(30)).unwrap()
}

fn expect_refusal(disks: &[DiskSpec], args: &[&str], msg: &str) {
    let out = run_unix(disks, args);
    assert_eq!(out.exit, Exit::Code(1), "{}", out.console());
    assert!(out.has_line(msg), "no `{msg}` in:\n{}", out.console());
}

#[test]
fn bad_disks_are_refused_with_clear_errors_and_left_untouched() {
    expect_refusal(&[], &[], "no such disk");
    let blank = DiskSpec::sized(scratch("blank.img"), 1 << 20);
    expect_refusal(
        std::slice::from_ref(&blank),
        &[],
        "the disk is blank; boot with format=true",
    );
    let small = DiskSpec::sized(scratch("small.img"), 32 << 10);
    expect_refusal(&[small], &["format=true"], "a store needs at least 65536");
    // A disk holding something else, even with format=true: refused, not one byte changed.
    let path = scratch("foreign.img");
    let mut bytes = vec![0u8; 4 << 20];
    bytes[1024..1040].copy_from_slice(b"an ext4 volume..");
    std::fs::write(&path, &bytes).unwrap();
    expect_refusal(
        &[DiskSpec::new(&path)],
        &["format=true"],
        "not a fata store; it was left untouched",
    );
    assert!(
        std::fs::read(&path).unwrap() == bytes,
        "the foreign disk was modified"
    );
}

#[test]
fn a_read_only_disk_serves_reads_and_refuses_writes() {
    let path = scratch("ro.img");
    let disk = DiskSpec::sized(&path, 8 << 20);
    let (vm, addr) = boot_unix(std::slice::from_ref(&disk), &["format=true"]);
    assert_eq!(Kv::connect(addr).unwrap().put("k", b"v").unwrap(), 201);
    drop(vm);
    let ro = DiskSpec {
        read_only: true,
        ..DiskSpec::new(&path)
    };
    for (vm, addr) in [
        {
            let v = boot_virtio(Machine::Microvm, std::slice::from_ref(&ro), &[], &[]);
            let a = v.addr;
            (Box::new(v) as Box<dyn std::any::Any>, a)
        },
        {
            let (v, a) = boot_unix(std::slice::from_ref(&ro), &[]);
            (Box::new(v) as Box<dyn std::any::Any>, a)
        },
    ] {
        let mut kv = Kv::connect(addr).unwrap();
        assert_eq!(kv.get("k").unwrap().body, b"v");
        let r = kv.send("PUT", "/kv/k", Some(b"w")).unwrap();
        assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
        assert!(String::from_utf8_lossy(&r.body).contains("read-only"));
        drop(vm);
    }
}

#[test]
fn bad_requests_get_clear_statuses_and_batches_are_all_or_nothing() {
    let disk = DiskSpec::sized(scratch("requests.img"), 16 << 20);
    let (_vm, addr) = boot_unix(&[disk], &["format=true"]);
    let mut kv = Kv::connect(addr).unwrap();
    let long = "k".repeat(1025);
    assert_eq!(kv.put(&long, b"v").unwrap(), 400);
    assert_eq!(kv.put("big", &vec![1; (1 << 20) + 1]).unwrap(), 413);
    assert_eq!(kv.put("max", &vec![1; 1 << 20]).unwrap(), 201);
    assert_eq!(kv.get("missing").unwrap().status, 404);
    assert_eq!(kv.send("DELETE", "/kv/missing", None).unwrap().status, 404);
    for bad in [
        &b"not json"[..],
        b"{}",
        b"[]",
        b"[{\"op\":\"put\",\"key\":\"a\"}]",
        b"[{\"op\":\"rename\",\"key\":\"a\"}]",
        b"[{\"op\":\"put\",\"key\":1,\"value\":\"x\"}]",
    ] {
        let r = kv.send("POST", "/kv", Some(bad)).unwrap();
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(bad));
    }
    // One bad operation (a key over the limit) refuses the whole batch.
    let batch = format!(
        "[{{\"op\":\"put\",\"key\":\"a\",\"value\":\"1\"}},{{\"op\":\"put\",\"key\":\"{long}\",\"value\":\"2\"}}]"
    );
    assert_eq!(
        kv.send("POST", "/kv", Some(batch.as_bytes()))
            .unwrap()
            .status,
        400
    );
    assert_eq!(kv.get("a").unwrap().status, 404);
    let good = b"[{\"op\":\"put\",\"key\":\"a\",\"value\":\"1\"},{\"op\":\"put\",\"key\":\"b\",\"value\":\"2\"},{\"op\":\"delete\",\"key\":\"max\"}]";
    assert_eq!(kv.send("POST", "/kv", Some(good)).unwrap().status, 204);
    assert_eq!(
        kv.list_all("").unwrap(),
        [("a".to_string(), 1), ("b".to_string(), 1)]
    );
    assert_eq!(kv.send("PATCH", "/kv/a", None).unwrap().status, 405);
    assert_eq!(kv.get("%zz").unwrap().status, 400);
}

#[test]
fn a_full_store_answers_507_and_deletes_make_room_again() {
    // 256 KiB: regions of about 127 KiB, so a few hundred 1 KiB values fill one.
    let disk = DiskSpec::sized(scratch("full.img"), 256 << 10);
    let (_vm, addr) = boot_unix(&[disk], &["format=true"]);
    let mut kv = Kv::connect(addr).unwrap();
    let value = vec![7u8; 1024];
    let mut stored = 0;
    let full = loop {
        let status = kv.put(&format!("f{stored:04}"), &value).unwrap();
        if status != 201 {
            break status;
        }
        stored += 1;
        assert!(stored < 10_000, "the store never filled");
    };
    assert_eq!(full, 507, "after {stored} values");
    assert!(stored > 50, "only {stored} values fit");
    // Everything acknowledged is still there, and freeing space lets writes in again.
    let listed = kv.list_all("f").unwrap();
    assert_eq!(listed.len(), stored);
    assert!(listed.iter().all(|(_, size)| *size == value.len()));
    assert_eq!(kv.get("f0000").unwrap().body, value);
    for i in 0..4 {
        assert_eq!(
            kv.send("DELETE", &format!("/kv/f{i:04}"), None)
                .unwrap()
                .status,
            204
        );
    }
    assert_eq!(kv.put("after-delete", &value).unwrap(), 201);
    let status = String::from_utf8(kv.send("GET", "/status", None).unwrap().body).unwrap();
    assert!(!status.contains("\"compactions\":0,"), "{status}");
}

#[test]
fn a_disk_in_use_is_refused_to_a_second_process_and_to_qemu() {
    let disk = DiskSpec::sized(scratch("shared.img"), 8 << 20);
    let (_first, addr) = boot_unix(std::slice::from_ref(&disk), &["format=true"]);
    assert_eq!(Kv::connect(addr).unwrap().put("k", b"v").unwrap(), 201);
    expect_refusal(
        std::slice::from_ref(&disk),
        &[],
        "is in use by another process",
    );
    let qemu = UserNetBoot {
        disks: std::slice::from_ref(&disk),
        ..UserNetBoot::new("kv", Machine::Microvm, 80)
    }
    .try_boot();
    let err = qemu
        .err()
        .expect("QEMU must not open a disk a process is writing");
    assert!(err.contains("lock"), "{err}");
    // The first process still serves.
    assert_eq!(Kv::connect(addr).unwrap().get("k").unwrap().body, b"v");
}
