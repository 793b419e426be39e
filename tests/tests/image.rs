//! `cargo xtask image`: disks that boot through the firmware (SeaBIOS) with fata's own loader,
//! on `q35` and `pc`; boot arguments baked in at image time and changed afterwards without a
//! rebuild; the Compute Engine tarball; qcow2; and the refusals.
#![forbid(unsafe_code)]

use fata_tests::client::get;
use fata_tests::{Machine, Target, UserNetBoot, image};
use std::path::{Path, PathBuf};
use std::process::Command;
use xtask::image::{Format, make};
use xtask::qemu::BootDisk;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fata-image-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

/// Boots `disk` on `machine`, waits for `fata: ready tcp/PORT`, fetches a page through user
/// networking and returns the console.
fn boot_and_get(disk: &Path, format: &'static str, machine: Machine, port: u16) -> String {
    let vm = UserNetBoot {
        boot_disk: Some(BootDisk {
            path: disk.to_path_buf(),
            format,
        }),
        ..UserNetBoot::new("http", machine, port)
    }
    .boot();
    let r = get(vm.addr, "/612.html").unwrap();
    assert_eq!(r.status, 200);
    let want = std::fs::read(fata_tests::site_dir().join("612.html")).unwrap();
    assert_eq!(r.body, want, "the page, byte-exact");
    // It is still serving: the wait ends by killing it.
    vm.vm
        .wait(std::time::Duration::from_millis(100))
        .unwrap()
        .console()
}

#[test]
fn a_raw_disk_boots_on_q35_and_pc_with_its_baked_arguments() {
    let elf = image(Target::Virtio, "http");
    let disk = scratch("http.raw");
    make(&elf.path, Format::Raw, "port=8080 log=debug", &disk).unwrap();
    for machine in [Machine::Q35, Machine::Pc] {
        let console = boot_and_get(&disk, "raw", machine, 8080);
        assert!(
            console.contains("fata: config port=8080 (boot)"),
            "{console}"
        );
        assert!(
            console.contains("SeaBIOS"),
            "booted through the firmware: {console}"
        );
    }
}

#[test]
fn changed_arguments_take_effect_without_a_rebuild() {
    let elf = image(Target::Virtio, "http");
    let disk = scratch("args.raw");
    make(&elf.path, Format::Raw, "port=8080", &disk).unwrap();
    let before = std::fs::read(&disk).unwrap();
    xtask::image::set_args(&disk, "port=9090 log=debug").unwrap();
    assert_eq!(
        xtask::image::get_args(&disk).unwrap(),
        "port=9090 log=debug"
    );
    let after = std::fs::read(&disk).unwrap();
    // Only the parameter block changed: the loader and the image are the same bytes.
    assert_eq!(before[..16 * 512], after[..16 * 512]);
    assert_eq!(before[24 * 512..], after[24 * 512..]);
    let console = boot_and_get(&disk, "raw", Machine::Q35, 9090);
    assert!(
        console.contains("fata: config port=9090 (boot)"),
        "{console}"
    );
}

#[test]
fn a_qcow2_disk_boots_and_serves() {
    let elf = image(Target::Virtio, "http");
    let disk = scratch("http.qcow2");
    make(&elf.path, Format::Qcow2, "port=8080", &disk).unwrap();
    let head = std::fs::read(&disk).unwrap();
    assert_eq!(&head[..4], b"QFI\xfb", "a qcow2 file");
    boot_and_get(&disk, "qcow2", Machine::Q35, 8080);
}

#[test]
fn the_gce_tarball_holds_one_gnu_disk_raw_of_whole_gib_that_boots() {
    let elf = image(Target::Virtio, "http");
    let tarball = scratch("http.tar.gz");
    make(&elf.path, Format::Gce, "port=8080", &tarball).unwrap();
    let list = Command::new("tar")
        .arg("-tzvf")
        .arg(&tarball)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    let entries: Vec<&str> = list.lines().collect();
    assert_eq!(entries.len(), 1, "{list}");
    assert!(entries[0].ends_with(" disk.raw"), "{list}");
    // GNU format: the header's magic is "ustar  \0" (POSIX ustar has "ustar\000").
    let raw_tar = Command::new("gzip")
        .arg("-dc")
        .arg(&tarball)
        .output()
        .unwrap()
        .stdout;
    assert_eq!(&raw_tar[257..265], b"ustar  \0", "GNU tar header");
    let out = scratch("gce-extract");
    std::fs::create_dir_all(&out).unwrap();
    let st = Command::new("tar")
        .arg("-xzSf")
        .arg(&tarball)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let disk = out.join("disk.raw");
    let len = std::fs::metadata(&disk).unwrap().len();
    assert!(len > 0 && len.is_multiple_of(1 << 30), "{len} bytes");
    // Sparse in the tarball: it is far smaller than a GiB.
    assert!(std::fs::metadata(&tarball).unwrap().len() < 4 << 20);
    boot_and_get(&disk, "raw", Machine::Q35, 8080);
}

fn xtask(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO"))
        .current_dir(xtask::root())
        .args(["run", "-q", "-p", "xtask", "--"])
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn bad_requests_fail_with_clear_errors_and_touch_nothing() {
    let (ok, err) = xtask(&["image", "--example", "http", "--format", "vmdk"]);
    assert!(!ok && err.contains("unknown image format `vmdk`"), "{err}");
    let (ok, err) = xtask(&["image", "--example", "nosuch"]);
    assert!(!ok && err.contains("unknown example `nosuch`"), "{err}");
    let long = format!("name={}", "x".repeat(5000));
    let (ok, err) = xtask(&["image", "--example", "http", "--", &long]);
    assert!(
        !ok && err.contains("a disk image holds at most 4031"),
        "{err}"
    );
    // A file that is not ours is never overwritten.
    let precious = scratch("precious.img");
    std::fs::write(&precious, b"someone's data").unwrap();
    let (ok, err) = xtask(&[
        "image",
        "--example",
        "http",
        "--out",
        precious.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("refusing to overwrite"), "{err}");
    assert_eq!(std::fs::read(&precious).unwrap(), b"someone's data");
    let (ok, err) = xtask(&[
        "image",
        "--set-args",
        precious.to_str().unwrap(),
        "--",
        "a=b",
    ]);
    assert!(!ok && err.contains("not a raw disk written by"), "{err}");
    assert_eq!(std::fs::read(&precious).unwrap(), b"someone's data");
}

#[test]
fn a_disk_without_its_parameter_block_says_so_on_the_serial_console() {
    let elf = image(Target::Virtio, "http");
    let disk = scratch("broken.raw");
    make(&elf.path, Format::Raw, "", &disk).unwrap();
    let mut bytes = std::fs::read(&disk).unwrap();
    bytes[16 * 512..16 * 512 + 8].copy_from_slice(b"NOTFATA!");
    std::fs::write(&disk, &bytes).unwrap();
    let mut opts = fata_tests::BootOpts::default();
    opts.qemu.machine = Machine::Q35;
    opts.qemu.boot_disk = Some(BootDisk {
        path: disk.clone(),
        format: "raw",
    });
    let vm = xtask::runner::boot(&elf, &opts).unwrap();
    let line = vm
        .wait_for_line("fata loader:", std::time::Duration::from_secs(30))
        .unwrap();
    assert!(
        line.text.contains("no fata parameter block"),
        "{}",
        line.text
    );
    let _ = vm.wait(std::time::Duration::from_millis(10));
}
