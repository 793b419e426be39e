//! Typed configuration keys.
//!
//! An application declares its keys with [`config!`](crate::config!): a name, a type, a
//! default and a help text (the doc comment). The runtime declares its own (`log`, and the
//! network keys as they come). At boot the command line (`key=value ...`, values may be
//! double-quoted) overrides the defaults; the effective configuration is printed; an unknown
//! key, a malformed value, a repeated key or the word `help` prints every key with its type,
//! default and help, and stops the boot with exit code 64 (`ExitCode::Usage`).
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

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::time::Duration;

/// A type a configuration key can have.
pub trait Value: Sized {
    /// The type's name in the help text.
    const TYPE: &'static str;
    /// Parses a command-line value; the error says what was expected.
    fn parse(s: &str) -> Result<Self, &'static str>;
    /// Shows the value as it would be written on the command line.
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

/// Conversion of a default written in `config!` into the key's type (a string literal for
/// `String` keys, the value itself otherwise).
pub trait FromDefault<T> {
    /// Converts.
    fn from_default(v: T) -> Self;
}

impl<T> FromDefault<T> for T {
    fn from_default(v: T) -> T {
        v
    }
}

impl FromDefault<&str> for String {
    fn from_default(v: &str) -> String {
        v.to_string()
    }
}

impl FromDefault<&str> for Secret {
    fn from_default(v: &str) -> Secret {
        Secret(v.to_string())
    }
}

/// Displays a [`Value`] through [`Value::show`].
pub struct Shown<'a, T: Value>(pub &'a T);

impl<T: Value> fmt::Display for Shown<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.show(f)
    }
}

impl Value for bool {
    const TYPE: &'static str = "bool";
    fn parse(s: &str) -> Result<bool, &'static str> {
        match s {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err("expected true or false"),
        }
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

macro_rules! int_value {
    ($($t:ty => $msg:literal),*) => {$(
        impl Value for $t {
            const TYPE: &'static str = stringify!($t);
            fn parse(s: &str) -> Result<$t, &'static str> {
                let s = s.replace('_', "");
                let r = match s.strip_prefix("0x") {
                    Some(hex) => <$t>::from_str_radix(hex, 16),
                    None => s.parse::<$t>(),
                };
                r.map_err(|_| $msg)
            }
            fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{self}")
            }
        }
    )*};
}

int_value!(
    u8 => "expected a whole number from 0 to 255",
    u16 => "expected a whole number from 0 to 65535",
    u32 => "expected a whole number from 0 to 4294967295",
    u64 => "expected a whole number from 0 to 18446744073709551615",
    usize => "expected a non-negative whole number",
    i32 => "expected a whole number from -2147483648 to 2147483647",
    i64 => "expected a whole number"
);

impl Value for String {
    const TYPE: &'static str = "string";
    fn parse(s: &str) -> Result<String, &'static str> {
        Ok(s.to_string())
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() || self.contains(|c: char| c.is_whitespace() || c == '"') {
            write!(f, "{self:?}")
        } else {
            f.write_str(self)
        }
    }
}

impl Value for Duration {
    const TYPE: &'static str = "duration";
    fn parse(s: &str) -> Result<Duration, &'static str> {
        const WHY: &str = "expected a number with a unit: ns, us, ms, s, m or h (e.g. 250ms, 5s)";
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or(WHY)?;
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| WHY)?;
        let per: u64 = match unit {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(WHY),
        };
        n.checked_mul(per)
            .map(Duration::from_nanos)
            .ok_or("duration too long")
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.as_nanos();
        for (unit, per) in [
            ("h", 3_600_000_000_000u128),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
            ("us", 1_000),
        ] {
            if ns >= per && ns.is_multiple_of(per) {
                return write!(f, "{}{unit}", ns / per);
            }
        }
        write!(f, "{ns}ns")
    }
}

/// A log level key (`off`, `error`, `warn`, `info`, `debug`, `trace`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLevel(pub log::LevelFilter);

