// 1. Warns loudly when openh264 will be built without its assembly (nasm missing): encode is
//    then about 2.7x slower, which silently changes every latency figure.
// 2. With the `x264` feature: compiles the C shim over the system's libx264 (Debian
//    `libx264-dev`, installed by scripts/setup.sh when missing).
use std::path::{Path, PathBuf};
use std::process::Command;

include!("../scripts/build-setup.rs");

fn main() {
    println!("cargo:rerun-if-env-changed=NASM");
    println!("cargo:rerun-if-changed=csrc/x264_shim.c");
    println!("cargo:rerun-if-changed=../scripts/build-setup.rs");
    let nasm = std::env::var("NASM").unwrap_or_else(|_| "nasm".into());
    let found = ["/usr/bin/nasm", "/usr/local/bin/nasm"]
        .iter()
        .any(|p| Path::new(p).exists())
        || Command::new(&nasm)
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success());
    if !found {
        println!("cargo:warning=nasm not found: openh264 is built without assembly (about 2.7x slower encode); run scripts/setup.sh");
    }
    // The V4L2 layout probe (checked against src/v4l2.rs by a unit test).
    println!("cargo:rerun-if-changed=csrc/v4l2_layout.c");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        cc::Build::new()
            .file("csrc/v4l2_layout.c")
            .compile("binoc_v4l2_layout");
    }
    if std::env::var_os("CARGO_FEATURE_X264").is_some() {
        build_x264_shim();
    }
}

fn build_x264_shim() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let target = std::env::var("TARGET").unwrap();
    let host = std::env::var("HOST").unwrap();
    // Debian multiarch: headers in /usr/include (arch-independent except x264_config.h, which
    // is identical across architectures), libraries in /usr/lib/<triplet>.
    let multiarch = match target.as_str() {
        t if t.starts_with("aarch64-unknown-linux") => Some("aarch64-linux-gnu"),
        t if t.starts_with("x86_64-unknown-linux") => Some("x86_64-linux-gnu"),
        _ => None,
    };
    let lib_dir = multiarch.map(|m| PathBuf::from(format!("/usr/lib/{m}")));
    let have = |lib_dir: &Option<PathBuf>| {
        Path::new("/usr/include/x264.h").exists()
            && lib_dir
                .as_ref()
                .is_none_or(|d| d.join("libx264.so").exists())
    };
    if !have(&lib_dir) && target == host && !run_setup(&manifest, &[]) {
        println!("cargo:warning=scripts/setup.sh could not install libx264-dev");
    }
    if !have(&lib_dir) {
        println!(
            "cargo:warning=libx264 not found (Debian: apt-get install libx264-dev{}); build with --no-default-features to leave x264 out",
            if target == host { "" } else { ":arm64" }
        );
    }
    cc::Build::new()
        .file(manifest.join("csrc/x264_shim.c"))
        .warnings(true)
        .compile("binoc_x264_shim");
    if let Some(dir) = lib_dir {
        if target != host {
            println!("cargo:rustc-link-search=native={}", dir.display());
        }
    }
    println!("cargo:rustc-link-lib=x264");
}
