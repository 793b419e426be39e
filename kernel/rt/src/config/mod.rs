//! Typed configuration keys.
//!
//! An application declares its keys with [`config!`](crate::config!): a name, a type, a
//! default and a help text (the doc comment). The runtime declares its own (`log`, and the
//! network keys as they come). At boot the command line (`key=value ...`, values may be
//! double-quoted) overrides the defaults; the effective configuration is printed; an unknown
//! key, a malformed value, a repeated key or the word `help` prints every key with its type,
//! default and help, and stops the boot with exit code 64 (`ExitCode::Usage`).
//!
//! Split by concern: `values` (the key types and how they parse and show), `cmdline` (splitting
//! the command line and applying it to the key sets), `report` (help text and the effective
//! configuration printed at boot). Only the key types, [`Config`] and the macro are public.
//!
//! ```ignore
//! fata::config! {
//!     pub struct Config {
//!         /// Who to greet.
//!         name: String = "world",
//!         /// How many greetings.
//!         count: u32 = 3,
//!     }
//! }
//! ```

mod cmdline;
mod report;
mod values;

pub(crate) use cmdline::{ArgError, load, redacted_cmdline};
pub(crate) use report::{write_effective, write_help};
#[doc(hidden)]
pub use values::{FromDefault, Shown};
pub use values::{IpList, Ipv4Net, Ipv6Net, LogFormat, LogLevel, Secret, Value};

use core::fmt::{self, Write};

/// A key's description (used by [`config!`](crate::config!)).
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Key {
    /// The name used on the command line.
    pub name: &'static str,
    /// The type's name ([`Value::TYPE`]).
    pub ty: &'static str,
    /// The doc comment of the key.
    pub help: &'static str,
}

/// A set of keys: implemented by [`config!`](crate::config!).
pub trait Config: Sized + 'static {
    /// Every key.
    const KEYS: &'static [Key];
    /// The configuration with every key at its default.
    fn defaults() -> Self;
    /// Sets `key` from a command-line value; `None` if the key is not in this set.
    fn set(&mut self, key: &str, value: &str) -> Option<Result<(), &'static str>>;
    /// Writes the value of `key`.
    fn show(&self, key: &str, out: &mut dyn Write) -> fmt::Result;
}

/// No keys (an application that declares none).
impl Config for () {
    const KEYS: &'static [Key] = &[];
    fn defaults() {}
    fn set(&mut self, _: &str, _: &str) -> Option<Result<(), &'static str>> {
        None
    }
    fn show(&self, _: &str, _: &mut dyn Write) -> fmt::Result {
        Ok(())
    }
}

/// Declares a configuration struct whose fields are boot-time keys. See the module docs.
#[macro_export]
macro_rules! config {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty = $default:expr
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl $crate::config::Config for $name {
            const KEYS: &'static [$crate::config::Key] = &[
                $( $crate::config::Key {
                    name: stringify!($field),
                    ty: <$ty as $crate::config::Value>::TYPE,
                    help: concat!($($doc, "\n",)*),
                }, )*
            ];

            fn defaults() -> Self {
                $name {
                    $( $field: <$ty as $crate::config::FromDefault<_>>::from_default($default), )*
                }
            }

            fn set(&mut self, key: &str, value: &str) -> Option<Result<(), &'static str>> {
                match key {
                    $( stringify!($field) => Some(
                        <$ty as $crate::config::Value>::parse(value).map(|v| self.$field = v)
                    ), )*
                    _ => None,
                }
            }

            fn show(&self, key: &str, out: &mut dyn ::core::fmt::Write) -> ::core::fmt::Result {
                match key {
                    $( stringify!($field) => ::core::write!(out, "{}", $crate::config::Shown(&self.$field)), )*
                    _ => Ok(()),
                }
            }
        }
    };
}

crate::config! {
    /// Keys every fata image understands.
    pub(crate) struct RuntimeConfig {
        /// Log level of the console logger.
        log: LogLevel = LogLevel(log::LevelFilter::Info),
        /// Console log format: text, or json (one JSON object per line: time, level,
        /// target, message and the record's key-value fields).
        log_format: LogFormat = LogFormat::Text,
        /// Let code that needs secure randomness (TLS keys) run even when no entropy source
        /// seeded fata::rand (it is then predictable). See fata::rand::allow_insecure.
        insecure_entropy: bool = false,
    }
}

#[cfg(test)]
mod tests;
