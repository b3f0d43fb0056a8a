//! What several test binaries need: running this build's binaries (also under emulation) and
//! reading a process's memory.
// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::process::Command;

/// When these tests run under user-mode emulation (the aarch64 cross test), the kernel cannot
/// start aarch64 binaries by itself (no binfmt), so children go through the same runner.
pub fn emulator() -> Option<String> {
    let runner = std::env::var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER").ok()?;
    (cfg!(target_arch = "aarch64") && !runner.is_empty()).then_some(runner)
}

/// A command running one of this build's binaries.
pub fn command(bin: impl AsRef<std::ffi::OsStr>) -> Command {
    match emulator() {
        Some(runner) => {
            let mut c = Command::new(runner);
            c.arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// VmRSS of process `pid`, in KiB (Linux; 0 if unreadable).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
