//! What the runtime prints about the configuration: the help text and the effective values.

use super::cmdline::Loaded;
use super::{Config, RuntimeConfig};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

/// Writes the help text: every key with type, default and doc.
pub(crate) fn write_help<C: Config>(out: &mut dyn Write) -> fmt::Result {
    writeln!(
        out,
        "fata: boot arguments are key=value words (quote values with spaces: key=\"a b\"):"
    )?;
    let defaults = Loaded::<C> {
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
pub(crate) fn write_effective<C: Config>(out: &mut dyn Write, loaded: &Loaded<C>) -> fmt::Result {
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
