//! The command line of `cargo xtask` (developing fata: apps are the examples under
//! `examples/`) and `cargo fata` (an app in its own repository: the crate in the current
//! directory). One implementation: the [`Mode`] only decides which app a command works on.

use crate as xtask;
use std::process::ExitCode;
use std::time::Duration;
use xtask::build::{BuildOpts, build};
use xtask::runner::{BootOpts, Exit, boot};
use xtask::target::{Machine, Target};
use xtask::{Error, Result, bail, cmd};

/// Which tool is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `cargo xtask` in fata's checkout: `--example NAME` picks the app.
    Repo,
    /// `cargo fata`: the app is the crate in the current directory (or `--manifest-path`).
    App,
}

const HELP: &str = "\
cargo xtask <command> [options] [-- boot arguments]

commands:
  setup                 install what is missing (QEMU, via apt-get) and boot `hello`
  build                 build an image
  release               check, build every target, make every artefact (disks, configurations),
                        boot each one QEMU or the host can run and make a real request to it,
                        then write dist/NAME/ with SHA256SUMS and manifest.json (--example NAME;
                        boot arguments after -- are baked into the disks and configurations)
  deploy-config         a platform's configuration for the example's release image:
                        --format xl (Xen PVH), libvirt (QEMU/KVM q35, direct kernel boot, or
                        --boot-disk DISK for disk boot; --target xen: Xen PVH) or firecracker;
                        -m MIB, --bridge NAME (Firecracker: the TAP device), --mac, --disk PATH
                        (data disks), --domain-type kvm|qemu, --tap NAME (libvirt: an
                        existing TAP device instead of a bridge), --out PATH, boot arguments
                        after --
  image                 a bootable disk of a virtio image (release): --format raw (BIOS,
                        default), gce (disk.raw in a tar.gz for Compute Engine) or qcow2;
                        --out PATH (default target/image/NAME.FORMAT); boot arguments after
                        --; --data-disk SIZE adds a blank NAME-data.raw for fata::kv.
                        --set-args DISK -- ARGS changes a raw disk's arguments, no rebuild
  run                   build, then boot it (QEMU for virtio, a process for unix, `xl create`
                        on a nested Xen under QEMU for xen: the guest is 10.0.0.2, dom0
                        10.0.0.1); run --gdb: under a debugger (virtio, unix)
  test                  run the whole test suite (formatting, clippy on every platform,
                        unit tests, QEMU, nested Xen and unix tests);
                        with --xen: only the Xen target's tests (unit tests and one nested
                        Xen session, about a minute once its Debian packages are cached);
                        with --example: build, boot and require exit 0
  lint                  formatting and clippy only
  check                 can the app run on every target? Names the dependency that needs
                        the host OS, what it uses and the path to it (--example NAME or
                        --manifest-path PATH; --verbose for the raw compiler output)
  bench                 fata against a Linux guest, side by side: table on the terminal and
                        in docs/benchmarks.md (--quick: a smoke run; --only GROUP: one of
                        size, boot, memory, limits, wrk, bulk, tls, hosted, storage, xen, image,
                        app)
  bench alloc|boot      the figures of single components (allocators; hello)
  xen-linux             nested Xen (QEMU TCG): a Linux PVH domU with a vif and a disk, driven
                        from dom0; prints its figures (-- nginx: nginx instead of busybox
                        httpd; -- wrk: load it from dom0 with wrk; -v: every serial line)

