//! Debugging an image with gdb (`run --gdb`, shared by `cargo xtask` and `cargo fata`): a build
//! that keeps what a debugger needs, QEMU halted with its gdb stub, and the one command that
//! attaches gdb with the image's symbols. See docs/debugging.md.
//!
//! A `--gdb` build goes to its own target directory (`target/<platform>-gdb`, or
//! `target/fata/<platform>-gdb` for an app of its own), so ordinary images, and the size figures
//! measured on them, are untouched. What it changes:
//! - bare-metal images keep their call frame information (`.eh_frame`, which `boot/link.ld`
//!   discards): they are linked with a copy of `boot/link.ld` that keeps it in the read-only
//!   segment ([`linker_script`]), so `bt` unwinds every frame, the precompiled `core`'s
//!   included, and ends at `fata_enter_rust`, whose CFI marks the outermost frame;
//! - `--release` keeps full debug information (`profile.release.debug=2`, `strip=false`): the
//!   ordinary release profile has `debug = false`. Optimised code still has variables
//!   `<optimized out>` and inlined frames; the dev profile (the default) debugs best.
//!
//! No stripped copy is made: QEMU boots the unstripped ELF itself (it loads only the PT_LOAD
//! segments; the debug sections cost no guest memory), so gdb reads the very file that runs.

use crate::build::{BuildOpts, Image};
use crate::{Result, bail, cmd};
use std::path::{Path, PathBuf};

/// gdb's name for the guest's architecture, set before `target remote`: a QEMU halted at reset
/// runs 16-bit code, and Debian's gdb 13 has been seen to need this to read the 64-bit
/// registers; with the image loaded it is what the ELF says anyway, so it costs nothing.
pub const ARCH: &str = "i386:x86-64";

/// The gdb script every printed command loads, as shipped in the repository.
const SCRIPT: &str = include_str!("../gdb/fata.gdb");

/// Where a `--gdb` build of an app whose ordinary build goes to `dir` goes.
pub fn target_dir(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push("-gdb");
    dir.with_file_name(name)
}

/// The cargo arguments of a `--gdb` build besides the ordinary ones.
fn cargo_extra(release: bool, minimal: bool) -> Vec<&'static str> {
    let mut v = Vec::new();
    if minimal {
        v.push("--no-default-features");
    }
    if release {
        v.extend([
            "--config",
            "profile.release.debug=2",
            "--config",
            "profile.release.strip=false",
        ]);
    }
    v
}

/// `boot/link.ld` as a `--gdb` image is linked: `.eh_frame` goes into the read-only segment
/// (right after `.rodata`) instead of being discarded. (A second script with `INSERT` cannot
/// do this next to a `-T` script in GNU ld.)
pub fn linker_script(link_ld: &str) -> Result<String> {
    const DISCARD: &str = "*(.eh_frame .eh_frame_hdr .eh_frame.*)";
    const BEFORE: &str = "    .note.Xen : ALIGN(4) {";
    if link_ld.matches(DISCARD).count() != 1 || link_ld.matches(BEFORE).count() != 1 {
        bail!(
            "boot/link.ld changed: xtask/src/gdb.rs no longer finds `{DISCARD}` and `{}` in it; update linker_script",
            BEFORE.trim()
        );
    }
    Ok(link_ld.replace(DISCARD, "*(.eh_frame_hdr)").replace(
        BEFORE,
        &format!(
            "    /* --gdb: the call frame information, for the debugger's unwinder. */\n    \
             .eh_frame : ALIGN(8) {{\n        KEEP(*(.eh_frame))\n        *(.eh_frame.*)\n    }} :rodata\n\n{BEFORE}"
        ),
    ))
}

/// Writes [`linker_script`] into `tdir`; its path.
fn write_linker_script(tdir: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(crate::root().join("boot/link.ld"))?;
    std::fs::create_dir_all(tdir)?;
    let path = tdir.join("link-gdb.ld");
    std::fs::write(&path, linker_script(&text)?)?;
    Ok(path)
}

/// Builds an image for debugging: the example of `opts` (without its default features if
/// `minimal`), or the app at `manifest`.
pub fn build(opts: &BuildOpts, manifest: Option<&Path>, minimal: bool) -> Result<Image> {
    let root = crate::root();
    let (manifest, package, base) = match manifest {
        Some(m) => {
            let (package, workspace) = crate::check::package_of(m)?;
            let dir = crate::check::app_target_dir(&workspace, opts.target);
            (m.to_path_buf(), package, dir)
        }
        None => {
            let known = crate::build::examples(&root);
            if !known.contains(&opts.example) {
                bail!(
                    "unknown example `{}`; the examples are: {}",
                    opts.example,
                    known.join(", ")
                );
            }
            let dir = if minimal {
                crate::build::minimal_target_dir(&root, opts.target)
            } else {
                opts.target.target_dir(&root)
            };
            (
                root.join("examples").join(&opts.example).join("Cargo.toml"),
                opts.example.clone(),
                dir,
            )
        }
    };
    let tdir = target_dir(&base);
    let script = if opts.target.bare_metal() {
        Some(write_linker_script(&tdir)?)
    } else {
        None
    };
    crate::build::build_app(
        &manifest,
        &package,
        opts.target,
        opts.release,
        &tdir,
        &cargo_extra(opts.release, minimal),
        script.as_deref(),
    )
}

