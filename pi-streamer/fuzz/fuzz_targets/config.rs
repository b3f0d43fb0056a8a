//! The configuration: any text as a config or camera-profiles file (YAML through binoc's own
//! checker). It must load or give problems with key and line, never panic, and a file that
//! loads must print (`check-config`) without panicking either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pi_streamer::config::ConfigFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match ConfigFile::from_yaml(text, "fuzz.yaml") {
        Ok(file) => {
            if let Ok(cfg) = file.select(None, "fuzz.yaml") {
                let _ = cfg.to_yaml_redacted();
                let _ = cfg.unsupported_here();
            }
        }
        Err(e) => assert!(!e.problems.is_empty()),
    }
});