options:
  --target virtio|xen|unix  platform (default: virtio)
  --example NAME        application under examples/ (default: hello)
  --release             optimised build
  --no-default-features build the example without its default cargo features (http: without
                        HTTPS and ACME), into target/PLATFORM-minimal
  --machine microvm|q35|pc   QEMU machine (default: microvm)
  -m MIB                guest memory in MiB (default: 64)
  --cpu MODEL           QEMU CPU model (default: max, which offers RDRAND — QEMU's TCG has no
                        RDSEED; qemu64 offers neither)
  --rng                 attach a virtio-rng device (entropy from the host's /dev/urandom)
  --timeout SECONDS     kill the image after this long (default: 60; with --gdb: none)
  --gdb                 run: debug it. virtio: QEMU starts halted with its gdb stub on a free
                        port, and the one gdb command that attaches with the image's symbols
                        is printed; unix: runs the process under gdb. The image is built into
                        target/PLATFORM-gdb with its call frame information (and debug info
                        with --release); build --gdb builds only that. Not on xen.
                        See docs/debugging.md
  -p HOST:GUEST         forward 127.0.0.1:HOST to the guest's TCP port GUEST (QEMU user
                        networking, no root needed; repeatable)
  --tap NAME            plug the network card into the existing TAP device NAME instead
  --nic PROP=VALUE      extra network card property (e.g. rx_queue_size=1024; repeatable)
  --disk PATH[:SIZE][:ro][:cache=MODE]
                        attach the raw image (or block device) PATH as the next disk: disk0,
                        disk1, ... in the order given (repeatable). virtio: a virtio-blk device
                        (after the network card); unix: the boot argument diskN=PATH.
                        SIZE (512K, 64M, 1G or bytes, whole 512-byte sectors) creates a
                        missing PATH as a sparse file; an existing file must already have that
                        size (it is never resized). ro: read-only. cache=MODE: QEMU's host
                        cache, writeback (default), none, writethrough, directsync or unsafe
                        (virtio only). Example: --disk data.img:64M --disk seed.img:ro
  -- ARGS...            boot arguments, e.g. -- name=you log=debug
";

const APP_HELP: &str = "\
cargo fata <command> [options] [-- boot arguments]

An app in its own repository: run inside its directory (or give --manifest-path; -p/--bin
chooses among several apps of a workspace).

commands:
  new NAME [--template hello|http|kv]   a new app that builds, boots and tests at once
  build | run | check                   as `cargo xtask` (--target virtio|xen|unix, --release, -m,
                                        -p HOST:GUEST, --disk, --timeout, -- boot arguments;
                                        run --gdb: debug it, see docs/debugging.md)
  test [-- ARGS]                        the app's own tests (`cargo test`; they boot the image;
                                        ARGS go to the tests, e.g. -- --ignored for Xen)
  image | deploy-config | release       disks, platform configurations, every artefact proven

The same commands and flags as `cargo xtask help` describes.
";

