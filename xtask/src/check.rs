//! `cargo xtask check`: can this application run on each target, and if not, which dependency
//! needs the host OS, what it uses, and through which path the application pulls it in.
//!
//! Three independent detectors, none a list of crate names:
//! 1. **the crate root**: a library without `#![no_std]` links `std`; one with
//!    `#![cfg_attr(not(feature = "X"), no_std)]` links it when feature X is on — and
//!    `cargo tree -e features` tells which dependency turned X on;
//! 2. **the object code**: every dependency's rlib (as built for the image, from cargo's JSON
//!    artefact messages) is scanned for undefined symbols: `std::…` functions it calls, and C
//!    symbols that no Rust crate, the Rust runtime libraries or the image defines (libc calls
//!    such as `getpid`, pulled in silently by crates gated on `cfg(unix)`);
//! 3. **the link itself**: the image links against empty `libc.a`/`libm.a`/`libpthread.a`/…
//!    stubs, so a host-library dependency cannot slip through as a "successful" build.
//!
//! The path from the application to each culprit comes from `cargo tree`.

use crate::target::{TRIPLE, Target};
use crate::{Error, Result, bail};
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

/// Where an application's build goes: the platform's own directory for fata's workspace, and
/// `target/check/<workspace directory name>/<platform>` for a workspace elsewhere.
pub fn target_dir_for(ws_root: &Path, target: Target) -> PathBuf {
    if ws_root == crate::root() {
        target.target_dir(ws_root)
    } else {
        let name = ws_root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "app".into());
        crate::root()
            .join("target/check")
            .join(name)
            .join(target.name())
    }
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
#[derive(Default)]
struct Lib {
    rlibs: Vec<PathBuf>,
    src: Option<PathBuf>,
    features: BTreeSet<String>,
}

/// The artefacts of one build (package name -> library), and the compiler's output.
struct Built {
    libs: BTreeMap<String, Lib>,
    success: bool,
    raw: String,
}

/// The package name in a cargo package id (`registry+…#name@1.0`, `path+file:///x/name#1.0`).
fn package_name(id: &str) -> String {
    let (url, frag) = id.rsplit_once('#').unwrap_or((id, ""));
    match frag.split_once('@') {
        Some((name, _)) => name.to_string(),
        None => url.rsplit('/').next().unwrap_or(url).to_string(),
    }
}

fn json_str(v: &str, key: &str) -> Option<String> {
    let at = v.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut out = String::new();
    let mut chars = v[at..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                c => out.push(c),
            },
            c => out.push(c),
        }
    }
    None
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut libs: BTreeMap<String, Lib> = BTreeMap::new();
    let mut raw = String::new();
    for line in stdout.lines() {
        if line.contains("\"reason\":\"compiler-artifact\"") && line.contains("\"kind\":[\"lib\"]")
        {
            let name = package_name(&json_str(line, "package_id").unwrap_or_default());
            let src = line
                .split("\"target\":{")
                .nth(1)
                .and_then(|t| json_str(t, "src_path"))
                .map(PathBuf::from);
            let list = |key: &str| -> Vec<String> {
                line.split(&format!("\"{key}\":["))
                    .nth(1)
                    .and_then(|f| f.split(']').next())
                    .unwrap_or("")
                    .split(',')
                    .map(|s| s.trim().trim_matches('"').to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            };
            // Only what is built for the image's target: build scripts and proc-macros are
            // built for the host and never linked into the image.
            let rlibs: Vec<PathBuf> = list("filenames")
                .into_iter()
                .filter(|f| f.ends_with(".rlib") && f.contains(&format!("/{TRIPLE}/")))
                .map(PathBuf::from)
                .collect();
            if rlibs.is_empty() {
                continue;
            }
            let e = libs.entry(name).or_default();
            e.rlibs.extend(rlibs);
            e.features.extend(list("features"));
            if e.src.is_none() {
                e.src = src;
            }
        } else if line.contains("\"reason\":\"compiler-message\"")
            && let Some(r) = json_str(line, "rendered")
        {
            raw.push_str(&r);
        }
    }
    raw.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(Built {
        libs,
        success: out.status.success(),
        raw,
    })
}

