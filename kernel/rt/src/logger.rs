//! The `log` facade on the console, in one of two formats chosen by the `log_format=` boot
//! key: text, `[   1.234567] INFO  target: message`, or JSON, one object per line,
//! `{"time":1.234567,"level":"INFO","target":"…","message":"…"}`, plus — in images built with
//! fata's `log-fields` feature — the record's key-value fields
//! (`log::info!(port = 80; "listening")` adds `"port":80`). The fields are a feature because
//! rendering the `log` crate's values links float formatting into the image: 16 KB, four
//! times what the JSON format itself costs. Times are the guest's monotonic clock in seconds.
//! The level comes from `log=`.
//!
//! The runtime's own status lines (`fata: config …`, `fata: entropy: …`, `fata: ready tcp/80`,
//! `fata: exit 0`, panics) go through [`status`], so in JSON mode they are JSON objects too
//! (target `fata`, the text unchanged as the message, so tools that wait for
//! `fata: ready tcp/80` still find it). What comes before the configuration is read (the
//! platform's first line and the banner) and a CPU exception's crash report stay text.
//!
//! Every line is formatted into the console's stack buffer (no heap: logging works when the
//! heap is exhausted); the runtime is single-threaded, so lines are never interleaved, and
//! JSON strings escape newlines, so a record never spans two lines.

use crate::config::LogFormat;
use crate::console::Console;
use crate::time::Instant;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

struct Logger;

static LOGGER: Logger = Logger;

/// Whether lines are JSON (`log_format=json`).
static JSON: AtomicBool = AtomicBool::new(false);

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let mut c = Console::new();
        let ns = Instant::now().as_nanos();
        let _ = if JSON.load(Ordering::Relaxed) {
            write_json(
                &mut c,
                ns,
                r.level().as_str(),
                r.target(),
                r.args(),
                r.key_values(),
            )
        } else {
            writeln!(
                c,
                "[{:5}.{:06}] {:<5} {}: {}",
                ns / 1_000_000_000,
                ns / 1_000 % 1_000_000,
                r.level(),
                r.target(),
                r.args()
            )
        };
    }

    fn flush(&self) {}
}

/// Installs the console logger at `level` in `format` (once; later calls only change them).
pub(crate) fn init(level: log::LevelFilter, format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Prints one of the runtime's status lines (`fata: …`): as it is in text mode, as a JSON
/// object with target `fata` in JSON mode. Formatting into the console's buffer needs no
/// heap, so this works in a panic with the heap exhausted.
pub(crate) fn status(line: fmt::Arguments<'_>) {
    let mut c = Console::new();
    let _ = if JSON.load(Ordering::Relaxed) {
        write_json(
            &mut c,
            Instant::now().as_nanos(),
            "INFO",
            "fata",
            &line,
            &NoFields,
        )
    } else {
        writeln!(c, "{line}")
    };
}

/// [`status`] for each line of `text`.
pub(crate) fn status_lines(text: &str) {
    for line in text.lines() {
        status(format_args!("{line}"));
    }
}

struct NoFields;

impl log::kv::Source for NoFields {
    fn visit<'kvs>(
        &'kvs self,
        _: &mut dyn log::kv::VisitSource<'kvs>,
    ) -> Result<(), log::kv::Error> {
        Ok(())
    }
}

/// Writes one JSON log object and a newline.
fn write_json(
    out: &mut dyn Write,
    ns: u64,
    level: &str,
    target: &str,
    message: &dyn fmt::Display,
    fields: &dyn log::kv::Source,
) -> fmt::Result {
    write!(
        out,
        "{{\"time\":{}.{:06},\"level\":\"{level}\",\"target\":\"",
        ns / 1_000_000_000,
        ns / 1_000 % 1_000_000
    )?;
    write!(Escape(out), "{target}")?;
    out.write_str("\",\"message\":\"")?;
    write!(Escape(out), "{message}")?;
    out.write_char('"')?;
    #[cfg(feature = "log-fields")]
    {
        let mut v = Fields { out, failed: false };
        let _ = fields.visit(&mut v);
        if v.failed {
            return Err(fmt::Error);
        }
    }
    #[cfg(not(feature = "log-fields"))]
    let _ = fields;
    out.write_str("}\n")
}

/// Writes what it is given as the inside of a JSON string.
struct Escape<'a>(&'a mut dyn Write);

impl Write for Escape<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '"' => self.0.write_str("\\\"")?,
                '\\' => self.0.write_str("\\\\")?,
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c if (c as u32) < 0x20 => write!(self.0, "\\u{:04x}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(feature = "log-fields")]
/// Writes a record's key-value fields as JSON members: numbers and booleans as such,
/// everything else as a string. A key that would hide one of the line's own members gets a
/// `field_` prefix.
struct Fields<'a> {
    out: &'a mut dyn Write,
    failed: bool,
}

#[cfg(feature = "log-fields")]
impl<'kvs> log::kv::VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let r = (|| {
            let k = key.as_str();
            let prefix = if matches!(k, "time" | "level" | "target" | "message") {
                "field_"
            } else {
                ""
            };
            self.out.write_str(",\"")?;
            write!(Escape(self.out), "{prefix}{k}")?;
            self.out.write_str("\":")?;
            if let Some(n) = value.to_u64() {
                write!(self.out, "{n}")
            } else if let Some(n) = value.to_i64() {
                write!(self.out, "{n}")
            } else if let Some(b) = value.to_bool() {
                write!(self.out, "{b}")
            } else if let Some(x) = value.to_f64().filter(|x| x.is_finite()) {
                write!(self.out, "{x}")
            } else {
                self.out.write_char('"')?;
                write!(Escape(self.out), "{value}")?;
                self.out.write_char('"')
            }
        })();
        if r.is_err() {
            self.failed = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn line(msg: &str, fields: &dyn log::kv::Source) -> String {
        let mut s = String::new();
        write_json(
            &mut s,
            1_234_567_891,
            "WARN",
            "app::x",
            &format_args!("{msg}"),
            fields,
        )
        .unwrap();
        s
    }

    #[test]
    fn json_lines_escape_everything_and_stay_one_line() {
        let l = line("a \"quoted\"\nsecond\tline \\ \u{1}", &NoFields);
        assert_eq!(
            l,
            "{\"time\":1.234567,\"level\":\"WARN\",\"target\":\"app::x\",\
             \"message\":\"a \\\"quoted\\\"\\nsecond\\tline \\\\ \\u0001\"}\n"
        );
        assert_eq!(l.matches('\n').count(), 1);
    }

    #[cfg(feature = "log-fields")]
    #[test]
    fn key_value_fields_become_members_typed_where_they_can_be() {
        let fields: [(&str, log::kv::Value<'_>); 5] = [
            ("port", log::kv::Value::from(443u16)),
            ("delta", log::kv::Value::from(-3i32)),
            ("ok", log::kv::Value::from(true)),
            ("peer", log::kv::Value::from("10.0.0.1:5\"")),
            ("message", log::kv::Value::from("clash")),
        ];
        let l = line("m", &fields);
        assert!(
            l.ends_with(
                ",\"port\":443,\"delta\":-3,\"ok\":true,\"peer\":\"10.0.0.1:5\\\"\",\
                 \"field_message\":\"clash\"}\n"
            ),
            "{l}"
        );
    }
}
