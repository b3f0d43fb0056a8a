// Shared by the crates' build scripts (`include!`d): runs scripts/setup.sh with `args` to
// install a missing system package, under the lock openh264's nasm shim (scripts/nasm) and the
// other build scripts take, since several may be installing at the same moment. False if it
// could not (no root, no network): the caller then says what is missing.
fn run_setup(manifest: &std::path::Path, args: &[&str]) -> bool {
    use std::process::Command;
    let setup = manifest.join("../scripts/setup.sh");
    let lock = std::env::temp_dir().join("binoc-setup.lock");
    Command::new("flock")
        .arg(&lock)
        .arg("sh")
        .arg(&setup)
        .args(args)
        .status()
        .or_else(|_| Command::new("sh").arg(&setup).args(args).status())
        .is_ok_and(|s| s.success())
}
