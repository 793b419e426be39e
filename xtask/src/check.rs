//! `cargo xtask check`: can this application run on each target, and if not, which dependency
//! needs the host OS, what it uses, and through which path the application pulls it in.
//!
//! Three independent detectors, none a list of crate names:
//! 1. **the crate root**: a library without `#![no_std]` links `std`; one with
//!    `#![cfg_attr(not(feature = "X"), no_std)]` links it when feature X is on — and
//!    `cargo tree -e features` tells which dependency turned X on;
//! 2. **the object code**: every dependency's rlib (as built for the image, from cargo's JSON
//!    artefact messages, decoded by [`crate::cargo_message`]) is scanned for undefined symbols
//!    (read by [`crate::symbols`], no external tool): `std::…` functions it calls, and C
//!    symbols that no Rust crate, the Rust runtime libraries or the image defines (libc calls
//!    such as `getpid`, pulled in silently by crates gated on `cfg(unix)`);
//! 3. **the link itself**: the image links against empty `libc.a`/`libm.a`/`libpthread.a`/…
//!    stubs, so a host-library dependency cannot slip through as a "successful" build.
//!
//! The path from the application to each culprit comes from `cargo tree`.
//!
//! A detector never turns itself off quietly: a crate root, rlib or toolchain library that
//! cannot be read, or a line of cargo's output that cannot be decoded, becomes a warning in
//! the report that names the file and what was therefore not checked.

use crate::cargo_message::Message;
use crate::target::{TRIPLE, Target};
use crate::{Error, Result, bail, symbols};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What to check.
#[derive(Clone, Debug)]
pub struct CheckOpts {
    /// The application's manifest.
    pub manifest: PathBuf,
    /// Keep the raw compiler output in the report.
    pub verbose: bool,
}

/// A dependency that cannot run on a bare-metal target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The crate.
    pub krate: String,
    /// What it needs from the host, in words.
    pub uses: Vec<String>,
    /// The dependency path, application first.
    pub path: Vec<String>,
    /// The feature that makes it need `std`, and who enabled it, if that is the cause.
    pub feature: Option<(String, Vec<String>)>,
}

/// The verdict for one target.
#[derive(Clone, Debug)]
pub struct TargetReport {
    /// The target.
    pub target: Target,
    /// Whether the application builds and can run there.
    pub ok: bool,
    /// Why not.
    pub findings: Vec<Finding>,
    /// A build failure not explained by any finding (first lines of the compiler's output).
    pub unexplained: Option<String>,
    /// The compiler's full output (shown with `--verbose`).
    pub raw: String,
    /// What the analysis could not look at, and why (a verdict of `ok` holds only for the
    /// rest).
    pub warnings: Vec<String>,
    /// Host-OS code in dependencies that the image does not reach (it linked without a C
    /// library): fine now, named so that a later build failure is no surprise.
    pub notes: Vec<String>,
}