/// The gdb script to load: the repository's `xtask/gdb/fata.gdb` when it is there (edits to
/// it take effect at once), else a copy written next to `image`.
pub fn script(image: &Path) -> Result<PathBuf> {
    let shipped = crate::root().join("xtask/gdb/fata.gdb");
    if shipped.is_file() {
        return Ok(shipped);
    }
    let copy = image.with_file_name("fata.gdb");
    std::fs::write(&copy, SCRIPT)?;
    Ok(copy)
}

/// A TCP port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// QEMU's arguments for a guest halted before its first instruction, with the gdb stub on
/// 127.0.0.1:`port` (not every interface: the stub can read and write all guest memory).
pub fn qemu_args(port: u16) -> Vec<String> {
    vec!["-S".into(), "-gdb".into(), format!("tcp:127.0.0.1:{port}")]
}

/// The command (program first) that attaches gdb to a guest halted by [`qemu_args`]. QEMU has
/// loaded the image into guest memory before the first instruction, so ordinary (software)
/// breakpoints set right after attaching hold (tests/tests/gdb.rs sets them there).
pub fn attach_command(image: &Path, port: u16, script: &Path) -> Vec<String> {
    vec![
        "gdb".into(),
        "-q".into(),
        "-ex".into(),
        format!("set architecture {ARCH}"),
        "-ex".into(),
        format!("target remote 127.0.0.1:{port}"),
        "-x".into(),
        script.display().to_string(),
        image.display().to_string(),
    ]
}

/// The command that runs a `unix` image under gdb with `args` (boot arguments).
pub fn unix_command(image: &Path, script: &Path, args: &[String]) -> Vec<String> {
    let mut v = vec![
        "gdb".into(),
        "-q".into(),
        "-x".into(),
        script.display().to_string(),
        "--args".into(),
        image.display().to_string(),
    ];
    v.extend(args.iter().cloned());
    v
}

/// A command as a shell reads it.
pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| cmd::shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_command_sets_the_architecture_before_connecting_and_loads_script_and_symbols() {
        let argv = attach_command(Path::new("/t/hello"), 4321, Path::new("/r/fata.gdb"));
        let line = shell_line(&argv);
        assert_eq!(
            line,
            "gdb -q -ex 'set architecture i386:x86-64' -ex 'target remote 127.0.0.1:4321' \
             -x /r/fata.gdb /t/hello"
        );
        assert_eq!(
            qemu_args(4321),
            ["-S", "-gdb", "tcp:127.0.0.1:4321"].map(String::from)
        );
    }

    #[test]
    fn unix_command_passes_boot_arguments_to_the_process() {
        let argv = unix_command(
            Path::new("/t/hello"),
            Path::new("/r/fata.gdb"),
            &["name=a b".into(), "count=1".into()],
        );
        assert_eq!(
            shell_line(&argv),
            "gdb -q -x /r/fata.gdb --args /t/hello 'name=a b' count=1"
        );
    }

    #[test]
    fn gdb_builds_have_their_own_target_directory_and_release_keeps_debug_info() {
        assert_eq!(
            target_dir(Path::new("/w/target/virtio")),
            Path::new("/w/target/virtio-gdb")
        );
        assert_eq!(
            target_dir(Path::new("/w/target/virtio-minimal")),
            Path::new("/w/target/virtio-minimal-gdb")
        );
        assert!(cargo_extra(false, false).is_empty());
        assert!(cargo_extra(true, false).contains(&"profile.release.debug=2"));
        assert_eq!(cargo_extra(false, true), ["--no-default-features"]);
    }

    #[test]
    fn the_gdb_linker_script_keeps_eh_frame_in_the_read_only_segment() {
        let ld = std::fs::read_to_string(crate::root().join("boot/link.ld")).unwrap();
        let g = linker_script(&ld).unwrap();
        assert!(!g.contains(".eh_frame .eh_frame_hdr"), "{g}");
        let eh = g.find("KEEP(*(.eh_frame))").unwrap();
        assert!(g.find(".rodata :").unwrap() < eh && eh < g.find(".note.Xen :").unwrap());
        assert!(linker_script("SECTIONS {}").is_err());
    }
}
