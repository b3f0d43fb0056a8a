//! The quest-client binary's command line, run as users run it (under qemu in the aarch64
//! cross test). This test is also what makes `cargo test -p quest-client` build the binary that
//! pi-streamer's end-to-end tests run as the headset (BINOC_QUEST_CLIENT, scripts/test.sh).

#[path = "../../pi-streamer/tests/common/mod.rs"]
mod common;

use common::command;

const BIN: &str = env!("CARGO_BIN_EXE_quest-client");

/// Options that would be silently ignored are usage errors (exit 2), named in one line.
#[test]
fn impossible_option_combinations_are_refused_at_parse_time() {
    for args in [
        vec!["--headless", "--dump", "/tmp/x"],
        vec!["--screenshot", "/tmp/x.png"],
        vec!["--headless", "--pair", "--unpaired"],
        vec!["--headless", "--metrics", "127.0.0.1:0", "--desktop"],
        vec!["--headless", "--listen", "not-an-address"],
        vec!["--headless", "--frames", "many"],
    ] {
        let out = command(BIN).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("error:") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

/// `--help` names the modes this build has (the headless-only build says so).
#[test]
fn help_names_the_modes_of_this_build() {
    let out = command(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--headless"), "{help}");
    assert!(help.contains("Modes in this build"), "{help}");
}
