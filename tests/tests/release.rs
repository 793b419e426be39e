//! `cargo xtask release` and `cargo xtask deploy-config`: every artefact of `examples/http`,
//! each started and asked for a page before it is written, with sums that verify; libvirt XML
//! that libvirt's own schema accepts; Firecracker JSON that parses and names files that exist;
//! an `xl` file with every key `xl` needs.
#![forbid(unsafe_code)]

use std::process::Command;
use xtask::deploy::{DeployOpts, firecracker, libvirt, xl};

#[test]
fn release_makes_every_artefact_proves_the_bootable_ones_and_sums_them() {
    let r = xtask::release::release("http", &[]).unwrap();
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