impl Value for LogLevel {
    const TYPE: &'static str = "off|error|warn|info|debug|trace";
    fn parse(s: &str) -> Result<LogLevel, &'static str> {
        use log::LevelFilter::*;
        Ok(LogLevel(match s.to_ascii_lowercase().as_str() {
            "off" => Off,
            "error" => Error,
            "warn" | "warning" => Warn,
            "info" => Info,
            "debug" => Debug,
            "trace" => Trace,
            _ => return Err("expected off, error, warn, info, debug or trace"),
        }))
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = alloc::format!("{}", self.0);
        f.write_str(&s.to_ascii_lowercase())
    }
}

/// A string that is never printed (API keys, passwords): the boot log shows only whether it
/// is set and its length.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Value for Secret {
    const TYPE: &'static str = "secret";
    fn parse(s: &str) -> Result<Secret, &'static str> {
        Ok(Secret(s.to_string()))
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(empty)")
        } else {
            write!(f, "(hidden, {} bytes)", self.0.len())
        }
    }
}

impl<T: Value> Value for Option<T> {
    const TYPE: &'static str = T::TYPE;
    fn parse(s: &str) -> Result<Option<T>, &'static str> {
        match s {
            "" | "none" => Ok(None),
            s => T::parse(s).map(Some),
        }
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Some(v) => v.show(f),
            None => f.write_str("none"),
        }
    }
}

impl Value for core::net::Ipv4Addr {
    const TYPE: &'static str = "ipv4";
    fn parse(s: &str) -> Result<Self, &'static str> {
        s.parse()
            .map_err(|_| "expected an IPv4 address like 10.0.0.2")
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// An IPv4 address with a prefix length: `10.0.0.2/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    /// The address.
    pub addr: core::net::Ipv4Addr,
    /// The prefix length (0..=32).
    pub prefix: u8,
}

impl Value for Ipv4Net {
    const TYPE: &'static str = "ipv4/len";
    fn parse(s: &str) -> Result<Self, &'static str> {
        const WHY: &str = "expected an IPv4 address with a prefix length, like 10.0.0.2/24";
        let (a, l) = s.split_once('/').ok_or(WHY)?;
        let addr = a.parse().map_err(|_| WHY)?;
        let prefix: u8 = l.parse().map_err(|_| WHY)?;
        if prefix > 32 {
            return Err("the prefix length must be 0..=32");
        }
        Ok(Ipv4Net { addr, prefix })
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A comma-separated list of IPv4 addresses (may be empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ipv4List(pub Vec<core::net::Ipv4Addr>);

impl Value for Ipv4List {
    const TYPE: &'static str = "ipv4,...";
    fn parse(s: &str) -> Result<Self, &'static str> {
        s.split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(|w| {
                w.parse()
                    .map_err(|_| "expected IPv4 addresses separated by commas")
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Ipv4List)
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

/// A key's description.
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
    pub struct RuntimeConfig {
        /// Log level of the console logger.
        log: LogLevel = LogLevel(log::LevelFilter::Info),
    }
}

/// One `key=value` word of the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    /// The key.
    pub key: String,
    /// The value, unquoted.
    pub value: String,
}

/// Why the command line was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgError {
    /// `help` was given.
    Help,
    /// A word is not `key=value`.
    NotKeyValue(String),
    /// A double quote was opened and never closed.
    UnterminatedQuote(String),
    /// No key has this name.
    UnknownKey(String),
    /// The value does not parse as the key's type.
    BadValue {
        key: String,
        value: String,
        ty: &'static str,
        why: &'static str,
    },
    /// The key was given twice.
    Repeated(String),
    /// The application declares a key the runtime already has.
    Clash(&'static str),
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::Help => f.write_str("help requested"),
            ArgError::NotKeyValue(w) => write!(f, "`{w}` is not key=value"),
            ArgError::UnterminatedQuote(w) => write!(f, "unterminated double quote in `{w}`"),
            ArgError::UnknownKey(k) => write!(f, "unknown key `{k}`"),
            ArgError::BadValue {
                key,
                value,
                ty,
                why,
            } => {
                write!(f, "bad value `{value}` for key `{key}` ({ty}): {why}")
            }
            ArgError::Repeated(k) => write!(f, "key `{k}` is given more than once"),
            ArgError::Clash(k) => write!(
                f,
                "the application declares key `{k}`, which the runtime already has"
            ),
        }
    }
}

