//! Building an application for a target, and checking the result.

use crate::target::{TRIPLE, Target};
use crate::{Error, Result, bail, cmd, elfcheck};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildOpts {
    /// The platform.
    pub target: Target,
    /// The example's name (a directory under `examples/`).
    pub example: String,
    /// Release profile (optimised, LTO) instead of dev.
    pub release: bool,
}

/// A built image.
#[derive(Clone, Debug)]
pub struct Image {
    /// The platform it was built for.
    pub target: Target,
    /// The linked file (an ELF kernel for bare-metal targets, an executable for `unix`).
    pub path: PathBuf,
}

/// The examples in the repository.
pub fn examples(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("examples"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().join("Cargo.toml").is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The cargo to run (the one that runs us, when there is one).
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // A target directory from the environment would defeat the per-platform directories.
    c.env_remove("CARGO_TARGET_DIR");
    c
}

/// Empty `libc.a`, `libm.a`, ... for bare-metal links: a crate that tries to link the host C
/// library gets unresolved symbols (and a clear diagnosis) instead of silently pulling glibc
/// into the image.
pub fn stub_libs(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for lib in ["c", "m", "rt", "pthread", "dl", "util", "gcc_s"] {
        let p = dir.join(format!("lib{lib}.a"));
        if !p.exists() {
            std::fs::write(&p, b"!<arch>\n")?;
        }
    }
    Ok(())
}

/// Builds `opts.example` for `opts.target` and, for bare-metal targets, checks the image.
pub fn build(opts: &BuildOpts) -> Result<Image> {
    let root = crate::root();
    let known = examples(&root);
    if !known.contains(&opts.example) {
        bail!(
            "unknown example `{}`; the examples are: {}",
            opts.example,
            known.join(", ")
        );
    }
    let manifest = root.join("examples").join(&opts.example).join("Cargo.toml");
    build_app(
        &manifest,
        &opts.example,
        opts.target,
        opts.release,
        &opts.target.target_dir(&root),
        &[],
        None,
    )
}

/// Where [`build_minimal`] builds: `target/<platform>-minimal`.
pub fn minimal_target_dir(root: &Path, target: Target) -> PathBuf {
    root.join("target")
        .join(format!("{}-minimal", target.name()))
}

/// Builds the example without its default cargo features (`http` without HTTPS), into a
/// target directory of its own (`target/<platform>-minimal`), so the ordinary build is
/// not rebuilt back and forth.
pub fn build_minimal(opts: &BuildOpts) -> Result<Image> {
    let root = crate::root();
    let manifest = root.join("examples").join(&opts.example).join("Cargo.toml");
    let tdir = minimal_target_dir(&root, opts.target);
    build_app(
        &manifest,
        &opts.example,
        opts.target,
        opts.release,
        &tdir,
        &["--no-default-features"],
        None,
    )
}

/// Builds the application at `manifest` (outside `examples/`) for `target`, into
/// [`crate::check::app_target_dir`].
pub fn build_manifest(manifest: &Path, target: Target, release: bool) -> Result<Image> {
    let (package, workspace) = crate::check::package_of(manifest)?;
    let tdir = crate::check::app_target_dir(&workspace, target);
    build_app(manifest, &package, target, release, &tdir, &[], None)
}

/// The cargo command that builds the application at `manifest` for `target` into `tdir`:
/// `cargo rustc` with the image's link arguments for bare-metal targets, `cargo build`
/// otherwise. `extra` cargo arguments go before the link arguments.
pub fn cargo_command(
    manifest: &Path,
    package: &str,
    target: Target,
    tdir: &Path,
    release: bool,
    extra: &[&str],
) -> Result<Command> {
    cargo_command_with(manifest, package, target, tdir, release, extra, None)
}

/// [`cargo_command`], linking a bare-metal image with `link_script` instead of
/// `boot/link.ld` when one is given.
fn cargo_command_with(
    manifest: &Path,
    package: &str,
    target: Target,
    tdir: &Path,
    release: bool,
    extra: &[&str],
    link_script: Option<&Path>,
) -> Result<Command> {
    let mut c = cargo();
    c.current_dir(crate::root());
    if !target.rustflags().is_empty() {
        c.env(
            "CARGO_ENCODED_RUSTFLAGS",
            encoded_rustflags(target.rustflags()),
        );
        c.env_remove("RUSTFLAGS");
    }
    if target.bare_metal() {
        stub_libs(&tdir.join("stubs"))?;
        c.arg("rustc");
    } else {
        c.arg("build");
    }
    // Images need `panic = "abort"` (the precompiled `core` cannot unwind without std). An app
    // in its own repository gets it from here, not from a profile its author must know about.
    c.args([
        "--config",
        "profile.dev.panic=\"abort\"",
        "--config",
        "profile.release.panic=\"abort\"",
    ]);
    c.arg("--manifest-path")
        .arg(manifest)
        .args(["--package", package, "--bin", package, "--target", TRIPLE])
        .arg("--target-dir")
        .arg(tdir)
        .args(["--features", target.feature()])
        .args(if declares_image_feature(manifest) {
            &["--features", "image"][..]
        } else {
            &[]
        })
        .args(extra);
    if release {
        c.arg("--release");
    }
    if target.bare_metal() {
        c.arg("--");
        for a in target.link_args(&crate::root(), &tdir.join("stubs")) {
            let a = match link_script {
                Some(s) if a.starts_with("-T") => format!("-T{}", s.display()),
                _ => a,
            };
            c.arg("-C").arg(format!("link-arg={a}"));
        }
    }
    Ok(c)
}

/// The user's rustflags (`CARGO_ENCODED_RUSTFLAGS`, else `RUSTFLAGS`) followed by `ours`, in
/// cargo's encoding (separated by 0x1f), so an image build adds its flags without dropping the
/// user's.
pub(crate) fn encoded_rustflags(ours: &[&str]) -> String {
    let mut flags: Vec<String> = match std::env::var("CARGO_ENCODED_RUSTFLAGS") {
        Ok(e) if !e.is_empty() => e.split('\x1f').map(String::from).collect(),
        _ => std::env::var("RUSTFLAGS")
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect(),
    };
    flags.extend(ours.iter().map(|f| f.to_string()));
    flags.join("\x1f")
}

/// Whether the package at `manifest` declares a feature `image` (apps made by `cargo fata new`
/// require it for their binary, so that `cargo test` does not build it for the host).
fn declares_image_feature(manifest: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(manifest) else {
        return false;
    };
    let mut in_features = false;
    text.lines().map(str::trim).any(|l| {
        if l.starts_with('[') {
            in_features = l == "[features]";
            false
        } else {
            in_features && l.split('=').next().is_some_and(|k| k.trim() == "image")
        }
    })
}

/// Builds the application at `manifest` into `tdir` and checks the image. `extra` cargo
/// arguments go before the link arguments; `link_script` replaces `boot/link.ld` for a
/// bare-metal image (`--gdb` links with one that keeps the call frame information).
pub(crate) fn build_app(
    manifest: &Path,
    package: &str,
    target: Target,
    release: bool,
    tdir: &Path,
    extra: &[&str],
    link_script: Option<&Path>,
) -> Result<Image> {
    let mut c = cargo_command_with(manifest, package, target, tdir, release, extra, link_script)?;
    let profile = if release { "release" } else { "debug" };
    let what = format!("building `{package}` for {}", target.name());
    if target.bare_metal() {
        // Bare-metal builds keep the compiler's output: if the build fails because a dependency
        // needs the host OS, the explanation replaces the wall of compiler and linker errors.
        cmd::echo(&c);
        let out = c.output()?;
        if !out.status.success() {
            let raw = String::from_utf8_lossy(&out.stderr).into_owned();
            return Err(explain(manifest, target, &what, &raw));
        }
    } else {
        cmd::run(&mut c, &what)?;
    }
    let path = tdir.join(TRIPLE).join(profile).join(package);
    if !path.is_file() {
        bail!("cargo succeeded but {} is missing", path.display());
    }
    if target.bare_metal() {
        let report = elfcheck::check(&path)?;
        for w in &report.warnings {
            eprintln!("xtask: warning: {}: {w}", path.display());
        }
        if !report.problems.is_empty() {
            let mut msg = format!("{} is not a valid fata image:", path.display());
            for p in &report.problems {
                msg.push_str(&format!("\n  - {p}"));
            }
            return Err(explain(manifest, target, &msg, ""));
        }
    }
    if target == Target::Xen {
        write_xl(&path, package)?;
    }
    Ok(Image { target, path })
}

/// Writes `IMAGE.xl` next to a `xen` image: a PVH domain with one network card on the
/// `xenbr0` bridge, a disk line to fill in, and the boot arguments in `extra`.
fn write_xl(image: &Path, package: &str) -> Result<()> {
    let cfg = crate::xen::xl_config(&crate::xen::XlConfig {
        name: package.to_string(),
        kernel: image.display().to_string(),
        memory_mib: 32,
        vifs: vec!["bridge=xenbr0".into()],
        ..Default::default()
    })?;
    let text = format!(
        "# {package} for Xen, written by `cargo xtask build --target xen`.\n\
         # Start it with `xl create -c {name}.xl`; boot arguments (fata's key=value words, e.g.\n\
         # ipv4=10.0.0.2/24 gateway=10.0.0.1 log=debug) go in `extra`.\n\
         {cfg}\
\
         # A disk for fata::kv (disk0 is the first): uncomment and name a raw image or a device.\n\
         # disk = [ \"format=raw,vdev=xvda,access=rw,target=/srv/{package}.img\" ]\n",
        name = package
    );
    let xl = image.with_extension("xl");
    std::fs::write(&xl, text).map_err(|e| Error(format!("writing {}: {e}", xl.display())))
}

/// Turns a failed bare-metal build into the dependency analysis of `cargo xtask check`, or,
/// when that finds nothing, the compiler's own output.
fn explain(manifest: &Path, target: Target, what: &str, raw: &str) -> Error {
    let opts = crate::check::CheckOpts {
        manifest: manifest.to_path_buf(),
        verbose: false,
    };
    let raw = if raw.is_empty() {
        "(no compiler output)"
    } else {
        raw
    };
    match crate::check::check_target(&opts, target) {
        Ok(r) if !r.findings.is_empty() => Error(format!(
            "{what} failed: a dependency needs the host OS\n{}",
            crate::check::render(&[r], false)
        )),
        Ok(r) => {
            let mut msg = format!("{what} failed:\n{raw}");
            for w in &r.warnings {
                msg.push_str(&format!("\n(dependency analysis) warning: {w}"));
            }
            Error(msg)
        }
        Err(e) => Error(format!(
            "{what} failed:\n{raw}\n(the dependency analysis of `cargo xtask check` could not run: {e})"
        )),
    }
}

/// Size in bytes of the image with symbols and debug information stripped.
pub fn stripped_size(path: &Path) -> Result<u64> {
    let out = path.with_extension("stripped");
    let mut c = Command::new("strip");
    c.arg("--strip-all").arg("-o").arg(&out).arg(path);
    cmd::run(&mut c, "stripping the image")?;
    Ok(std::fs::metadata(&out)?.len())
}
