//! Start-up and shut-down: from the platform's call to `__fata_start` to `exit`.
//!
//! `start` claims the heap, prints the banner, loads the configuration (stopping with the help
//! text on a bad command line), installs the logger, prints the effective configuration, runs
//! the application's `main` on the executor and turns its outcome into an exit code.

use crate::config::{self, ArgError, Config};
use crate::console::Console;
use crate::executor::{Executor, Stall, set_current};
use crate::platform::{Plat, init_heap};
use alloc::boxed::Box;
use core::fmt::{self, Write};
use core::future::Future;
use fata_hal::{BootInfo, ExitCode, Platform};

/// The application's handle on the runtime, passed to `main`.
pub struct Runtime<C: 'static = ()> {
    config: &'static C,
}

impl<C> Clone for Runtime<C> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<C> Copy for Runtime<C> {}

impl<C> Runtime<C> {
    /// The application's configuration (defaults overridden by the boot command line).
    pub fn config(&self) -> &'static C {
        self.config
    }
}

/// What `main` may return: `()` or `Result<(), E>` with a displayable error.
pub trait Termination {
    /// Reports the outcome on the console and gives the exit code.
    fn report(self) -> ExitCode;
}

impl Termination for () {
    fn report(self) -> ExitCode {
        ExitCode::Success
    }
}

impl<E: fmt::Display> Termination for Result<(), E> {
    fn report(self) -> ExitCode {
        match self {
            Ok(()) => ExitCode::Success,
            Err(e) => {
                crate::logger::status(format_args!("fata: main returned an error: {e}"));
                #[cfg(feature = "tls")]
                {
                    *LAST_ERROR.0.lock() = Some(alloc::string::ToString::to_string(&e));
                }
                ExitCode::AppError
            }
        }
    }
}

/// The error `main` returned, for the error report (`report_url`).
#[cfg(feature = "tls")]
static LAST_ERROR: crate::single::Local<spin::Mutex<Option<alloc::string::String>>> =
    crate::single::Local(spin::Mutex::new(None));

/// Flushes and exits, saying so on the console (the exit status can be lost on machines
/// without a debug-exit device).
pub(crate) fn exit_with(code: ExitCode) -> ! {
    crate::logger::status(format_args!("fata: exit {} ({:?})", code.code(), code));
    Plat::exit(code)
}

/// Prints a panic report and exits with [`ExitCode::Panic`]. Used by bare-metal panic
/// handlers; hosted platforms install an equivalent hook.
#[allow(dead_code)]
pub(crate) fn report_panic(
    location: Option<&core::panic::Location<'_>>,
    msg: impl fmt::Display,
) -> ! {
    match location {
        Some(l) => crate::logger::status(format_args!(
            "fata: panic at {}:{}:{}: {msg}",
            l.file(),
            l.line(),
            l.column()
        )),
        None => crate::logger::status(format_args!("fata: panic: {msg}")),
    }
    exit_with(ExitCode::Panic)
}

#[cfg(feature = "net")]
static NET: crate::single::Local<spin::Once<Result<crate::net::Stack, crate::net::Unavailable>>> =
    crate::single::Local(spin::Once::new());

#[cfg(feature = "net")]
pub(crate) fn net_stack() -> Result<crate::net::Stack, crate::net::Unavailable> {
    NET.0.get().cloned().unwrap_or_else(|| {
        Err(crate::net::Unavailable(
            "the runtime has not started".into(),
        ))
    })
}

/// Entry from `#[fata::main]`: runs the application and exits. Never returns.
pub fn start<C, F, Fut>(boot: BootInfo, main: F) -> !
where
    C: Config,
    F: FnOnce(Runtime<C>) -> Fut,
    Fut: Future + 'static,
    Fut::Output: Termination,
{
    init_heap(&boot);
    let _ = writeln!(
        Console::new(),
        "fata {} on {}",
        env!("CARGO_PKG_VERSION"),
        Plat::NAME
    );

    let loaded = match config::load::<C>(boot.cmdline, &|k: &str| Plat::is_platform_arg(k)) {
        Ok(l) => l,
        Err(e) => {
            let mut c = Console::new();
            if e != ArgError::Help {
                let _ = writeln!(c, "fata: boot argument error: {e}");
            }
            let _ = config::write_help::<C>(&mut c);
            drop(c);
            exit_with(ExitCode::Usage)
        }
    };
    crate::logger::init(loaded.runtime.log.0, loaded.runtime.log_format);
    log::debug!(
        "boot command line: {}",
        config::redacted_cmdline(boot.cmdline, &loaded)
    );
    let mut effective = alloc::string::String::new();
    let _ = config::write_effective(&mut effective, &loaded);
    crate::logger::status_lines(&effective);
    crate::rand::init(loaded.runtime.insecure_entropy);

    let exec: &'static Executor = Box::leak(Box::new(Executor::new()));
    set_current(exec);
    #[cfg(feature = "net")]
    {
        let net = crate::net::start(&loaded.net);
        if let Err(e) = &net {
            log::warn!("net: not started: {e}");
        }
        NET.0.call_once(|| net);
    }
    #[cfg(feature = "kv")]
    crate::kv::set_keys(loaded.kv.clone());
    #[cfg(feature = "tls")]
    crate::net::tls::set_keys(loaded.tls.clone());
    #[cfg(feature = "acme")]
    crate::net::acme::set_keys(loaded.acme.clone());
    let app: &'static C = Box::leak(Box::new(loaded.app));
    let code = match exec.block_on::<Plat, _>(main(Runtime { config: app })) {
        Ok(out) => out.report(),
        Err(Stall::NothingCanWake) => {
            crate::logger::status(format_args!(
                "fata: stalled: every task is waiting and no timer or device can wake one"
            ));
            ExitCode::AppError
        }
    };
    #[cfg(feature = "tls")]
    if let Some(error) = LAST_ERROR.0.lock().take() {
        let _ = exec.block_on::<Plat, _>(crate::net::https::report_error(error));
    }
    exit_with(code)
}
