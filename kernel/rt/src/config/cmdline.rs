//! The command line: splitting it into `key=value` words and applying them to the key sets
//! (the runtime's, the network's, the application's). Internal to the runtime.

use super::{Config, Key, RuntimeConfig};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{self, Write};

/// One `key=value` word of the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Arg {
    /// The key.
    pub(crate) key: String,
    /// The value, unquoted.
    pub(crate) value: String,
}

/// Why the command line was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ArgError {
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
pub(crate) fn split(cmdline: &str) -> Result<Vec<Arg>, ArgError> {
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
pub(crate) trait KeySet {
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
pub(crate) struct Loaded<C> {
    /// The runtime's keys.
    pub(crate) runtime: RuntimeConfig,
    /// The network keys (images built with networking).
    #[cfg(feature = "net")]
    pub(crate) net: crate::net::NetKeys,
    /// The store's keys (images built with the store).
    #[cfg(feature = "kv")]
    pub(crate) kv: crate::kv::KvKeys,
    /// The TLS keys (images built with TLS).
    #[cfg(feature = "tls")]
    pub(crate) tls: crate::net::tls::TlsKeys,
    /// The ACME keys (images built with ACME).
    #[cfg(feature = "acme")]
    pub(crate) acme: crate::net::acme::AcmeKeys,
    /// The application's keys.
    pub(crate) app: C,
    /// Keys set on the command line (the others are at their defaults).
    pub(crate) set: Vec<String>,
}

impl<C: Config> Loaded<C> {
    /// Every key set, runtime first, application last.
    pub(crate) fn sets(&self) -> Vec<&dyn KeySet> {
        alloc::vec![
            &self.runtime as &dyn KeySet,
            #[cfg(feature = "net")]
            &self.net,
            #[cfg(feature = "kv")]
            &self.kv,
            #[cfg(feature = "tls")]
            &self.tls,
            #[cfg(feature = "acme")]
            &self.acme,
            &self.app,
        ]
    }
}

/// Applies `cmdline` to `sets` in order; returns the keys it set. `platform_arg` tells which
/// keys belong to the platform (and are skipped here).
pub(crate) fn apply(
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

/// The command line with the value of every `Secret` key replaced by `(hidden)`, for logs.
pub(crate) fn redacted_cmdline<C: Config>(cmdline: &str, loaded: &Loaded<C>) -> String {
    let Ok(args) = split(cmdline) else {
        return String::from("(unparsable, not shown)");
    };
    let secret = |key: &str| {
        loaded
            .sets()
            .iter()
            .any(|s| s.keys().iter().any(|k| k.name == key && k.ty == "secret"))
    };
    let words: Vec<String> = args
        .iter()
        .map(|a| {
            if secret(&a.key) {
                alloc::format!("{}=(hidden)", a.key)
            } else if a.value.contains(' ') {
                alloc::format!("{}=\"{}\"", a.key, a.value)
            } else {
                alloc::format!("{}={}", a.key, a.value)
            }
        })
        .collect();
    words.join(" ")
}

/// Applies the command line to the defaults of every key set.
pub(crate) fn load<C: Config>(
    cmdline: &str,
    platform_arg: &dyn Fn(&str) -> bool,
) -> Result<Loaded<C>, ArgError> {
    let mut l = Loaded {
        runtime: RuntimeConfig::defaults(),
        #[cfg(feature = "net")]
        net: crate::net::NetKeys::defaults(),
        #[cfg(feature = "kv")]
        kv: crate::kv::KvKeys::defaults(),
        #[cfg(feature = "tls")]
        tls: crate::net::tls::TlsKeys::defaults(),
        #[cfg(feature = "acme")]
        acme: crate::net::acme::AcmeKeys::defaults(),
        app: C::defaults(),
        set: Vec::new(),
    };
    let mut sets: Vec<&mut dyn KeySet> = alloc::vec![
        &mut l.runtime as &mut dyn KeySet,
        #[cfg(feature = "net")]
        &mut l.net,
        #[cfg(feature = "kv")]
        &mut l.kv,
        #[cfg(feature = "tls")]
        &mut l.tls,
        #[cfg(feature = "acme")]
        &mut l.acme,
        &mut l.app,
    ];
    let set = apply(cmdline, platform_arg, &mut sets)?;
    l.set = set;
    Ok(l)
}
