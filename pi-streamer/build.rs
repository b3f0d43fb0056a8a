// Warns loudly when openh264 will be built without its assembly (nasm missing): encode is
// then about 2.7x slower, which silently changes every latency figure.
fn main() {
    println!("cargo:rerun-if-env-changed=NASM");
    let nasm = std::env::var("NASM").unwrap_or_else(|_| "nasm".into());
    let found = ["/usr/bin/nasm", "/usr/local/bin/nasm"]
        .iter()
        .any(|p| std::path::Path::new(p).exists())
        || std::process::Command::new(&nasm)
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success());
    if !found {
        println!("cargo:warning=nasm not found: openh264 is built without assembly (about 2.7x slower encode); run scripts/setup.sh");
    }
}