/// Splits a command line into `key=value` words. Values may be double-quoted
/// (`name="two words"`), with `\"` and `\\` escapes inside quotes.
pub fn split(cmdline: &str) -> Result<Vec<Arg>, ArgError> {
    let mut args = Vec::new();
    let mut chars = cmdline.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(args);
        }
        let mut word = String::new();
        let mut quoted = false;
        let mut raw = String::new();
        while let Some(c) = chars.next() {
            raw.push(c);
            match c {
                '"' => quoted = !quoted,
                '\\' if quoted => match chars.next() {
                    Some(n) => {
                        raw.push(n);
                        word.push(n)
                    }
                    None => return Err(ArgError::UnterminatedQuote(raw)),
                },
                c if c.is_whitespace() && !quoted => break,
                c => word.push(c),
            }
        }
        if quoted {
            return Err(ArgError::UnterminatedQuote(raw));
        }
        if word == "help" || word == "--help" {
            return Err(ArgError::Help);
        }
        match word.split_once('=') {
            Some((k, v)) if !k.is_empty() && !raw.starts_with('"') => args.push(Arg {
                key: k.to_string(),
                value: v.to_string(),
            }),
            _ => return Err(ArgError::NotKeyValue(raw.trim_end().to_string())),
        }
    }
}

/// Object-safe view of a [`Config`], so the runtime's, the network's and the application's
/// key sets are handled alike.
pub trait KeySet {
    /// Every key of the set.
    fn keys(&self) -> &'static [Key];
    /// [`Config::set`].
    fn set_dyn(&mut self, key: &str, value: &str) -> Option<Result<(), &'static str>>;
    /// [`Config::show`].
    fn show_dyn(&self, key: &str, out: &mut dyn Write) -> fmt::Result;
}

impl<C: Config> KeySet for C {
    fn keys(&self) -> &'static [Key] {
        C::KEYS
    }
    fn set_dyn(&mut self, key: &str, value: &str) -> Option<Result<(), &'static str>> {
        self.set(key, value)
    }
    fn show_dyn(&self, key: &str, out: &mut dyn Write) -> fmt::Result {
        self.show(key, out)
    }
}

/// The outcome of loading the configuration.
pub struct Loaded<C> {
    /// The runtime's keys.
    pub runtime: RuntimeConfig,
    /// The network keys (images built with networking).
    #[cfg(feature = "net")]
    pub net: crate::net::NetKeys,
    /// The application's keys.
    pub app: C,
    /// Keys set on the command line (the others are at their defaults).
    pub set: Vec<String>,
}

impl<C: Config> Loaded<C> {
    /// Every key set, runtime first, application last.
    fn sets(&self) -> Vec<&dyn KeySet> {
        alloc::vec![
            &self.runtime as &dyn KeySet,
            #[cfg(feature = "net")]
            &self.net,
            &self.app,
        ]
    }
}

/// Applies `cmdline` to `sets` in order; returns the keys it set. `platform_arg` tells which
/// keys belong to the platform (and are skipped here).
pub fn apply(
    cmdline: &str,
    platform_arg: &dyn Fn(&str) -> bool,
    sets: &mut [&mut dyn KeySet],
) -> Result<Vec<String>, ArgError> {
    for (i, a) in sets.iter().enumerate() {
        for b in &sets[i + 1..] {
            if let Some(k) = b
                .keys()
                .iter()
                .find(|k| a.keys().iter().any(|r| r.name == k.name))
            {
                return Err(ArgError::Clash(k.name));
            }
        }
    }
    let mut set: Vec<String> = Vec::new();
    for Arg { key, value } in split(cmdline)? {
        if platform_arg(&key) {
            continue;
        }
        if set.contains(&key) {
            return Err(ArgError::Repeated(key));
        }
        let mut outcome = None;
        for s in sets.iter_mut() {
            if let Some(r) = s.set_dyn(&key, &value) {
                let ty = s.keys().iter().find(|k| k.name == key).map_or("", |k| k.ty);
                outcome = Some((r, ty));
                break;
            }
        }
        match outcome {
            None => return Err(ArgError::UnknownKey(key)),
            Some((Err(why), ty)) => {
                return Err(ArgError::BadValue {
                    key,
                    value,
                    ty,
                    why,
                });
            }
            Some((Ok(()), _)) => set.push(key),
        }
    }
    Ok(set)
}