struct Cli {
    command: String,
    sub: Option<String>,
    target: Target,
    example: String,
    release: bool,
    minimal: bool,
    machine: Machine,
    memory: u32,
    cpu: Option<String>,
    rng: bool,
    timeout: Duration,
    /// `--timeout` was given (`--gdb` otherwise waits for the debugging session).
    timeout_given: bool,
    gdb: bool,
    forwards: Vec<(u16, u16)>,
    quick: bool,
    only: Option<String>,
    manifest: Option<std::path::PathBuf>,
    verbose: bool,
    tap: Option<String>,
    nic: Vec<String>,
    disks: Vec<xtask::disk::DiskSpec>,
    xen: bool,
    format: Option<String>,
    out: Option<std::path::PathBuf>,
    set_args: Option<std::path::PathBuf>,
    data_disk: Option<u64>,
    bridge: Option<String>,
    mac: Option<String>,
    boot_disk: Option<std::path::PathBuf>,
    domain_type: Option<String>,
    bin: Option<String>,
    template: Option<String>,
    args: Vec<String>,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Cli> {
    let command = it.next().unwrap_or_else(|| "help".into());
    let mut cli = Cli {
        command,
        sub: None,
        target: Target::Virtio,
        example: "hello".into(),
        release: false,
        minimal: false,
        machine: Machine::Microvm,
        memory: 64,
        cpu: None,
        rng: false,
        timeout: Duration::from_secs(60),
        timeout_given: false,
        gdb: false,
        forwards: Vec::new(),
        quick: false,
        only: None,
        manifest: None,
        verbose: false,
        tap: None,
        nic: Vec::new(),
        disks: Vec::new(),
        xen: false,
        format: None,
        out: None,
        set_args: None,
        data_disk: None,
        bridge: None,
        mac: None,
        boot_disk: None,
        domain_type: None,
        bin: None,
        template: None,
        args: Vec::new(),
    };
    let mut example_given = false;
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| Error(format!("{name} needs a value")))
        };
        match a.as_str() {
            "--target" => cli.target = Target::parse(&value("--target")?)?,
            "--example" => {
                cli.example = value("--example")?;
                example_given = true;
            }
            "--release" => cli.release = true,
            "--no-default-features" => cli.minimal = true,
            "--machine" => cli.machine = Machine::parse(&value("--machine")?)?,
            "-m" => {
                let v = value("-m")?;
                cli.memory = v
                    .trim_end_matches(['M', 'm'])
                    .parse()
                    .map_err(|_| Error(format!("-m {v}: expected MiB")))?;
            }
            "--timeout" => {
                let v = value("--timeout")?;
                let s: u64 = v
                    .parse()
                    .map_err(|_| Error(format!("--timeout {v}: expected seconds")))?;
                cli.timeout = Duration::from_secs(s);
                cli.timeout_given = true;
            }
            // `-p HOST:GUEST` forwards a port; `-p NAME` (cargo's habit) selects a package.
            "-p" => {
                let v = value("-p")?;
                if v.contains(':') {
                    cli.forwards.push(xtask::qemu::parse_forward(&v)?);
                } else {
                    cli.bin = Some(v);
                }
            }
            "--tap" => cli.tap = Some(value("--tap")?),
            "--quick" => cli.quick = true,
            "--manifest-path" => cli.manifest = Some(value("--manifest-path")?.into()),
            "--verbose" | "-v" => cli.verbose = true,
            "--xen" => cli.xen = true,
            "--format" => cli.format = Some(value("--format")?),
            "--out" => cli.out = Some(value("--out")?.into()),
            "--set-args" => cli.set_args = Some(value("--set-args")?.into()),
            "--bridge" => cli.bridge = Some(value("--bridge")?),
            "--mac" => cli.mac = Some(value("--mac")?),
            "--boot-disk" => cli.boot_disk = Some(value("--boot-disk")?.into()),
            "--domain-type" => cli.domain_type = Some(value("--domain-type")?),
            "--bin" | "--package" => cli.bin = Some(value("--bin")?),
            "--template" => cli.template = Some(value("--template")?),
            "--data-disk" => {
                let v = value("--data-disk")?;
                cli.data_disk = Some(xtask::disk::parse_size(&v)?);
            }
            "--only" => cli.only = Some(value("--only")?),
            "--nic" => cli.nic.push(value("--nic")?),
            "--cpu" => cli.cpu = Some(value("--cpu")?),
            "--rng" => cli.rng = true,
            "--gdb" => cli.gdb = true,
            "--disk" => cli
                .disks
                .push(xtask::disk::DiskSpec::parse(&value("--disk")?)?),
            "--" => {
                cli.args = it.by_ref().collect();
                break;
            }
            s if !s.starts_with('-') && cli.sub.is_none() => cli.sub = Some(s.to_string()),
            s => bail!("unknown option `{s}`\n\n{HELP}"),
        }
    }
    if cli.command == "test" && !example_given {
        cli.example.clear();
    }
    Ok(cli)
}

fn do_build(cli: &Cli) -> Result<xtask::build::Image> {
    if let Some(m) = &cli.manifest {
        let img = xtask::build::build_manifest(m, cli.target, cli.release)?;
        eprintln!("xtask: image {}", img.path.display());
        return Ok(img);
    }
    let opts = BuildOpts {
        target: cli.target,
        example: cli.example.clone(),
        release: cli.release,
    };
    let img = if cli.minimal {
        xtask::build::build_minimal(&opts)?
    } else {
        build(&opts)?
    };
    let size = std::fs::metadata(&img.path)?.len();
    eprintln!("xtask: image {} ({} KiB)", img.path.display(), size / 1024);
    Ok(img)
}

