//! `cargo xtask bench`: figures, never pass/fail. Benchmarks run on shared, noisy machines,
//! so they report medians and ranges; the test suite checks behaviour only.

use crate::build::{BuildOpts, build, stripped_size};
use crate::runner::{BootOpts, Exit, boot};
use crate::target::Target;
use crate::{Result, bail, cmd};
use std::time::Duration;

/// Runs the component benchmark `which` (`alloc`, `boot`, `net`, or `parts` for all three).
pub fn run(which: &str) -> Result<()> {
    match which {
        "alloc" => alloc(),
        "boot" => boot_figures(),
        "net" => net_figures(),
        "parts" => {
            alloc()?;
            boot_figures()?;
            net_figures()
        }
        other => bail!("unknown benchmark `{other}`; the benchmarks are: alloc, boot, net, parts"),
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

fn summary(v: &mut [Duration]) -> String {
    let (lo, hi) = (*v.iter().min().unwrap(), *v.iter().max().unwrap());
    format!(
        "median {} (min {}, max {}, {} runs)",
        ms(median(v)),
        ms(lo),
        ms(hi),
        v.len()
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080)
}

/// GET / until it answers 200 (the guest printed its ready line just before).
fn first_200(addr: std::net::SocketAddr) -> Result<()> {
    for _ in 0..200 {
        if crate::client::get(addr, "/").is_ok_and(|r| r.status == 200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!("no 200 from {addr}")
}

fn wrk(ns: &crate::netns::Netns, conns: u32) -> Result<String> {
    let threads = conns.min(2).to_string();
    let (ok, out) = ns.run(
        "wrk",
        &[
            "-t",
            &threads,
            "-c",
            &conns.to_string(),
            "-d",
            "5s",
            "--latency",
            "http://10.77.0.2/index.html",
        ],
    );
    if !ok {
        bail!("wrk failed (install it with apt-get install wrk): {out}");
    }
    // The first line (trimmed) that starts with `prefix`, without the prefix.
    let line = |prefix: &str| -> String {
        out.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map_or("?", |l| l[prefix.len()..].trim())
            .to_string()
    };
    let rps = format!("Requests/sec: {}", line("Requests/sec:"));
    let (p50, p99) = (line("50%"), line("99%"));
    let errors = out
        .lines()
        .find(|l| l.contains("Socket errors") || l.contains("Non-2xx"))
        .map(str::trim)
        .unwrap_or("no errors");
    Ok(format!("{rps}, latency p50 {p50} p99 {p99} ({errors})"))
}

/// The figures of the networking issue: image size, launch -> first HTTP 200 (user-net and
/// TAP), wrk over TAP, bulk TCP throughput, smallest memory that serves HTTP.
fn net_figures() -> Result<()> {
    use crate::netns::{Netns, boot_ready};
    crate::qemu::find()?;
    let http = build(&BuildOpts {
        target: Target::Virtio,
        example: "http".into(),
        release: true,
    })?;
    let echo = build(&BuildOpts {
        target: Target::Virtio,
        example: "echo".into(),
        release: true,
    })?;
    let mut c = crate::build::cargo();
    c.current_dir(crate::root())
        .args(["build", "--package", "fata-tests", "--bin", "netclient"]);
    cmd::run(&mut c, "building netclient")?;
    let netclient = crate::root().join("target/debug/netclient");
    let netclient = netclient.to_str().unwrap_or("netclient").to_string();
    let size = stripped_size(&http.path)?;
    println!(
        "http (virtio, release) stripped size: {size} bytes ({:.1} KiB)",
        size as f64 / 1024.0
    );

    let mut user = Vec::new();
    for _ in 0..10 {
        let port = free_port();
        let mut o = BootOpts::default();
        o.qemu.net = Some(crate::qemu::NetBackend::User {
            forwards: vec![(port, 80)],
        });
        let vm = boot(&http, &o)?;
        vm.wait_for_line("fata: ready tcp/80", Duration::from_secs(30))?;
        first_200(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
        user.push(vm.elapsed());
    }
    println!(
        "launch -> first HTTP 200, user networking (microvm, TCG): {}",
        summary(&mut user)
    );

    let ns = Netns::new("bench", 1500);
    let mut tap = Vec::new();
    for _ in 0..10 {
        let vm = boot_ready(
            &ns,
            &http,
            80,
            &["ipv4=10.77.0.2/24"],
            Duration::from_secs(30),
        )?;
        let (ok, out) = ns.run(&netclient, &["status", "10.77.0.2", "80"]);
        if !ok {
            bail!("no answer over TAP: {out}");
        }
        tap.push(vm.elapsed());
    }
    println!(
        "launch -> first HTTP 200, TAP (microvm, TCG; includes ~2 ms to start the client in the namespace): {}",
        summary(&mut tap)
    );

    {
        let _vm = boot_ready(
            &ns,
            &http,
            80,
            &["ipv4=10.77.0.2/24"],
            Duration::from_secs(30),
        )?;
        for conns in [1, 16] {
            println!(
                "wrk over TAP, /index.html, keep-alive, {conns} connection(s), 5 s: {}",
                wrk(&ns, conns)?
            );
        }
    }
    {
        let _vm = boot_ready(
            &ns,
            &echo,
            7,
            &["ipv4=10.77.0.2/24", "mode=sink"],
            Duration::from_secs(30),
        )?;
        let (ok, out) = ns.run(
            &netclient,
            &["send", "10.77.0.2", "7", &(32u32 << 20).to_string()],
        );
        println!(
            "bulk TCP host -> guest over TAP (32 MiB): {}",
            if ok {
                out.lines().next().unwrap_or("").to_string()
            } else {
                out
            }
        );
    }
    {
        let args = ["ipv4=10.77.0.2/24", "mode=source", "bytes=33554432"];
        let _vm = boot_ready(&ns, &echo, 7, &args, Duration::from_secs(30))?;
        let (ok, out) = ns.run(&netclient, &["recv", "10.77.0.2", "7"]);
        println!(
            "bulk TCP guest -> host over TAP (32 MiB): {}",
            if ok {
                out.lines().next().unwrap_or("").to_string()
            } else {
                out
            }
        );
    }

    let mut smallest = None;
    for mib in [2u32, 3, 4, 5, 6, 8, 12, 16] {
        let port = free_port();
        let mut o = BootOpts::default();
        o.qemu.memory_mib = mib;
        o.qemu.net = Some(crate::qemu::NetBackend::User {
            forwards: vec![(port, 80)],
        });
        let Ok(vm) = boot(&http, &o) else { continue };
        if vm
            .wait_for_line("fata: ready tcp/80", Duration::from_secs(20))
            .is_ok()
            && first_200(std::net::SocketAddr::from(([127, 0, 0, 1], port))).is_ok()
        {
            smallest = Some(mib);
            break;
        }
    }
    match smallest {
        Some(m) => println!("smallest -m that serves HTTP: {m} MiB"),
        None => println!("smallest -m that serves HTTP: none of 2..16 MiB worked"),
    }
    Ok(())
}
