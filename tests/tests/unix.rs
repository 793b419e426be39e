//! The `unix` platform: the same applications as Linux processes, same behaviour.
#![forbid(unsafe_code)]

#[path = "common_apps.rs"]
mod common_apps;

mod apps {
    crate::app_tests!(fata_tests::Target::Unix);
}

use fata_tests::{Exit, Target, expect, run};

#[test]
fn arguments_arrive_as_the_boot_command_line() {
    let out = run(
        Target::Unix,
        "hello",
        &["name=a \"quoted\" name", "count=1"],
    );
    expect(
        &out,
        Exit::Code(0),
        &["fata 0.1.0 on unix", "Hello, a \"quoted\" name! (1/1)"],
    );
}