/// `deploy-config`: a platform's configuration for the example's image; its path. With
/// `build`, builds the (release) image first; otherwise names where it will be.
fn do_deploy(cli: &Cli, build_first: bool) -> Result<std::path::PathBuf> {
    use xtask::deploy::{DeployFormat, DeployOpts};
    let format = DeployFormat::parse(cli.format.as_deref().unwrap_or("xl"))?;
    let target = match (format, cli.target) {
        (DeployFormat::Xl, _) => Target::Xen,
        (DeployFormat::Firecracker, Target::Xen) => {
            bail!("Firecracker boots --target virtio images")
        }
        (_, t) => t,
    };
    if target == Target::Unix {
        bail!("a unix build is a process, not a domain: no configuration needed");
    }
    let app = xtask::app::App::new(cli.manifest.as_deref(), &cli.example);
    let name = app.name()?;
    let kernel = if build_first {
        app.build(target, true)?.path
    } else {
        target
            .target_dir(&xtask::root())
            .join(xtask::target::TRIPLE)
            .join("release")
            .join(&name)
    };
    let mut o = DeployOpts::new(&name, &kernel.canonicalize().unwrap_or(kernel.clone()));
    o.memory_mib = cli.memory;
    o.args = xtask::runner::cmdline(&cli.args);
    // Configurations outlive the shell they were made in: every path is absolute.
    let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    o.disks = cli.disks.iter().map(|d| absolute(&d.path)).collect();
    o.boot_disk = cli.boot_disk.as_deref().map(absolute);
    if let Some(b) = &cli.bridge {
        o.bridge = b.clone();
    } else if format == DeployFormat::Firecracker {
        o.bridge = "tap0".into();
    } else if format == DeployFormat::Xl {
        o.bridge = "xenbr0".into();
    }
    if let Some(m) = &cli.mac {
        o.mac = m.clone();
    } else if target == Target::Xen {
        // Xen's own range.
        o.mac = "00:16:3e:fa:7a:01".into();
    }
    if let Some(t) = &cli.domain_type {
        o.domain_type = t.clone();
    }
    o.tap = cli.tap.clone();
    let text = match format {
        DeployFormat::Xl => xtask::deploy::xl(&o)?,
        DeployFormat::Libvirt => xtask::deploy::libvirt(&o, target == Target::Xen)?,
        DeployFormat::Firecracker => xtask::deploy::firecracker(&o)?,
    };
    let out = match &cli.out {
        Some(o) => o.clone(),
        None => app.out_root()?.join("target/deploy").join(format!(
            "{name}-{}.{}",
            target.name(),
            format.extension()
        )),
    };
    if let Some(d) = out.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(&out, text)?;
    eprintln!("xtask: {}", out.display());
    Ok(out)
}

/// `image`: a bootable disk artefact (or new boot arguments for one).
fn do_image(cli: &Cli) -> Result<()> {
    let args = xtask::runner::cmdline(&cli.args);
    if let Some(disk) = &cli.set_args {
        xtask::image::set_args(disk, &args)?;
        eprintln!("xtask: {} boots with: {args}", disk.display());
        return Ok(());
    }
    if cli.target != Target::Virtio {
        bail!(
            "disk images are for --target virtio (QEMU, KVM clouds); a xen image boots with its .xl file"
        );
    }
    let format = xtask::image::Format::parse(cli.format.as_deref().unwrap_or("raw"))?;
    xtask::image::check_args(&args)?;
    let t = std::time::Instant::now();
    let app = xtask::app::App::new(cli.manifest.as_deref(), &cli.example);
    let name = app.name()?;
    let img = app.build(cli.target, true)?;
    let out = match &cli.out {
        Some(o) => o.clone(),
        None => app
            .out_root()?
            .join("target/image")
            .join(format!("{name}.{}", format.extension())),
    };
    let made = xtask::image::make(&img.path, format, &args, &out)?;
    let size = std::fs::metadata(&made.path)?.len();
    eprintln!(
        "xtask: {} ({} KiB) in {:.1} s; boot arguments: {}",
        made.path.display(),
        size / 1024,
        t.elapsed().as_secs_f64(),
        if args.is_empty() { "none" } else { &args }
    );
    if let Some(bytes) = cli.data_disk {
        let data = out.with_file_name(format!("{name}-data.raw"));
        xtask::image::data_disk(&data, bytes)?;
        eprintln!(
            "xtask: data disk {} ({} MiB, blank)",
            data.display(),
            bytes >> 20
        );
    }
    Ok(())
}

/// `run --target xen`: the image on the nested Xen harness.
fn do_run_xen(cli: &Cli, require_success: bool) -> Result<ExitCode> {
    if !cli.forwards.is_empty()
        || cli.tap.is_some()
        || !cli.nic.is_empty()
        || cli.cpu.is_some()
        || cli.rng
    {
        bail!(
            "-p, --tap, --nic, --cpu and --rng are QEMU options; on the nested Xen the guest is 10.0.0.2 behind dom0"
        );
    }
    xtask::cleanup::install();
    let img = do_build(cli)?;
    let h = xtask::xen::prepare()?;
    eprintln!(
        "xtask: booting Xen and dom0 under QEMU (TCG), then `xl create` (about 10 s before the guest starts)"
    );
    let r = xtask::xen::guest::run_guest(
        &h,
        &img.path,
        &xtask::runner::cmdline(&cli.args),
        cli.memory.min(4096),
        &cli.disks,
        cli.timeout,
        cli.verbose,
    )?;
    if r.timed_out {
        bail!(
            "the domain did not finish within {:?} and was destroyed (raise it with --timeout)",
            cli.timeout
        );
    }
    match r.code {
        Some(0) => Ok(ExitCode::SUCCESS),
        Some(c) if !require_success => Ok(ExitCode::from(c)),
        Some(c) => bail!("`{}` exited with code {c}", cli.example),
        None => bail!(
            "the domain ended without printing its exit code\n{}",
            r.output.summary()
        ),
    }
}