/// Applies the command line to the defaults of every key set.
pub fn load<C: Config>(
    cmdline: &str,
    platform_arg: &dyn Fn(&str) -> bool,
) -> Result<Loaded<C>, ArgError> {
    let mut l = Loaded {
        runtime: RuntimeConfig::defaults(),
        #[cfg(feature = "net")]
        net: crate::net::NetKeys::defaults(),
        app: C::defaults(),
        set: Vec::new(),
    };
    let mut sets: Vec<&mut dyn KeySet> = alloc::vec![
        &mut l.runtime as &mut dyn KeySet,
        #[cfg(feature = "net")]
        &mut l.net,
        &mut l.app,
    ];
    let set = apply(cmdline, platform_arg, &mut sets)?;
    l.set = set;
    Ok(l)
}

/// Writes the help text: every key with type, default and doc.
pub fn write_help<C: Config>(out: &mut dyn Write) -> fmt::Result {
    writeln!(
        out,
        "fata: boot arguments are key=value words (quote values with spaces: key=\"a b\"):"
    )?;
    let defaults = Loaded::<C> {
        runtime: RuntimeConfig::defaults(),
        #[cfg(feature = "net")]
        net: crate::net::NetKeys::defaults(),
        app: C::defaults(),
        set: Vec::new(),
    };
    for values in defaults.sets() {
        for k in values.keys() {
            let mut default = String::new();
            values.show_dyn(k.name, &mut default)?;
            writeln!(out, "  {}=<{}>  (default: {})", k.name, k.ty, default)?;
            for line in k.help.lines().map(str::trim).filter(|l| !l.is_empty()) {
                writeln!(out, "      {line}")?;
            }
        }
    }
    Ok(())
}

