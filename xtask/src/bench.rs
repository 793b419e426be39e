//! `cargo xtask bench`: figures, never pass/fail. Benchmarks run on shared, noisy machines,
//! so they report medians and ranges; the test suite checks behaviour only.

use crate::build::{BuildOpts, build, stripped_size};
use crate::runner::{BootOpts, Exit, boot};
use crate::target::Target;
use crate::{Result, bail, cmd};
use std::time::Duration;

/// Runs the component benchmark `which` (`alloc`, `boot` — the `hello` figures — or `parts`
/// for both). The networking figures are part of the comparison with Linux (`compare`).
pub fn run(which: &str) -> Result<()> {
    match which {
        "alloc" => alloc(),
        "boot" => boot_figures(),
        "parts" => {
            alloc()?;
            boot_figures()
        }
        other => bail!(
            "unknown benchmark `{other}`; the benchmarks are: alloc, boot, parts (networking figures: `cargo xtask bench --only wrk|bulk|tls|memory|boot|size`)"
        ),
    }
}

fn alloc() -> Result<()> {
    let mut c = crate::build::cargo();
    c.current_dir(crate::root())
        .args(["bench", "--package", "fata-tests", "--bench", "alloc"]);
    cmd::run(&mut c, "allocator benchmark")
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Size of `hello`, launch→first line and launch→exit (median of 10, microvm, TCG), and the
/// smallest `-m` that boots it.
fn boot_figures() -> Result<()> {
    crate::qemu::find()?;
    let img = build(&BuildOpts {
        target: Target::Virtio,
        example: "hello".into(),
        release: true,
    })?;
    let size = stripped_size(&img.path)?;
    let args = vec!["interval=0ms".to_string(), "count=1".to_string()];
    let mut first = Vec::new();
    let mut exit = Vec::new();
    for _ in 0..10 {
        let o = boot(
            &img,
            &BootOpts {
                args: args.clone(),
                ..Default::default()
            },
        )?
        .wait(Duration::from_secs(30))?;
        if o.exit != Exit::Code(0) {
            bail!(
                "hello failed during the benchmark: {:?}\n{}",
                o.exit,
                o.console()
            );
        }
        first.push(o.lines.first().map(|l| l.at).unwrap_or(o.elapsed));
        exit.push(o.elapsed);
    }
    let (fmin, fmax) = (*first.iter().min().unwrap(), *first.iter().max().unwrap());
    let (emin, emax) = (*exit.iter().min().unwrap(), *exit.iter().max().unwrap());
    let mut smallest = None;
    for mib in [1u32, 2, 3, 4, 5, 6, 8, 12, 16] {
        let mut o = BootOpts {
            args: args.clone(),
            ..Default::default()
        };
        o.qemu.memory_mib = mib;
        // xtask itself refuses machines that cannot hold the image: that counts as "does not boot".
        let Ok(running) = boot(&img, &o) else {
            continue;
        };
        if running.wait(Duration::from_secs(30))?.exit == Exit::Code(0) {
            smallest = Some(mib);
            break;
        }
    }
    println!(
        "hello (virtio, release) stripped size: {} bytes ({:.1} KiB)",
        size,
        size as f64 / 1024.0
    );
    println!(
        "launch -> first console line (microvm, TCG, 10 runs): median {} (min {}, max {})",
        ms(median(&mut first)),
        ms(fmin),
        ms(fmax)
    );
    println!(
        "launch -> exit (microvm, TCG, 10 runs): median {} (min {}, max {})",
        ms(median(&mut exit)),
        ms(emin),
        ms(emax)
    );
    match smallest {
        Some(m) => println!("smallest -m that boots hello: {m} MiB"),
        None => println!("smallest -m that boots hello: none of 1..16 MiB worked"),
    }
    Ok(())
}