/// `build` for `--gdb`: the image for debugging ([`xtask::gdb::build`]).
fn do_build_gdb(cli: &Cli) -> Result<xtask::build::Image> {
    let opts = BuildOpts {
        target: cli.target,
        example: cli.example.clone(),
        release: cli.release,
    };
    let img = xtask::gdb::build(&opts, cli.manifest.as_deref(), cli.minimal)?;
    let size = std::fs::metadata(&img.path)?.len();
    eprintln!(
        "xtask: image for debugging {} ({} KiB, with symbols and debug information)",
        img.path.display(),
        size / 1024
    );
    Ok(img)
}

/// `run --target unix --gdb`: the process under gdb, on this terminal; gdb's exit code.
fn do_run_unix_gdb(cli: &Cli) -> Result<ExitCode> {
    xtask::setup::ensure_program("gdb", "gdb")?;
    let opts = BootOpts {
        args: cli.args.clone(),
        disks: cli.disks.clone(),
        ..Default::default()
    };
    xtask::runner::prepare_disks(&opts, cli.target)?;
    let img = do_build_gdb(cli)?;
    let mut args = cli.args.clone();
    args.extend(xtask::disk::unix_args(&cli.disks)?);
    let argv = xtask::gdb::unix_command(&img.path, &xtask::gdb::script(&img.path)?, &args);
    let mut c = std::process::Command::new(&argv[0]);
    c.args(&argv[1..]);
    cmd::echo(&c);
    let status = c
        .status()
        .map_err(|e| Error(format!("cannot start gdb: {e}")))?;
    Ok(ExitCode::from(status.code().unwrap_or(1) as u8))
}

/// Boots and returns the image's exit code as ours.
fn do_run(cli: &Cli, require_success: bool) -> Result<ExitCode> {
    if cli.gdb && cli.target == Target::Xen {
        bail!(
            "--gdb is not supported on --target xen: the domain runs under a nested Xen inside QEMU, whose gdb stub would show Xen, not the domain; debug the same app with --target virtio (or unix)"
        );
    }
    if cli.target == Target::Xen {
        return do_run_xen(cli, require_success);
    }
    if cli.gdb && cli.target == Target::Unix {
        return do_run_unix_gdb(cli);
    }
    if cli.target == Target::Virtio {
        xtask::qemu::find()?;
    }
    let mut opts = BootOpts {
        args: cli.args.clone(),
        echo: true,
        disks: cli.disks.clone(),
        ..Default::default()
    };
    // Bad disks fail before the build.
    xtask::runner::prepare_disks(&opts, cli.target)?;
    let img = if cli.gdb {
        do_build_gdb(cli)?
    } else {
        do_build(cli)?
    };
    let mut timeout = cli.timeout;
    if cli.gdb {
        xtask::setup::ensure_program("gdb", "gdb")?;
        let port = xtask::gdb::free_port()?;
        opts.qemu.extra.extend(xtask::gdb::qemu_args(port));
        let attach = xtask::gdb::attach_command(&img.path, port, &xtask::gdb::script(&img.path)?);
        eprintln!(
            "xtask: QEMU starts halted, its gdb stub on 127.0.0.1:{port}. Attach from another terminal with:\n\n    {}\n",
            xtask::gdb::shell_line(&attach)
        );
        if !cli.timeout_given {
            // The session lasts as long as the person debugging needs.
            timeout = Duration::from_secs(365 * 24 * 3600);
        }
    }
    opts.qemu.machine = cli.machine;
    opts.qemu.memory_mib = cli.memory;
    opts.qemu.nic_props = cli.nic.clone();
    if let Some(cpu) = &cli.cpu {
        opts.qemu.cpu = cpu.clone();
    }
    opts.qemu.rng = cli.rng;
    // Every machine gets a network card: user networking unless a TAP device is named.
    opts.qemu.net = Some(match &cli.tap {
        Some(t) => xtask::qemu::NetBackend::Tap { ifname: t.clone() },
        None => xtask::qemu::NetBackend::User {
            forwards: cli.forwards.clone(),
        },
    });
    let out = boot(&img, &opts)?.wait(timeout)?;
    match out.exit {
        Exit::Code(0) => Ok(ExitCode::SUCCESS),
        Exit::Code(c) if !require_success => Ok(ExitCode::from(c)),
        Exit::Code(c) => bail!("`{}` exited with code {c}", cli.example),
        Exit::PoweredOff => bail!("the machine powered off without an exit code"),
        Exit::TimedOut => bail!(
            "the image did not finish within {:?} and was killed (raise it with --timeout)",
            cli.timeout
        ),
        Exit::Signal(s) => bail!("the image was killed by signal {s}"),
        Exit::QemuFailed(m) => bail!("QEMU failed: {m}"),
    }
}

