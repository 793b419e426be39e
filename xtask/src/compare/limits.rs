//! Figures of availability: the smallest memory that serves real concurrent clients, the
//! largest connect burst served in full, the heap a connection costs and whether it returns.
//! Both systems meet the same clients (`xtask::load`, run by `netclient` inside the network
//! namespace); fata's own counters come from the http example's `/status`.

use super::{GUEST_IP, Row, Systems, reachable, row, tap};
use crate::netns::Netns;
use crate::runner::boot;
use crate::{Result, bail};
use std::time::Duration;

/// fata's memory in the burst figures: the default of `cargo xtask run`. The Linux guest
/// cannot boot in 64 MiB; it gets the memory of the other figures.
const BURST_MIB: u32 = 64;

/// Boots `fata` (or the Linux guest) with `mib` MiB on the namespace's TAP device; `None` if
/// it does not come up and answer.
fn boot_on_tap(
    s: &Systems,
    ns: &Netns,
    netclient: &str,
    fata: bool,
    mib: u32,
) -> Option<crate::runner::Running> {
    boot_image_on_tap(s, ns, netclient, fata.then_some(&s.http), mib)
}

/// [`boot_on_tap`] with a given fata image (`None`: the Linux guest).
fn boot_image_on_tap(
    s: &Systems,
    ns: &Netns,
    netclient: &str,
    fata_image: Option<&crate::build::Image>,
    mib: u32,
) -> Option<crate::runner::Running> {
    let fata = fata_image.is_some();
    let mut o = if fata {
        let mut o = s.fata_opts(mib);
        o.args = vec![format!("ipv4={GUEST_IP}/24")];
        o
    } else {
        s.linux_opts(mib, &format!("fata_ipv4={GUEST_IP}/24"))
    };
    tap(&mut o, ns);
    let img = fata_image.unwrap_or(&s.linux_image);
    let vm = boot(img, &o).ok()?;
    let needle = if fata {
        "fata: ready tcp/80"
    } else {
        "linux: ready tcp/80"
    };
    vm.wait_for_line(needle, Duration::from_secs(if fata { 10 } else { 40 }))
        .ok()?;
    reachable(ns, netclient).ok()?;
    Some(vm)
}

/// Runs `netclient ARGS` in the namespace: whether it succeeded, and what it printed.
fn client(ns: &Netns, netclient: &str, args: &[&str]) -> (bool, String) {
    let (ok, out) = ns.run(netclient, args);
    (ok && out.contains("ok"), out)
}

/// Whether a guest of `mib` MiB serves 64 concurrent keep-alive clients (20 requests each)
/// without a single refusal, and still answers a normal client while 200 idle connections
/// are held.
fn serves_small(
    s: &Systems,
    ns: &Netns,
    netclient: &str,
    fata_image: Option<&crate::build::Image>,
    mib: u32,
) -> bool {
    let Some(_vm) = boot_image_on_tap(s, ns, netclient, fata_image, mib) else {
        return false;
    };
    client(ns, netclient, &["keepalive", GUEST_IP, "80", "64", "20"]).0
        && client(ns, netclient, &["idle-then-get", GUEST_IP, "80", "200"]).0
}

/// The smallest `-m` that serves real concurrent clients (see [`serves_small`]).
pub(super) fn smallest_memory(
    s: &Systems,
    ns: &Netns,
    netclient: &str,
    quick: bool,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let fata_steps: &[u32] = if quick {
        &[4]
    } else {
        &[2, 3, 4, 5, 6, 8, 12, 16]
    };
    // With HTTPS and ACME the image is about 1.4 MiB larger, all of it resident.
    let https_steps: &[u32] = if quick {
        &[6]
    } else {
        &[3, 4, 5, 6, 8, 12, 16]
    };
    let linux_steps: &[u32] = if quick {
        &[128]
    } else {
        &[48, 56, 64, 72, 80, 96, 128, 192, 256]
    };
    let smallest = |image: Option<&crate::build::Image>, steps: &[u32]| {
        steps
            .iter()
            .copied()
            .find(|&m| serves_small(s, ns, netclient, image, m))
            .map_or(f64::NAN, f64::from)
    };
    let f = smallest(Some(&s.http_minimal), fata_steps);
    let f_https = smallest(Some(&s.http), https_steps);
    let l = smallest(None, linux_steps);
    let what = if quick {
        "memory that serves 64 keep-alive clients and a client past 200 idle connections (--quick: one size tried)"
    } else {
        "smallest -m that serves 64 keep-alive clients with no refusal and a client past 200 idle connections"
    };
    rows.push(row(
        &format!("{what}; http without HTTPS (--no-default-features)"),
        f,
        l,
        "MiB",
        "fata ≤ 4 MiB",
    ));
    rows.push(row(
        &format!("{what}; http with HTTPS and ACME (default)"),
        f_https,
        l,
        "MiB",
        "",
    ));
    Ok(())
}