/// The package name of a manifest and the root of its workspace.
pub fn package_of(manifest: &Path) -> Result<(String, PathBuf)> {
    let text = std::fs::read_to_string(manifest)
        .map_err(|e| Error(format!("{}: {e}", manifest.display())))?;
    let mut in_package = false;
    let mut name = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package
            && let Some(v) = line
                .strip_prefix("name")
                .map(str::trim_start)
                .and_then(|l| l.strip_prefix('='))
        {
            name = Some(v.trim().trim_matches('"').to_string());
        }
    }
    let name =
        name.ok_or_else(|| Error(format!("{} has no [package] name", manifest.display())))?;
    let out = crate::build::cargo()
        .args([
            "locate-project",
            "--workspace",
            "--message-format",
            "plain",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()?;
    if !out.status.success() {
        bail!(
            "cargo locate-project failed for {}: {}",
            manifest.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ws = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let root = ws
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| Error("no workspace root".into()))?;
    Ok((name, root))
}

/// Where an application outside fata's workspace is built: `target/fata/<platform>` under its
/// own workspace root (`workspace`), one directory per platform, so switching platforms never
/// rebuilds or clobbers another's artefacts and nothing lands in fata's checkout.
pub fn app_target_dir(workspace: &Path, target: Target) -> PathBuf {
    workspace.join("target/fata").join(target.name())
}

/// One node of `cargo tree -e normal,features`.
#[derive(Debug, Default)]
struct Tree {
    /// Package name -> first path from the root (names).
    paths: HashMap<String, Vec<String>>,
    /// (crate, feature) -> packages that enabled it.
    enablers: BTreeMap<(String, String), BTreeSet<String>>,
    /// Proc-macro packages (never linked into the image).
    proc_macros: BTreeSet<String>,
}

fn cargo_tree(manifest: &Path, package: &str) -> Result<Tree> {
    let out = crate::build::cargo()
        .args(["tree", "--manifest-path"])
        .arg(manifest)
        // Without the platform feature: it only adds fata's own crates, and cargo refuses
        // dependency features for packages outside the workspace.
        .args(["-p", package, "--target", TRIPLE])
        .args([
            "-e",
            "normal,features",
            "--prefix",
            "depth",
            "--format",
            "{p}|{f}",
        ])
        .output()?;
    if !out.status.success() {
        bail!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(parse_tree(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_tree(text: &str) -> Tree {
    let mut t = Tree::default();
    // Stack of (depth, Some(package name)) or (depth, None) for feature nodes.
    let mut stack: Vec<(usize, Option<String>)> = Vec::new();
    for line in text.lines() {
        let digits = line.chars().take_while(char::is_ascii_digit).count();
        let Ok(depth) = line[..digits].parse::<usize>() else {
            continue;
        };
        let rest = &line[digits..];
        while stack.last().is_some_and(|(d, _)| *d >= depth) {
            stack.pop();
        }
        let parent_pkg = stack.iter().rev().find_map(|(_, p)| p.clone());
        if let Some((krate, feat)) = rest.split_once(" feature \"") {
            let feat = feat.split('"').next().unwrap_or("").to_string();
            if let Some(p) = &parent_pkg {
                t.enablers
                    .entry((krate.to_string(), feat))
                    .or_default()
                    .insert(p.clone());
            }
            stack.push((depth, None));
        } else {
            let (pkg, _features) = rest.split_once('|').unwrap_or((rest, ""));
            let name = pkg.split_whitespace().next().unwrap_or("").to_string();
            if pkg.contains("(proc-macro)") {
                t.proc_macros.insert(name.clone());
            }
            if !t.paths.contains_key(&name) {
                let mut path: Vec<String> = stack.iter().filter_map(|(_, p)| p.clone()).collect();
                path.push(name.clone());
                t.paths.insert(name.clone(), path);
            }
            stack.push((depth, Some(name)));
        }
    }
    t
}

/// Whether a crate root links `std`: `Some(None)` always, `Some(Some(f))` when feature `f` is
/// on, `None` if it is `no_std`.
fn std_condition(root_src: &str) -> Option<Option<String>> {
    let code: String = root_src
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.contains("#![no_std]") {
        return None;
    }
    // #![cfg_attr(not(feature="std"),no_std)]
    if let Some(i) = compact.find("#![cfg_attr(not(feature=\"") {
        let rest = &compact[i + "#![cfg_attr(not(feature=\"".len()..];
        if let Some((feat, tail)) = rest.split_once("\"),no_std)]") {
            let _ = tail;
            return Some(Some(feat.to_string()));
        }
    }
    if compact.contains("no_std") {
        // Some other condition (test-only std, target-dependent): leave it to the object scan.
        return None;
    }
    Some(None)
}

/// A library built for the image.
struct Lib {
    rlibs: Vec<PathBuf>,
    src: PathBuf,
    features: BTreeSet<String>,
}

/// What cargo's JSON output of one build says.
#[derive(Default)]
struct Messages {
    /// Package name -> its libraries built for the image.
    libs: BTreeMap<String, Lib>,
    /// The compiler's rendered diagnostics, and any line that is not a message.
    raw: String,
    /// Lines that look like messages but could not be decoded.
    warnings: Vec<String>,
    /// The `success` of the `build-finished` message, if there was one.
    finished: Option<bool>,
}

/// Whether a file cargo produced was built for the image's target (build scripts and
/// proc-macros are built for the host, outside the `<target dir>/<triple>/` directory, and
/// never linked into the image).
fn built_for_image(file: &Path) -> bool {
    file.components().any(|c| c.as_os_str() == TRIPLE)
}

/// Decodes cargo's standard output in `--message-format json…`.
fn read_messages(stdout: &str) -> Messages {
    let mut m = Messages::default();
    for line in stdout.lines() {
        if !line.trim_start().starts_with('{') {
            // Not a message: a build script or proc-macro printing to standard output.
            m.raw.push_str(line);
            m.raw.push('\n');
            continue;
        }
        match Message::parse(line) {
            Err(e) => {
                let shown: String = line.chars().take(120).collect();
                m.warnings.push(format!(
                    "a line of cargo's output could not be decoded ({e}), so what it reported was not checked: {shown}{}",
                    if shown.len() < line.len() { "…" } else { "" }
                ));
            }
            Ok(Message::Artifact(a)) if a.is_linkable_lib() => {
                let rlibs: Vec<PathBuf> = a
                    .filenames
                    .iter()
                    .filter(|f| f.extension().is_some_and(|x| x == "rlib") && built_for_image(f))
                    .cloned()
                    .collect();
                if rlibs.is_empty() {
                    continue;
                }
                let lib = m.libs.entry(a.package_name()).or_insert_with(|| Lib {
                    rlibs: Vec::new(),
                    src: a.src_path.clone(),
                    features: BTreeSet::new(),
                });
                lib.rlibs.extend(rlibs);
                lib.features.extend(a.features);
            }
            Ok(Message::CompilerMessage {
                rendered: Some(r), ..
            }) => m.raw.push_str(&r),
            Ok(Message::BuildFinished { success }) => m.finished = Some(success),
            Ok(_) => {}
        }
    }
    m
}

/// The artefacts of one build, and the compiler's output.
struct Built {
    libs: BTreeMap<String, Lib>,
    success: bool,
    raw: String,
    warnings: Vec<String>,
}

fn build_json(manifest: &Path, package: &str, target: Target, target_dir: &Path) -> Result<Built> {
    let mut c = crate::build::cargo_command(
        manifest,
        package,
        target,
        target_dir,
        false,
        &["--message-format", "json-diagnostic-rendered-ansi"],
    )?;
    crate::cmd::echo(&c);
    let out = c.output()?;
    let mut m = read_messages(&String::from_utf8_lossy(&out.stdout));
    m.raw.push_str(&String::from_utf8_lossy(&out.stderr));
    if m.finished.is_none() {
        m.warnings.push(
            "cargo's output ended without a `build-finished` message: libraries it built after that point were not checked".into(),
        );
    }
    Ok(Built {
        libs: m.libs,
        success: out.status.success(),
        raw: m.raw,
        warnings: m.warnings,
    })
}

/// Everything the toolchain's own support libraries define: `core`, `alloc`,
/// `compiler_builtins` and the C compiler's `libgcc` (128-bit arithmetic and the like; no OS
/// behind any of them). The warnings say which of them could not be read: the C symbols they
/// define would then be reported as calls into the host C library.
fn toolchain_defined() -> (BTreeSet<String>, Vec<String>) {
    const RUST_LIBS: [&str; 3] = ["core", "alloc", "compiler_builtins"];
    const CONSEQUENCE: &str =
        "C symbols it defines may be reported as calls into the host C library";
    let mut libs = Vec::new();
    let mut warnings = Vec::new();
    let stderr_or = |r: std::io::Result<std::process::Output>| match r {
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        Err(e) => e.to_string(),
    };
    // In the root, like the cargo that builds the image, so that both see the same toolchain.
    match Command::new("rustc")
        .current_dir(crate::root())
        .args(["--print", "sysroot"])
        .output()
    {
        Ok(out) if out.status.success() => {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
                .join(format!("lib/rustlib/{TRIPLE}/lib"));
            let names: Vec<String> = std::fs::read_dir(&dir)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            for lib in RUST_LIBS {
                let prefix = format!("lib{lib}-");
                match names
                    .iter()
                    .find(|n| n.starts_with(&prefix) && n.ends_with(".rlib"))
                {
                    Some(n) => libs.push(dir.join(n)),
                    None => warnings.push(format!(
                        "the toolchain library `{lib}` was not found in {}: {CONSEQUENCE}",
                        dir.display()
                    )),
                }
            }
        }
        r => warnings.push(format!(
            "`rustc --print sysroot` failed ({}), so the Rust toolchain's libraries were not read: {CONSEQUENCE}",
            stderr_or(r)
        )),
    }
    match Command::new("cc").arg("-print-libgcc-file-name").output() {
        Ok(out) if out.status.success() => {
            libs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        }
        r => warnings.push(format!(
            "`cc -print-libgcc-file-name` failed ({}), so libgcc was not read: {CONSEQUENCE}",
            stderr_or(r)
        )),
    }
    let mut def = BTreeSet::new();
    for l in libs {
        match symbols::archive_symbols(&l) {
            Ok(s) => def.extend(s.defined),
            Err(e) => warnings.push(format!(
                "a toolchain library was not read: {e}; {CONSEQUENCE}"
            )),
        }
    }
    (def, warnings)
}

/// Symbols the image itself provides at link time (the linker script, the allocator shim).
fn provided_at_link(name: &str) -> bool {
    name.starts_with("__rust_")
        || name.starts_with("__rg_")
        || name.starts_with("__rdl_")
        || name.starts_with("__text_")
        || name.starts_with("__rodata_")
        || name.starts_with("__data_")
        || name.starts_with("__bss_")
        || name.starts_with("__image_")
        || name.starts_with("_GLOBAL_OFFSET_TABLE_")
        || name == "__fata_start"
}

fn demangle(s: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(s))
}

fn is_std_symbol(s: &str) -> bool {
    let d = demangle(s);
    d.starts_with("std::") || d.starts_with("<std::") || d.contains(" as std::")
}

/// Runs the analysis for one target.
pub fn check_target(opts: &CheckOpts, target: Target) -> Result<TargetReport> {
    let (package, ws_root) = package_of(&opts.manifest)?;
    let target_dir = if ws_root == crate::root() {
        target.target_dir(&ws_root)
    } else {
        app_target_dir(&ws_root, target)
    };
    let built = build_json(&opts.manifest, &package, target, &target_dir)?;
    let mut warnings = built.warnings;
    if !target.bare_metal() {
        return Ok(TargetReport {
            target,
            ok: built.success,
            findings: Vec::new(),
            unexplained: (!built.success).then(|| first_errors(&built.raw)),
            raw: built.raw,
            warnings,
            notes: Vec::new(),
        });
    }
    if built.libs.is_empty() {
        warnings.push(
            "cargo reported no library built for the image, so no dependency was checked".into(),
        );
    }
    let tree = cargo_tree(&opts.manifest, &package)?;
    let (mut all_defined, toolchain_warnings) = toolchain_defined();
    warnings.extend(toolchain_warnings);
    // Package name -> the undefined symbols of its rlibs.
    let mut undefined: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (name, lib) in &built.libs {
        let u = undefined.entry(name).or_default();
        for r in &lib.rlibs {
            match symbols::archive_symbols(r) {
                Ok(s) => {
                    all_defined.extend(s.defined);
                    u.extend(s.undefined);
                }
                Err(e) => warnings.push(format!(
                    "the object code of `{name}` was not scanned for calls into std or the C library: {e}"
                )),
            }
        }
    }
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    for (name, lib) in &built.libs {
        if name == &package || tree.proc_macros.contains(name) {
            continue;
        }
        let mut uses = Vec::new();
        let mut feature = None;
        match std::fs::read_to_string(&lib.src) {
            Err(e) => warnings.push(format!(
                "the crate root of `{name}` could not be read, so whether it links std is unknown: {}: {e}",
                lib.src.display()
            )),
            Ok(text) => match std_condition(&text) {
                Some(None) => {
                    uses.push("links std: its crate root is not `#![no_std]`".to_string())
                }
                Some(Some(f)) if lib.features.contains(&f) => {
                    let by: Vec<String> = tree
                        .enablers
                        .get(&(name.clone(), f.clone()))
                        .map(|s| s.iter().cloned().collect())
                        .unwrap_or_default();
                    uses.push(format!("links std: its feature `{f}` is on"));
                    feature = Some((f, by));
                }
                _ => {}
            },
        }
        if let Some(undef) = undefined.get(name.as_str()) {
            let stds: Vec<String> = undef
                .iter()
                .filter(|s| is_std_symbol(s))
                .map(|s| demangle(s))
                .collect();
            if !stds.is_empty() {
                let shown: Vec<String> = stds.iter().take(3).cloned().collect();
                uses.push(format!(
                    "calls into std: {}{}",
                    shown.join(", "),
                    if stds.len() > 3 {
                        format!(" and {} more", stds.len() - 3)
                    } else {
                        String::new()
                    }
                ));
            }
            let c: Vec<&String> = undef
                .iter()
                .filter(|s| {
                    !s.starts_with("_ZN")
                        && !s.starts_with("_R")
                        && !all_defined.contains(*s)
                        && !provided_at_link(s)
                })
                .collect();
            if !c.is_empty() {
                let shown: Vec<&str> = c.iter().take(5).map(|s| s.as_str()).collect();
                let text = format!(
                    "calls the host C library: {}{}",
                    shown.join(", "),
                    if c.len() > 5 {
                        format!(" and {} more", c.len() - 5)
                    } else {
                        String::new()
                    }
                );
                // The image links against empty C libraries (detector 3), so when that link
                // succeeded, none of these calls is reachable from the application: the
                // linker dropped them (ring's unused SystemRandom → getrandom 0.2, say).
                // Not a finding, but worth knowing: using that code later will fail to link.
                if built.success && uses.is_empty() {
                    notes.push(format!(
                        "`{name}` {text}, unreachable from this application (the image \
                         linked without a C library): fine until something calls it"
                    ));
                } else {
                    uses.push(text);
                }
            }
        }
        if !uses.is_empty() {
            let path = tree
                .paths
                .get(name)
                .cloned()
                .unwrap_or_else(|| vec![package.clone(), name.clone()]);
            findings.push(Finding {
                krate: name.clone(),
                uses,
                path,
                feature,
            });
        }
    }
    // Report the crates closest to the application first, and drop crates that only appear
    // below another culprit with the same cause (std itself is one finding per path).
    findings.sort_by_key(|f| (f.path.len(), f.krate.clone()));
    let ok = built.success && findings.is_empty();
    let unexplained = (!built.success && findings.is_empty()).then(|| first_errors(&built.raw));
    Ok(TargetReport {
        target,
        ok,
        findings,
        unexplained,
        raw: built.raw,
        warnings,
        notes,
    })
}

fn first_errors(raw: &str) -> String {
    raw.lines()
        .filter(|l| !l.trim().is_empty())
        .take(12)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Suggests the usual fixes for a finding.
pub fn advice(f: &Finding) -> String {
    let parent = f.path.iter().rev().nth(1).cloned().unwrap_or_default();
    match &f.feature {
        Some((feat, by)) => format!(
            "turn off feature `{feat}` of `{}`: it is enabled by {}; use `default-features = false` there (or drop `{feat}` from its features)",
            f.krate,
            if by.is_empty() {
                "a dependency".to_string()
            } else {
                by.iter()
                    .map(|b| format!("`{b}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        // getrandom 0.3 and 0.4 use fata's custom backend in an image (the xtask selects it),
        // so a getrandom that still calls the C library is 0.2.
        None if f.krate == "getrandom" => format!(
            "this is getrandom 0.2 (used by rand 0.8, rand_core 0.6, ring 0.17's SystemRandom), which calls the C library on a Linux target and cannot be redirected; getrandom 0.3 and 0.4 work in fata images unchanged (their custom backend is fata::rand, selected by the xtask): move `{parent}` to a version on getrandom 0.3 or 0.4 (rand 0.9, rand_core 0.9, current RustCrypto), or give it an RNG argument from fata::rand"
        ),
        None if f.uses.iter().any(|u| u.contains("C library"))
            && !f.uses.iter().any(|u| u.contains("std")) =>
        {
            format!(
                "`{}` calls the C library when built for a unix target, and fata images are built with the host (unix) target: look for a feature of `{}` that avoids the OS (often `default-features = false`), replace it with a `no_std` crate, or use it from `{parent}` only behind a feature that `--target unix` builds enable",
                f.krate, f.krate
            )
        }
        None => format!(
            "in `{parent}`, depend on `{}` with `default-features = false` if it has a no_std mode, use a `no_std` alternative, or move it behind a feature that only `--target unix` builds enable",
            f.krate
        ),
    }
}

/// Formats the reports.
pub fn render(reports: &[TargetReport], verbose: bool) -> String {
    let mut s = String::new();
    for r in reports {
        if r.ok {
            if r.warnings.is_empty() {
                s.push_str(&format!("{}: ok\n", r.target.name()));
            } else {
                s.push_str(&format!(
                    "{}: ok as far as checked, but the check is incomplete\n",
                    r.target.name()
                ));
            }
            push_warnings(&mut s, &r.warnings);
            for n in &r.notes {
                s.push_str(&format!("  note: {n}\n"));
            }
            continue;
        }
        s.push_str(&format!("{}: cannot run there\n", r.target.name()));
        for f in &r.findings {
            s.push_str(&format!("  - crate `{}` needs the host OS:\n", f.krate));
            for u in &f.uses {
                s.push_str(&format!("      {u}\n"));
            }
            s.push_str(&format!("      path: {}\n", f.path.join(" -> ")));
            s.push_str(&format!("      fix: {}\n", advice(f)));
        }
        push_warnings(&mut s, &r.warnings);
        if let Some(u) = &r.unexplained {
            s.push_str("  the build failed for another reason:\n");
            for l in u.lines() {
                s.push_str(&format!("    {l}\n"));
            }
        }
        if verbose {
            s.push_str("  compiler output:\n");
            s.push_str(&r.raw);
        } else if !r.raw.trim().is_empty() {
            s.push_str("  (the raw compiler and linker output: --verbose)\n");
        }
    }
    s
}

fn push_warnings(s: &mut String, warnings: &[String]) {
    for w in warnings {
        s.push_str(&format!("  warning: {w}\n"));
    }
}

/// Checks every target.
pub fn check(opts: &CheckOpts) -> Result<Vec<TargetReport>> {
    Target::ALL
        .into_iter()
        .map(|t| check_target(opts, t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_roots_say_whether_they_link_std() {
        assert_eq!(std_condition("#![no_std]\nfn f(){}"), None);
        assert_eq!(std_condition("//! doc\nuse std::fs;"), Some(None));
        assert_eq!(
            std_condition("#![cfg_attr(not(feature = \"std\"), no_std)]"),
            Some(Some("std".into()))
        );
        assert_eq!(std_condition("#![cfg_attr(not(test), no_std)]"), None);
        assert_eq!(std_condition("// #![no_std]\n"), Some(None));
    }

    #[test]
    fn cargo_tree_output_gives_paths_features_and_enablers() {
        let t = parse_tree(
            "0app v0.1.0 (/a)|\n1mid feature \"default\"\n2mid v1.0.0|default\n3leaf feature \"std\"\n4leaf v2.0.0|std\n3pm v1.0.0 (proc-macro)|\n1leaf feature \"default\"\n2leaf v2.0.0|std (*)\n",
        );
        assert_eq!(t.paths["leaf"], ["app", "mid", "leaf"]);
        assert!(t.enablers[&("leaf".to_string(), "std".to_string())].contains("mid"));
        assert!(t.proc_macros.contains("pm"));
    }

    /// A `compiler-artifact` line for a library of package `name` with the given files.
    fn artifact(name: &str, kind: &str, files: &[&str]) -> String {
        let files: Vec<String> = files.iter().map(|f| format!("\"{f}\"")).collect();
        format!(
            r#"{{"reason":"compiler-artifact","package_id":"path+file:///w/{name}#0.1.0","manifest_path":"/w/{name}/Cargo.toml","target":{{"kind":["{kind}"],"crate_types":["{kind}"],"name":"{name}","src_path":"/w/{name}/src/lib.rs","edition":"2024","doc":true,"doctest":true,"test":true}},"profile":{{"opt_level":"0","debuginfo":2,"debug_assertions":true,"overflow_checks":true,"test":false}},"features":["std"],"filenames":[{}],"executable":null,"fresh":true}}"#,
            files.join(",")
        )
    }

    #[test]
    fn only_libraries_built_for_the_image_are_scanned() {
        let image = format!("/t/{TRIPLE}/debug/deps");
        let stdout = [
            artifact("dep", "lib", &[&format!("{image}/libdep-1.rlib"), &format!("{image}/libdep-1.rmeta")]),
            // A build-script dependency: built for the host, never linked into the image.
            artifact("hostdep", "lib", &["/t/debug/deps/libhostdep-2.rlib"]),
            artifact("pm", "proc-macro", &["/t/debug/deps/libpm-3.so"]),
            // A diagnostic whose text looks like an artefact message.
            r#"{"reason":"compiler-message","package_id":"path+file:///w/dep#0.1.0","message":{"rendered":"warning: {\"reason\":\"compiler-artifact\",\"target\":{\"kind\":[\"lib\"]}}\n","level":"warning","spans":[],"children":[],"code":null,"message":"x"}}"#.to_string(),
            "a build script printing to stdout".to_string(),
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/cut#0.1.0","#.to_string(),
            r#"{"reason":"build-finished","success":true}"#.to_string(),
        ]
        .join("\n");
        let m = read_messages(&stdout);
        assert_eq!(m.libs.keys().collect::<Vec<_>>(), ["dep"]);
        let dep = &m.libs["dep"];
        assert_eq!(dep.rlibs, [PathBuf::from(format!("{image}/libdep-1.rlib"))]);
        assert_eq!(dep.src, PathBuf::from("/w/dep/src/lib.rs"));
        assert!(dep.features.contains("std"));
        assert_eq!(
            m.raw,
            "warning: {\"reason\":\"compiler-artifact\",\"target\":{\"kind\":[\"lib\"]}}\na build script printing to stdout\n"
        );
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert!(
            m.warnings[0].contains("could not be decoded") && m.warnings[0].contains("/w/cut#"),
            "{:?}",
            m.warnings
        );
        assert_eq!(m.finished, Some(true));
    }

    #[test]
    fn unreachable_host_code_is_a_note_not_a_failure_or_an_incomplete_check() {
        let report = TargetReport {
            target: Target::Virtio,
            ok: true,
            findings: Vec::new(),
            unexplained: None,
            raw: String::new(),
            warnings: Vec::new(),
            notes: vec!["`getrandom` calls the host C library: open, unreachable".into()],
        };
        assert_eq!(
            render(&[report], false),
            "virtio: ok\n  note: `getrandom` calls the host C library: open, unreachable\n"
        );
    }

    #[test]
    fn an_incomplete_check_says_so_even_when_nothing_was_found() {
        let report = TargetReport {
            target: Target::Virtio,
            ok: true,
            findings: Vec::new(),
            unexplained: None,
            raw: String::new(),
            warnings: vec!["the object code of `dep` was not scanned: x.rlib: bad".into()],
            notes: Vec::new(),
        };
        assert_eq!(
            render(&[report], false),
            "virtio: ok as far as checked, but the check is incomplete\n  warning: the object code of `dep` was not scanned: x.rlib: bad\n"
        );
    }

    #[test]
    fn getrandom_0_2_advice_names_the_versions_that_work() {
        let f = Finding {
            krate: "getrandom".into(),
            uses: vec!["calls the host C library: open, poll".into()],
            path: vec!["app".into(), "rand".into(), "getrandom".into()],
            feature: None,
        };
        let a = advice(&f);
        assert!(
            a.contains("getrandom 0.2")
                && a.contains("getrandom 0.3 and 0.4 work")
                && a.contains("move `rand`"),
            "{a}"
        );
    }

    #[test]
    fn std_symbols_are_recognised_after_demangling() {
        assert!(is_std_symbol("_ZN3std2fs4File4open17h0123456789abcdefE"));
        assert!(!is_std_symbol("_ZN4core3fmt5write17h0123456789abcdefE"));
        assert!(!is_std_symbol("getpid"));
    }
}
