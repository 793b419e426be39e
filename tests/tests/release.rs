//! `cargo xtask release` and `cargo xtask deploy-config`: every artefact of `examples/http`,
//! each started and asked for a page before it is written, with sums that verify; libvirt XML
//! that libvirt's own schema accepts; Firecracker JSON that parses and names files that exist;
//! an `xl` file with every key `xl` needs.
#![forbid(unsafe_code)]

use std::process::Command;
use xtask::deploy::{DeployOpts, firecracker, libvirt, xl};

#[test]
fn release_makes_every_artefact_proves_the_bootable_ones_and_sums_them() {
    let r = xtask::release::release(&xtask::app::App::Example("http".into()), &[]).unwrap();
    let names: Vec<&str> = r.artefacts.iter().map(|a| a.name.as_str()).collect();
    for want in [
        "http-virtio.elf",
        "http-xen.elf",
        "http-unix",
        "http.raw",
        "http-gce.tar.gz",
        "http.qcow2",
        "http-kvm.xml",
        "http-xen.xml",
        "http.firecracker.json",
        "http.xl",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
        assert!(r.dir.join(want).is_file(), "{want}");
    }
    for bootable in [
        "http-virtio.elf",
        "http-unix",
        "http.raw",
        "http-gce.tar.gz",
        "http.qcow2",
    ] {
        let a = r.artefacts.iter().find(|a| a.name == bootable).unwrap();
        let proof = a.proof.as_deref().unwrap_or("");
        assert!(
            proof.contains("answered with an HTTP response"),
            "{bootable}: {proof:?}"
        );
    }
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&r.dir)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let manifest = std::fs::read_to_string(r.dir.join("manifest.json")).unwrap();
    let v = xtask::json::parse(&manifest).unwrap();
    assert_eq!(
        v.get("artefacts")
            .and_then(|a| a.as_array())
            .map(|a| a.len()),
        Some(names.len())
    );
}