/// Defined and undefined global symbols of an rlib's object files (read with binutils' `nm`,
/// which copes with every archive and object variant rustc produces).
fn rlib_symbols(path: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut def, mut undef) = (BTreeSet::new(), BTreeSet::new());
    let Ok(out) = Command::new("nm")
        .args(["-g", "--format=posix"])
        .arg(path)
        .output()
    else {
        return (def, undef);
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut w = line.split_whitespace();
        let (Some(name), Some(kind)) = (w.next(), w.next()) else {
            continue;
        };
        if name.ends_with(':') {
            continue; // "archive[member]:" headers
        }
        match kind {
            "U" => {
                undef.insert(name.to_string());
            }
            "w" | "v" => {} // weak undefined: optional by definition
            _ => {
                def.insert(name.to_string());
            }
        }
    }
    (def, undef)
}

/// Everything the toolchain's own support libraries define: `core`, `alloc`,
/// `compiler_builtins` and the C compiler's `libgcc` (128-bit arithmetic and the like; no OS
/// behind any of them).
fn toolchain_defined() -> BTreeSet<String> {
    let mut libs = Vec::new();
    if let Ok(out) = Command::new("rustc").args(["--print", "sysroot"]).output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
            .join(format!("lib/rustlib/{TRIPLE}/lib"));
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if ["libcore-", "liballoc-", "libcompiler_builtins-"]
                .iter()
                .any(|p| n.starts_with(p))
                && n.ends_with(".rlib")
            {
                libs.push(e.path());
            }
        }
    }
    if let Ok(out) = Command::new("cc").arg("-print-libgcc-file-name").output() {
        libs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    let mut def = BTreeSet::new();
    for l in libs {
        def.extend(rlib_symbols(&l).0);
    }
    def
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
        crate::root()
            .join("target/check")
            .join(&package)
            .join(target.name())
    };
    let built = build_json(&opts.manifest, &package, target, &target_dir)?;
    if !target.bare_metal() {
        return Ok(TargetReport {
            target,
            ok: built.success,
            findings: Vec::new(),
            unexplained: (!built.success).then(|| first_errors(&built.raw)),
            raw: built.raw,
        });
    }
    let tree = cargo_tree(&opts.manifest, &package)?;
    let sysroot = toolchain_defined();
    let mut syms: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    let mut all_defined: BTreeSet<String> = sysroot;
    for (name, lib) in &built.libs {
        let e = syms.entry(name.clone()).or_default();
        for r in &lib.rlibs {
            let (d, u) = rlib_symbols(r);
            all_defined.extend(d.iter().cloned());
            e.0.extend(d);
            e.1.extend(u);
        }
    }
    let mut findings = Vec::new();
    for (name, lib) in &built.libs {
        if name == &package || tree.proc_macros.contains(name) {
            continue;
        }
        let src = &lib.src;
        let mut uses = Vec::new();
        let mut feature = None;
        if let Some(src) = src
            && let Ok(text) = std::fs::read_to_string(src)
        {
            match std_condition(&text) {
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
            }
        }
        if let Some((_, undef)) = syms.get(name) {
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
                uses.push(format!(
                    "calls the host C library: {}{}",
                    shown.join(", "),
                    if c.len() > 5 {
                        format!(" and {} more", c.len() - 5)
                    } else {
                        String::new()
                    }
                ));
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
            s.push_str(&format!("{}: ok\n", r.target.name()));
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

    #[test]
    fn package_names_come_out_of_package_ids() {
        assert_eq!(
            package_name("registry+https://github.com/rust-lang/crates.io-index#x86_64@0.15.5"),
            "x86_64"
        );
        assert_eq!(
            package_name("path+file:///work/main/boot#fata-boot@0.1.0"),
            "fata-boot"
        );
        assert_eq!(
            package_name("path+file:///work/t/crates/featured#0.1.0"),
            "featured"
        );
    }

    #[test]
    fn std_symbols_are_recognised_after_demangling() {
        assert!(is_std_symbol("_ZN3std2fs4File4open17h0123456789abcdefE"));
        assert!(!is_std_symbol("_ZN4core3fmt5write17h0123456789abcdefE"));
        assert!(!is_std_symbol("getpid"));
    }
}