fn real_main(mode: Mode, args: impl Iterator<Item = String>) -> Result<ExitCode> {
    let mut cli = parse(args)?;
    if mode == Mode::App {
        match cli.command.as_str() {
            "help" | "--help" | "-h" => {
                print!("{APP_HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            "new" => {
                let name = cli.sub.clone().ok_or_else(|| {
                    Error("usage: cargo fata new NAME [--template hello|http|kv]".into())
                })?;
                let dir = std::env::current_dir()?.join(&name);
                let template = cli.template.as_deref().unwrap_or("hello");
                xtask::new::create(&dir, &name, template)?;
                eprintln!(
                    "xtask: created {} from the `{template}` template. Next: cd {name} && cargo fata run",
                    dir.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            "bench" | "lint" | "setup" | "xen-linux" => bail!(
                "`{}` is for developing fata itself (cargo xtask in fata's checkout); apps have build, run, check, test, image, deploy-config and release",
                cli.command
            ),
            _ => {}
        }
        xtask::app::select(&mut cli.manifest, cli.bin.as_deref())?;
        if cli.command == "test" && cli.example.is_empty() {
            // The app's own tests (they boot its image through `fata-test`).
            let mut c = xtask::build::cargo();
            c.arg("test")
                .arg("--manifest-path")
                .arg(cli.manifest.as_ref().expect("selected"));
            // After `--`: the test binaries' own arguments (`--ignored`, a filter).
            if !cli.args.is_empty() {
                c.arg("--").args(&cli.args);
            }
            cmd::run(&mut c, "the app's tests")?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    match cli.command.as_str() {
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        "setup" => {
            xtask::setup::ensure_qemu()?;
            let hello = Cli {
                example: "hello".into(),
                release: true,
                ..cli
            };
            do_run(&hello, true)?;
            eprintln!(
                "xtask: setup done: QEMU is installed and `hello` boots. Run the tests with `cargo xtask test`."
            );
            Ok(ExitCode::SUCCESS)
        }
        "build" if cli.gdb => do_build_gdb(&cli).map(|_| ExitCode::SUCCESS),
        "build" => do_build(&cli).map(|_| ExitCode::SUCCESS),
        "image" => do_image(&cli).map(|_| ExitCode::SUCCESS),
        "deploy-config" => do_deploy(&cli, true).map(|_| ExitCode::SUCCESS),
        "release" => {
            xtask::cleanup::install();
            xtask::setup::ensure_qemu()?;
            let t = std::time::Instant::now();
            let app = xtask::app::App::new(cli.manifest.as_deref(), &cli.example);
            let r = xtask::release::release(&app, &cli.args)?;
            eprintln!(
                "xtask: release of `{}` in {:.1} s:",
                app.name()?,
                t.elapsed().as_secs_f64()
            );
            for (what, secs) in &r.steps {
                eprintln!("  {secs:6.1} s  {what}");
            }
            for a in &r.artefacts {
                eprintln!(
                    "  {}{}",
                    r.dir.join(&a.name).display(),
                    a.proof
                        .as_ref()
                        .map(|p| format!(": {p}"))
                        .unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        "run" => do_run(&cli, false),
        "test" if !cli.example.is_empty() => do_run(&cli, true),
        "lint" => xtask::lint::run().map(|_| ExitCode::SUCCESS),
        "check" => {
            let manifest = match &cli.manifest {
                Some(m) => m.clone(),
                None => {
                    let root = xtask::root();
                    if !xtask::build::examples(&root).contains(&cli.example) {
                        bail!("unknown example `{}`", cli.example);
                    }
                    root.join("examples").join(&cli.example).join("Cargo.toml")
                }
            };
            let opts = xtask::check::CheckOpts {
                manifest,
                verbose: cli.verbose,
            };
            let reports = xtask::check::check(&opts)?;
            print!("{}", xtask::check::render(&reports, cli.verbose));
            Ok(if reports.iter().all(|r| r.ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        "test" if cli.xen => {
            // Only the Xen target: its drivers' and platform's unit tests, then the nested
            // Xen session (tests/tests/xen.rs).
            let mut c = xtask::build::cargo();
            c.current_dir(xtask::root()).args([
                "test",
                "--package",
                "fata-xen",
                "--package",
                "fata-platform-xen",
            ]);
            cmd::run(&mut c, "the Xen drivers' and platform's unit tests")?;
            let mut x = xtask::build::cargo();
            x.current_dir(xtask::root())
                .args(["test", "--package", "fata-tests", "--test", "xen"]);
            cmd::run(&mut x, "the nested Xen tests")?;
            Ok(ExitCode::SUCCESS)
        }
        "test" => {
            xtask::setup::ensure_qemu()?;
            xtask::lint::run()?;
            let mut c = xtask::build::cargo();
            c.current_dir(xtask::root()).arg("test");
            cmd::run(&mut c, "the test suite")?;
            // The runtime's networking, TLS and ACME code only exists with its features
            // (`acme` brings `net`, `tls` and `kv`).
            let mut n = xtask::build::cargo();
            n.current_dir(xtask::root()).args([
                "test",
                "--package",
                "fata",
                "--features",
                "acme,log-fields",
            ]);
            cmd::run(
                &mut n,
                "the runtime's unit tests with networking, TLS and ACME",
            )?;
            Ok(ExitCode::SUCCESS)
        }
        "bench" => {
            xtask::cleanup::install();
            match cli.sub.as_deref() {
                None => {
                    xtask::setup::ensure_tools(&["wrk"])?;
                    let opts = xtask::compare::CompareOpts {
                        quick: cli.quick,
                        only: cli.only.clone(),
                    };
                    xtask::compare::run(&opts).map(|_| ExitCode::SUCCESS)
                }
                // The storage figures' load generator, which the benchmark runs inside its
                // network namespace: `bench kvload -- ADDR CLIENTS WARMUP_MS MEASURE_MS`.
                Some("kvload") => xtask::compare::kv_load_cli(&cli.args).map(|_| ExitCode::SUCCESS),
                Some(which) => xtask::bench::run(which).map(|_| ExitCode::SUCCESS),
            }
        }
        "xen-linux" => {
            xtask::cleanup::install();
            let mut d = xtask::xen::linux::LinuxDomu::default();
            for a in &cli.args {
                match a.as_str() {
                    "nginx" => d.nginx = true,
                    "wrk" => d.wrk = true,
                    other => bail!("xen-linux: unknown word `{other}` (nginx, wrk)"),
                }
            }
            let t = std::time::Instant::now();
            let h = xtask::xen::prepare()?;
            eprintln!(
                "xtask: harness prepared in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            let verbose = cli.verbose;
            let f = xtask::xen::linux::linux_domu(&h, &d, &mut |l| {
                if verbose || l.text.contains("DOM0-") || l.text.contains("DOMU-") {
                    eprintln!("{:8.3} {}", l.at.as_secs_f64(), l.text);
                }
            })?;
            println!("{}", f.description);
            println!(
                "session (QEMU start to DOM0-DONE): {:.1} s",
                f.session.as_secs_f64()
            );
            println!(
                "dom0 ready for xl create:          {:.1} s",
                f.dom0_ready.as_secs_f64()
            );
            println!("xl create to the domU's ready line: {} ms", f.ready_ms);
            println!("xl create to the first HTTP 200:    {} ms", f.http_ms);
            if let Some(r) = f.wrk_rps {
                println!("wrk -t1 -c16 -d5s from dom0:        {r:.0} requests/s");
            }
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown command `{other}`\n\n{HELP}"),
    }
}

/// Runs the command in `args` (without the program name); the process's exit code.
pub fn main(mode: Mode, args: impl Iterator<Item = String>) -> ExitCode {
    match real_main(mode, args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}
