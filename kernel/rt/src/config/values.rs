//! The types a key can have, how they parse from the command line and how they are shown.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
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

/// Displays a [`Value`] through [`Value::show`] (used by `config!`).
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

/// The console log format (`text` or `json`), the `log_format` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// `[   1.234567] INFO  target: message`.
    Text,
    /// One JSON object per line: `{"time":1.234567,"level":"INFO","target":…,"message":…}`
    /// plus the record's key-value fields.
    Json,
}

impl Value for LogFormat {
    const TYPE: &'static str = "text|json";
    fn parse(s: &str) -> Result<LogFormat, &'static str> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json"),
        }
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
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

/// `ADDR/LEN` with `LEN <= max`, and `ADDR` a unicast address this host can have.
fn parse_net<A: core::str::FromStr + Into<core::net::IpAddr> + Copy>(
    s: &str,
    max: u8,
    why: &'static str,
) -> Result<(A, u8), &'static str> {
    let (a, l) = s.split_once('/').ok_or(why)?;
    let addr: A = a.parse().map_err(|_| why)?;
    let prefix: u8 = l.parse().map_err(|_| why)?;
    if prefix > max {
        return Err(if max == 32 {
            "the prefix length must be 0..=32"
        } else {
            "the prefix length must be 0..=128"
        });
    }
    let unicast = match addr.into() {
        core::net::IpAddr::V4(a) => {
            !(a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback())
        }
        core::net::IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast() || a.is_loopback()),
    };
    if !unicast {
        return Err("the address must be a unicast address of this host");
    }
    Ok((addr, prefix))
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
        let (addr, prefix) = parse_net(
            s,
            32,
            "expected an IPv4 address with a prefix length, like 10.0.0.2/24",
        )?;
        Ok(Ipv4Net { addr, prefix })
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Value for core::net::Ipv6Addr {
    const TYPE: &'static str = "ipv6";
    fn parse(s: &str) -> Result<Self, &'static str> {
        s.parse()
            .map_err(|_| "expected an IPv6 address like fd00::2")
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// An IPv6 address with a prefix length: `fd00::2/64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Net {
    /// The address.
    pub addr: core::net::Ipv6Addr,
    /// The prefix length (0..=128).
    pub prefix: u8,
}

impl Value for Ipv6Net {
    const TYPE: &'static str = "ipv6/len";
    fn parse(s: &str) -> Result<Self, &'static str> {
        let (addr, prefix) = parse_net(
            s,
            128,
            "expected an IPv6 address with a prefix length, like fd00::2/64",
        )?;
        Ok(Ipv6Net { addr, prefix })
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A comma-separated list of IPv4 and IPv6 addresses (may be empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpList(pub Vec<core::net::IpAddr>);

impl Value for IpList {
    const TYPE: &'static str = "ip,...";
    fn parse(s: &str) -> Result<Self, &'static str> {
        s.split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(|w| {
                w.parse()
                    .map_err(|_| "expected IPv4 or IPv6 addresses separated by commas")
            })
            .collect::<Result<Vec<_>, _>>()
            .map(IpList)
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