/// The largest burst of simultaneous connects (each GETting the page once) in which every
/// client was served, at 64 MiB with the defaults.
fn largest_burst(s: &Systems, ns: &Netns, netclient: &str, fata: bool, steps: &[u32]) -> f64 {
    let mut best = f64::NAN;
    let mib = if fata { BURST_MIB } else { super::MEMORY_MIB };
    for &n in steps {
        let Some(_vm) = boot_on_tap(s, ns, netclient, fata, mib) else {
            break;
        };
        let (ok, out) = client(ns, netclient, &["burst", GUEST_IP, "80", &n.to_string()]);
        eprintln!(
            "xtask: burst of {n} ({}): {}",
            if fata { "fata" } else { "Linux" },
            out.trim()
        );
        if !ok {
            break;
        }
        best = f64::from(n);
    }
    best
}

/// fata's `/status`, as `netclient status` prints it.
fn status(ns: &Netns, netclient: &str) -> Result<String> {
    let (ok, out) = client(ns, netclient, &["status", GUEST_IP, "80"]);
    if !ok {
        bail!("no /status: {out}");
    }
    Ok(out)
}

/// A numeric field of a `/status` document, or NaN.
fn field(status: &str, name: &str) -> f64 {
    crate::load::status_field(status, name).map_or(f64::NAN, |n| n as f64)
}

/// Connect bursts, the heap a connection costs, and the heap after a thousand connections.
pub(super) fn limit_figures(
    s: &Systems,
    ns: &Netns,
    netclient: &str,
    quick: bool,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let steps: &[u32] = if quick {
        &[1000]
    } else {
        &[500, 1000, 2000, 4000]
    };
    let f = largest_burst(s, ns, netclient, true, steps);
    let l = largest_burst(s, ns, netclient, false, steps);
    rows.push(row(
        &format!(
            "largest connect burst with every client served (fata {BURST_MIB} MiB, Linux {} MiB, defaults; tried {steps:?})",
            super::MEMORY_MIB
        ),
        f,
        l,
        "clients",
        "fata: 1000",
    ));

    let Some(_vm) = boot_on_tap(s, ns, netclient, true, BURST_MIB) else {
        bail!("fata did not come up for the heap figures");
    };
    // Warm up, then the heap with 200 idle connections held and without.
    let _ = client(ns, netclient, &["keepalive", GUEST_IP, "80", "4", "5"]);
    let before = field(&status(ns, netclient)?, "heap_in_use");
    let (ok, out) = client(ns, netclient, &["hold-status", GUEST_IP, "80", "200"]);
    if !ok {
        bail!("holding 200 connections: {out}");
    }
    let held = field(&out, "heap_in_use");
    rows.push(row(
        "heap per idle connection (http example, 16 KiB buffers; 200 held)",
        (held - before) / 200.0 / 1024.0,
        f64::NAN,
        "KiB",
        "",
    ));
    for _ in 0..2 {
        let _ = client(ns, netclient, &["burst", GUEST_IP, "80", "500"]);
    }
    let after = field(
        &crate::load::settled_status(|| status(ns, netclient).unwrap_or_default()),
        "heap_in_use",
    );
    rows.push(row(
        "heap in use before 1000 connections (after warm-up)",
        before / 1024.0,
        f64::NAN,
        "KiB",
        "",
    ));
    rows.push(row(
        "heap in use after 1000 connections (all closed)",
        after / 1024.0,
        f64::NAN,
        "KiB",
        "back where it was",
    ));
    Ok(())
}