/// Writes the effective configuration, one key per line.
pub fn write_effective<C: Config>(out: &mut dyn Write, loaded: &Loaded<C>) -> fmt::Result {
    for values in loaded.sets() {
        for k in values.keys() {
            write!(out, "fata: config {}=", k.name)?;
            values.show_dyn(k.name, out)?;
            let from = if loaded.set.iter().any(|s| s == k.name) {
                "boot"
            } else {
                "default"
            };
            writeln!(out, " ({from})")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    crate::config! {
        struct App {
            /// Who to greet.
            name: String = "world",
            /// How many.
            /// Second line.
            count: u32 = 3,
            /// Pause.
            pause: Duration = Duration::from_millis(250),
            verbose: bool = false,
            token: Secret = "",
        }
    }

    fn no_platform(_: &str) -> bool {
        false
    }

    #[test]
    fn defaults_apply_and_command_line_overrides_them() {
        let l = load::<App>(
            "name=\"big world\" count=0x10 log=debug pause=2s",
            &no_platform,
        )
        .unwrap();
        assert_eq!(l.app.name, "big world");
        assert_eq!(l.app.count, 16);
        assert_eq!(l.app.pause, Duration::from_secs(2));
        assert!(!l.app.verbose);
        assert_eq!(l.runtime.log, LogLevel(log::LevelFilter::Debug));
        let d = load::<App>("", &no_platform).unwrap();
        assert_eq!((d.app.name.as_str(), d.app.count), ("world", 3));
    }

    #[test]
    fn unknown_key_malformed_value_repeats_and_help_are_errors() {
        assert_eq!(
            load::<App>("nmae=x", &no_platform).err(),
            Some(ArgError::UnknownKey("nmae".into()))
        );
        match load::<App>("count=-1", &no_platform).err() {
            Some(ArgError::BadValue { key, ty: "u32", .. }) => assert_eq!(key, "count"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            load::<App>("pause=5", &no_platform),
            Err(ArgError::BadValue { .. })
        ));
        assert!(matches!(
            load::<App>("verbose=maybe", &no_platform),
            Err(ArgError::BadValue { .. })
        ));
        assert_eq!(
            load::<App>("count=1 count=2", &no_platform).err(),
            Some(ArgError::Repeated("count".into()))
        );
        assert_eq!(
            load::<App>("count=1 help", &no_platform).err(),
            Some(ArgError::Help)
        );
        assert_eq!(
            load::<App>("justaword", &no_platform).err(),
            Some(ArgError::NotKeyValue("justaword".into()))
        );
        assert_eq!(
            load::<App>("=x", &no_platform).err(),
            Some(ArgError::NotKeyValue("=x".into()))
        );
        assert!(matches!(
            load::<App>("name=\"open", &no_platform),
            Err(ArgError::UnterminatedQuote(_))
        ));
    }

    #[test]
    fn platform_keys_are_left_to_the_platform() {
        let l = load::<App>("virtio_mmio.device=512@0xfeb00000:12 name=x", &|k: &str| {
            k.starts_with("virtio_mmio.")
        });
        assert_eq!(l.unwrap().app.name, "x");
    }

    #[test]
    fn quotes_and_escapes_split_correctly() {
        assert_eq!(
            split(r#"a=1  b="x y" c="q\"uote" d="#).unwrap(),
            vec![
                Arg {
                    key: "a".into(),
                    value: "1".into()
                },
                Arg {
                    key: "b".into(),
                    value: "x y".into()
                },
                Arg {
                    key: "c".into(),
                    value: "q\"uote".into()
                },
                Arg {
                    key: "d".into(),
                    value: "".into()
                },
            ]
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parser() {
        // A cheap deterministic fuzz: every 3-character string over a nasty alphabet.
        let alphabet = ['a', '=', '"', '\\', ' ', 'é', '\0', '\t'];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    let s: String = [a, b, c].iter().collect();
                    let _ = load::<App>(&s, &no_platform);
                }
            }
        }
        let long = "x=".to_string() + &"y".repeat(100_000);
        assert!(matches!(
            load::<App>(&long, &no_platform),
            Err(ArgError::UnknownKey(_))
        ));
    }

    #[test]
    fn help_lists_every_key_with_type_default_and_doc() {
        let mut s = String::new();
        write_help::<App>(&mut s).unwrap();
        assert!(
            s.contains("log=<off|error|warn|info|debug|trace>  (default: info)"),
            "{s}"
        );
        assert!(s.contains("name=<string>  (default: world)"), "{s}");
        assert!(s.contains("      Who to greet."), "{s}");
        assert!(s.contains("      Second line."), "{s}");
        assert!(s.contains("pause=<duration>  (default: 250ms)"), "{s}");
        assert!(s.contains("verbose=<bool>  (default: false)"), "{s}");
    }

    #[test]
    fn effective_config_marks_sources_and_hides_secrets() {
        let l = load::<App>("token=hunter2 count=7", &no_platform).unwrap();
        let mut s = String::new();
        write_effective(&mut s, &l).unwrap();
        assert!(s.contains("fata: config count=7 (boot)"), "{s}");
        assert!(s.contains("fata: config name=world (default)"), "{s}");
        assert!(
            s.contains("fata: config token=(hidden, 7 bytes) (boot)"),
            "{s}"
        );
        assert!(!s.contains("hunter2"));
        assert_eq!(l.app.token.expose(), "hunter2");
    }

    #[test]
    fn duration_round_trips_through_show() {
        for s in ["250ms", "5s", "2m", "1h", "7ns", "1500us"] {
            let d = Duration::parse(s).unwrap();
            assert_eq!(alloc::format!("{}", Shown(&d)), s);
        }
        assert!(Duration::parse("99999999999999999h").is_err());
    }

    crate::config! {
        struct Clashing {
            log: u32 = 1,
        }
    }

    #[test]
    fn app_key_clashing_with_a_runtime_key_is_refused() {
        assert_eq!(
            load::<Clashing>("", &no_platform).err(),
            Some(ArgError::Clash("log"))
        );
    }
}
