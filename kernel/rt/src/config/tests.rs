//! Tests of the whole configuration path: values, command line, reports.

use super::cmdline::*;
use super::values::*;
use super::*;
use alloc::string::{String, ToString};
use alloc::vec;
use core::time::Duration;

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

#[test]
fn ip_values_parse_both_families_and_refuse_non_unicast() {
    let n = Ipv6Net::parse("fd00::2/64").unwrap();
    assert_eq!(alloc::format!("{}", Shown(&n)), "fd00::2/64");
    assert!(Ipv6Net::parse("fd00::2/129").is_err());
    assert!(Ipv6Net::parse("ff02::1/64").is_err());
    assert!(Ipv6Net::parse("fd00::2").is_err());
    assert!(Ipv4Net::parse("224.0.0.1/4").is_err());
    assert!(Ipv4Net::parse("10.0.0.2/24").is_ok());
    let l = IpList::parse("1.1.1.1, 2606:4700::1111").unwrap();
    assert_eq!(l.0.len(), 2);
    assert_eq!(alloc::format!("{}", Shown(&l)), "1.1.1.1,2606:4700::1111");
    assert!(IpList::parse("1.1.1.1,nope").is_err());
    assert_eq!(IpList::parse("").unwrap(), IpList::default());
}

#[test]
fn the_logged_command_line_hides_secret_values() {
    let line = "name=\"big world\" token=hunter2 count=4";
    let l = load::<App>(line, &no_platform).unwrap();
    let shown = redacted_cmdline(line, &l);
    assert_eq!(shown, "name=\"big world\" token=(hidden) count=4");
    assert!(!shown.contains("hunter2"));
}
