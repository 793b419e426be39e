//! The behaviour every platform must show, written once and instantiated per target by
//! `virtio.rs` and `unix.rs`.
#![forbid(unsafe_code)]

#[macro_export]
macro_rules! app_tests {
    ($target:expr) => {
        use fata_tests::{Exit, expect, run};

        #[test]
        fn hello_greets_from_its_config_default_and_exits_0() {
            let out = run($target, "hello", &["interval=1ms"]);
            expect(
                &out,
                Exit::Code(0),
                &[
                    "fata: config name=world (default)",
                    "Hello, world! (1/3)",
                    "Hello, world! (3/3)",
                    "fata: exit 0",
                ],
            );
        }

        #[test]
        fn boot_arguments_override_config_keys_and_are_printed() {
            let out = run(
                $target,
                "hello",
                &["name=big fata", "count=2", "interval=1ms", "log=debug"],
            );
            expect(
                &out,
                Exit::Code(0),
                &[
                    "fata: config log=debug (boot)",
                    "fata: config name=\"big fata\" (boot)",
                    "fata: config count=2 (boot)",
                    "Hello, big fata! (1/2)",
                    "Hello, big fata! (2/2)",
                    "INFO  hello: said hello 2 times",
                ],
            );
            assert!(!out.has_line("(3/"), "count=2 was ignored");
        }

        #[test]
        fn unknown_key_stops_the_boot_with_exit_64_and_the_key_list() {
            let out = run($target, "hello", &["nmae=x"]);
            expect(
                &out,
                Exit::Code(64),
                &[
                    "boot argument error: unknown key `nmae`",
                    "name=<string>  (default: world)",
                    "Who to greet.",
                ],
            );
            assert!(!out.has_line("Hello"), "the app ran despite a bad key");
        }

        #[test]
        fn malformed_value_names_the_key_and_type() {
            let out = run($target, "hello", &["count=many"]);
            expect(
                &out,
                Exit::Code(64),
                &["bad value `many` for key `count` (u32)", "count=<u32>"],
            );
        }

        #[test]
        fn help_lists_the_keys_and_exits_non_zero() {
            let out = run($target, "hello", &["help"]);
            expect(
                &out,
                Exit::Code(64),
                &[
                    "log=<off|error|warn|info|debug|trace>",
                    "interval=<duration>  (default: 100ms)",
                ],
            );
        }

        #[test]
        fn panic_prints_message_and_location_and_exits_2() {
            let out = run($target, "crash", &["what=panic"]);
            expect(
                &out,
                Exit::Code(2),
                &[
                    "fata: panic at examples/crash/src/main.rs:",
                    "deliberate panic for the test suite",
                    "fata: exit 2",
                ],
            );
        }

        #[test]
        fn main_returning_an_error_prints_it_and_exits_1() {
            let out = run($target, "crash", &["what=error"]);
            expect(
                &out,
                Exit::Code(1),
                &[
                    "fata: main returned an error: the application gave up",
                    "fata: exit 1",
                ],
            );
        }

        #[test]
        fn timers_fire_in_deadline_order_and_never_early_by_the_guest_clock() {
            let out = run($target, "timers", &["tasks=40"]);
            expect(
                &out,
                Exit::Code(0),
                &["timers ok: 40 tasks woke in order, none early"],
            );
        }
    };
}
