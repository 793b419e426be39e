//! Finding the app `cargo fata` works on: the crate in the current directory, or the one
//! `--manifest-path`, `-p`/`--bin` name. An app is a package that depends on `fata` and has a
//! binary whose source holds `#[fata::main]`; anything else gets an error that says what to do.

use crate::json::Value;
use crate::{Error, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A package of the workspace.
#[derive(Clone, Debug)]
pub struct Package {
    /// Its name.
    pub name: String,
    /// Its `Cargo.toml`.
    pub manifest: PathBuf,
    /// Whether it depends on `fata`.
    pub uses_fata: bool,
    /// Its binaries: (name, source file).
    pub bins: Vec<(String, PathBuf)>,
}

fn metadata(dir: &Path, manifest: Option<&Path>) -> Result<Vec<Package>> {
    let mut c = Command::new(crate::build::cargo().get_program());
    c.current_dir(dir)
        .args(["metadata", "--no-deps", "--format-version", "1"]);
    if let Some(m) = manifest {
        c.arg("--manifest-path").arg(m);
    }
    let out = c.output()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("could not find `Cargo.toml`") {
            bail!(
                "{} is not inside a Rust crate: `cd` into your app, or create one with `cargo fata new NAME`",
                dir.display()
            );
        }
        bail!("cargo metadata failed: {}", err.trim());
    }
    let v = crate::json::parse(&String::from_utf8_lossy(&out.stdout))
        .map_err(|e| Error(format!("cargo metadata: {e:?}")))?;
    let members: Vec<String> = v
        .get("workspace_members")
        .and_then(Value::as_array)
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect();
    let mut out = Vec::new();
    for p in v
        .get("packages")
        .and_then(Value::as_array)
        .unwrap_or_default()
    {
        let id = p.get("id").and_then(Value::as_str).unwrap_or_default();
        if !members.iter().any(|m| m == id) {
            continue;
        }
        let s = |k: &str| {
            p.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let uses_fata = p
            .get("dependencies")
            .and_then(Value::as_array)
            .unwrap_or_default()
            .iter()
            .any(|d| d.get("name").and_then(Value::as_str) == Some("fata"));
        let bins = p
            .get("targets")
            .and_then(Value::as_array)
            .unwrap_or_default()
            .iter()
            .filter(|t| {
                t.get("kind")
                    .and_then(Value::as_array)
                    .unwrap_or_default()
                    .iter()
                    .any(|k| k.as_str() == Some("bin"))
            })
            .map(|t| {
                (
                    t.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    PathBuf::from(
                        t.get("src_path")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                    ),
                )
            })
            .collect();
        out.push(Package {
            name: s("name"),
            manifest: PathBuf::from(s("manifest_path")),
            uses_fata,
            bins,
        });
    }
    Ok(out)
}

/// Chooses the app among `packages` (`pick`: a `-p`/`--bin` name) and checks it.
pub fn choose(packages: &[Package], pick: Option<&str>, here: Option<&Path>) -> Result<Package> {
    let apps: Vec<&Package> = packages.iter().filter(|p| p.uses_fata).collect();
    let chosen = match pick {
        Some(n) => packages
            .iter()
            .find(|p| p.name == n || p.bins.iter().any(|(b, _)| b == n))
            .ok_or_else(|| {
                Error(format!(
                    "no package or binary `{n}` here; the apps are: {}",
                    names(&apps)
                ))
            })?,
        // The package whose directory we are in, if it is an app.
        None => match here.and_then(|h| apps.iter().find(|p| p.manifest == h)) {
            Some(p) => p,
            None => match apps.as_slice() {
                [one] => one,
                [] => bail!(
                    "no package here depends on `fata`: add `fata = {{ path = \"…/kernel/rt\" }}` (or a git source) under [dependencies], or create an app with `cargo fata new NAME`"
                ),
                many => bail!(
                    "this workspace has {} apps: {}; choose one with -p NAME",
                    many.len(),
                    names(many)
                ),
            },
        },
    };
    if !chosen.uses_fata {
        bail!(
            "`{}` does not depend on `fata`: add `fata = {{ path = \"…/kernel/rt\" }}` under [dependencies]",
            chosen.name
        );
    }
    let bin = chosen.bins.iter().find(|(b, _)| *b == chosen.name);
    let Some((_, src)) = bin else {
        if chosen.bins.is_empty() {
            bail!(
                "`{}` has no binary: an app is a binary crate (`src/main.rs` with `#![no_std]`, `#![no_main]` and `#[fata::main]`)",
                chosen.name
            );
        }
        let list: Vec<&str> = chosen.bins.iter().map(|(b, _)| b.as_str()).collect();
        bail!(
            "`{}` has binaries {} but none named `{}`: fata builds the binary named like the package; rename one ([[bin]] name = \"{}\") or move the others to their own packages",
            chosen.name,
            list.join(", "),
            chosen.name,
            chosen.name
        );
    };
    let text = std::fs::read_to_string(src).unwrap_or_default();
    if !text.contains("fata::main") {
        bail!(
            "{} has no `#[fata::main]`: an app's entry is `#[fata::main] async fn main(rt: fata::Runtime) -> Result<(), E>` in a `#![no_std]`, `#![no_main]` crate",
            src.display()
        );
    }
    Ok(chosen.clone())
}

fn names(apps: &[&Package]) -> String {
    apps.iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sets `manifest` to the app's `Cargo.toml` (keeping a `--manifest-path` given), after
/// checking it is an app.
pub fn select(manifest: &mut Option<PathBuf>, pick: Option<&str>) -> Result<()> {
    let cwd = std::env::current_dir()?;
    let packages = metadata(&cwd, manifest.as_deref())?;
    let here = cwd.join("Cargo.toml");
    let here = manifest.clone().or(here.exists().then_some(here));
    let here = here.and_then(|h| h.canonicalize().ok());
    let app = choose(&packages, pick, here.as_deref())?;
    *manifest = Some(app.manifest);
    Ok(())
}

/// The app a command works on: an example of fata's checkout, or a crate elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum App {
    /// `examples/NAME`.
    Example(String),
    /// The package at this `Cargo.toml`.
    Manifest(PathBuf),
}

impl App {
    /// `Manifest` if one is given, else the example.
    pub fn new(manifest: Option<&Path>, example: &str) -> App {
        match manifest {
            Some(m) => App::Manifest(m.to_path_buf()),
            None => App::Example(example.to_string()),
        }
    }

    /// Its name (the package's).
    pub fn name(&self) -> Result<String> {
        match self {
            App::Example(e) => Ok(e.clone()),
            App::Manifest(m) => Ok(crate::check::package_of(m)?.0),
        }
    }

    /// Its `Cargo.toml`.
    pub fn manifest(&self) -> Result<PathBuf> {
        match self {
            App::Example(e) => {
                let root = crate::root();
                if !crate::build::examples(&root).contains(e) {
                    bail!("unknown example `{e}`");
                }
                Ok(root.join("examples").join(e).join("Cargo.toml"))
            }
            App::Manifest(m) => Ok(m.clone()),
        }
    }

    /// Builds its image for `target`.
    pub fn build(
        &self,
        target: crate::target::Target,
        release: bool,
    ) -> Result<crate::build::Image> {
        match self {
            App::Example(e) => crate::build::build(&crate::build::BuildOpts {
                target,
                example: e.clone(),
                release,
            }),
            App::Manifest(m) => crate::build::build_manifest(m, target, release),
        }
    }

    /// Where its deployable outputs go: `dist/`, `target/image/`, `target/deploy/` under fata's
    /// checkout for an example, under the app's own workspace otherwise.
    pub fn out_root(&self) -> Result<PathBuf> {
        match self {
            App::Example(_) => Ok(crate::root()),
            App::Manifest(m) => Ok(crate::check::package_of(m)?.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, fata: bool, bins: &[&str]) -> Package {
        Package {
            name: name.into(),
            manifest: PathBuf::from(format!("/w/{name}/Cargo.toml")),
            uses_fata: fata,
            bins: bins
                .iter()
                .map(|b| (b.to_string(), PathBuf::from("/nonexistent")))
                .collect(),
        }
    }

    #[test]
    fn several_apps_need_a_choice_and_the_error_lists_them() {
        let ps = [
            pkg("web", true, &["web"]),
            pkg("kv", true, &["kv"]),
            pkg("lib", false, &[]),
        ];
        let e = choose(&ps, None, None).unwrap_err().0;
        assert!(
            e.contains("2 apps: web, kv") && e.contains("-p NAME"),
            "{e}"
        );
        let e = choose(&ps, Some("nope"), None).unwrap_err().0;
        assert!(e.contains("the apps are: web, kv"), "{e}");
    }

    #[test]
    fn a_crate_without_fata_or_with_other_binaries_says_what_to_do() {
        let e = choose(&[pkg("x", false, &["x"])], None, None)
            .unwrap_err()
            .0;
        assert!(e.contains("add `fata = "), "{e}");
        let e = choose(&[pkg("x", true, &["a", "b"])], None, None)
            .unwrap_err()
            .0;
        assert!(e.contains("binaries a, b but none named `x`"), "{e}");
        // The source file is checked for #[fata::main].
        let e = choose(&[pkg("x", true, &["x"])], None, None).unwrap_err().0;
        assert!(e.contains("has no `#[fata::main]`"), "{e}");
    }
}