fn opts() -> DeployOpts {
    let dir = std::env::temp_dir().join(format!("fata-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kernel = fata_tests::image(fata_tests::Target::Virtio, "kv").path;
    let disk = dir.join("kv.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let mut o = DeployOpts::new("kv", &kernel);
    o.disks = vec![disk];
    o.args = "format=true ipv4=10.0.0.2/24 gateway=10.0.0.1".into();
    o
}

#[test]
fn libvirt_xml_validates_against_libvirts_schema() {
    xtask::setup::ensure_program("virt-xml-validate", "libvirt-clients").unwrap();
    xtask::setup::ensure_program("xmllint", "libxml2-utils").unwrap();
    let dir = std::env::temp_dir().join(format!("fata-deploy-xml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut disk_boot = opts();
    disk_boot.boot_disk = Some(dir.join("kv.raw"));
    let mut tcg = opts();
    tcg.domain_type = "qemu".into();
    for (name, text) in [
        ("kernel.xml", libvirt(&opts(), false).unwrap()),
        ("tcg.xml", libvirt(&tcg, false).unwrap()),
        ("disk.xml", libvirt(&disk_boot, false).unwrap()),
        ("xen.xml", libvirt(&opts(), true).unwrap()),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, &text).unwrap();
        let o = Command::new("virt-xml-validate")
            .arg(&p)
            .arg("domain")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}: {}{}\n{text}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn firecracker_json_parses_and_names_files_that_exist() {
    let o = opts();
    let v = xtask::json::parse(&firecracker(&o).unwrap()).unwrap();
    let kernel = v
        .get("boot-source")
        .and_then(|b| b.get("kernel_image_path"))
        .and_then(|k| k.as_str())
        .unwrap();
    assert!(std::path::Path::new(kernel).is_file(), "{kernel}");
    let args = v
        .get("boot-source")
        .and_then(|b| b.get("boot_args"))
        .and_then(|a| a.as_str());
    assert_eq!(args, Some(o.args.as_str()));
    let drives = v.get("drives").and_then(|d| d.as_array()).unwrap();
    assert_eq!(drives.len(), 1);
    let disk = drives[0]
        .get("path_on_host")
        .and_then(|p| p.as_str())
        .unwrap();
    assert!(std::path::Path::new(disk).is_file(), "{disk}");
}

#[test]
fn the_xl_file_has_every_key_xl_needs() {
    let text = xl(&opts()).unwrap();
    for key in [
        "name = \"kv\"",
        "type = \"pvh\"",
        "kernel = \"/",
        "memory = 64",
        "vif = [",
        "disk = [",
        "extra = \"format=true",
    ] {
        assert!(text.contains(key), "{key}\n{text}");
    }
}

/// The part of the libvirt run that must share libvirtd's private mounts: started in the
/// test's network namespace under `unshare -m`.
const START_LIBVIRTD: &str = r#"set -e
D="$1"; XML="$2"
mkdir -p "$D/etc" "$D/run" "$D/lib" "$D/log"
# libvirtd looks up its built-in QEMU user before it reads qemu.conf: in this mount namespace
# only, that user is root, and qemu.conf keeps QEMU as root without virtlogd or relabelling.
cp /etc/passwd "$D/passwd"; echo "libvirt-qemu:x:0:0:fata test:/:/usr/sbin/nologin" >> "$D/passwd"
cp /etc/group "$D/group"; echo "libvirt-qemu:x:0:" >> "$D/group"; grep -q "^kvm:" /etc/group || echo "kvm:x:0:" >> "$D/group"
mount --bind "$D/passwd" /etc/passwd
mount --bind "$D/group" /etc/group
printf 'user = "root"\ngroup = "root"\ndynamic_ownership = 0\nremember_owner = 0\nsecurity_driver = "none"\nstdio_handler = "file"\n' > "$D/etc/qemu.conf"
mkdir -p /etc/libvirt /run/libvirt /var/lib/libvirt /var/log/libvirt
mount --bind "$D/etc" /etc/libvirt
mount --bind "$D/run" /run/libvirt
mount --bind "$D/lib" /var/lib/libvirt
mount --bind "$D/log" /var/log/libvirt
LIBVIRT_LOG_OUTPUTS="3:file:$D/libvirtd.log" libvirtd -d -p "$D/libvirtd.pid"
i=0; while [ ! -S "$D/run/libvirt-sock" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
virsh -c "qemu:///system?socket=$D/run/libvirt-sock" create "$XML"
"#;

/// A real libvirtd (started by the test, in its own network and mount namespaces) starts the
/// QEMU/KVM XML as a TCG domain, and the site answers byte-exact.
#[test]
fn a_real_libvirtd_runs_the_qemu_domain_and_it_serves() {
    xtask::setup::ensure_program("virsh", "libvirt-clients").unwrap();
    xtask::setup::ensure_program("libvirtd", "libvirt-daemon").unwrap();
    let driver = std::path::Path::new(
        "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so",
    );
    if !driver.exists() {
        xtask::setup::ensure_program(
            "/nonexistent/libvirt-qemu-driver",
            "libvirt-daemon-driver-qemu",
        )
        .unwrap();
    }
    let ns = fata_tests::Netns::new("libvirt", 1500);
    let d = std::env::temp_dir().join(format!("fata-libvirt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let name = format!("fata-test-{}", std::process::id());
    let mut o = DeployOpts::new(
        &name,
        &fata_tests::image(fata_tests::Target::Virtio, "http").path,
    );
    o.domain_type = "qemu".into();
    o.tap = Some("tap0".into());
    o.args = "ipv4=10.77.0.2/24".into();
    let xml = d.join("domain.xml");
    std::fs::write(&xml, libvirt(&o, false).unwrap()).unwrap();
    let script = d.join("start.sh");
    std::fs::write(&script, START_LIBVIRTD).unwrap();
    let (ok, out) = ns.run(
        "unshare",
        &[
            "-m",
            "--propagation",
            "private",
            "sh",
            script.to_str().unwrap(),
            d.to_str().unwrap(),
            xml.to_str().unwrap(),
        ],
    );
    let stop = || {
        let sock = format!("qemu:///system?socket={}/run/libvirt-sock", d.display());
        let _ = Command::new("virsh")
            .args(["-c", &sock, "destroy", &name])
            .output();
        if let Ok(pid) = std::fs::read_to_string(d.join("libvirtd.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    };
    if !ok {
        stop();
        let log = std::fs::read_to_string(d.join("libvirtd.log")).unwrap_or_default();
        panic!("libvirtd or virsh create failed: {out}\n{log}");
    }
    let site = fata_tests::site_dir();
    let result = std::panic::catch_unwind(|| {
        fata_tests::netclient(&ns, &["wait", "10.77.0.2", "80", "60"]);
        fata_tests::netclient(
            &ns,
            &["http", "10.77.0.2", "80", site.to_str().unwrap(), "40", "4"],
        );
    });
    stop();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
