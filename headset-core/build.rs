// With the `libavcodec` feature: compiles the C shim over the system's libavcodec (Debian
// `libavcodec-dev`, installed by `scripts/setup.sh --libav` when missing) and links it.
use std::path::{Path, PathBuf};

include!("../scripts/build-setup.rs");

fn main() {
    println!("cargo:rerun-if-changed=csrc/avdec_shim.c");
    println!("cargo:rerun-if-changed=../scripts/build-setup.rs");
    if std::env::var_os("CARGO_FEATURE_LIBAVCODEC").is_none()
        || std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("android")
    {
        return;
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let target = std::env::var("TARGET").unwrap();
    let host = std::env::var("HOST").unwrap();
    let header = |dir: &str| Path::new(dir).join("libavcodec/avcodec.h").exists();
    let multiarch = match target.as_str() {
        t if t.starts_with("aarch64-unknown-linux") => "/usr/include/aarch64-linux-gnu",
        _ => "/usr/include/x86_64-linux-gnu",
    };
    let have = || header("/usr/include") || header(multiarch);
    if !have() && target == host && !run_setup(&manifest, &["--libav"]) {
        println!("cargo:warning=scripts/setup.sh --libav could not install libavcodec-dev");
    }
    if !have() {
        println!(
            "cargo:warning=libavcodec not found (Debian: apt-get install libavcodec-dev); build without the libavcodec feature to leave it out"
        );
    }
    let mut build = cc::Build::new();
    build
        .file(manifest.join("csrc/avdec_shim.c"))
        .warnings(true);
    if Path::new(multiarch).exists() {
        build.include(multiarch);
    }
    build.compile("binoc_avdec_shim");
    println!("cargo:rustc-link-lib=avcodec");
    println!("cargo:rustc-link-lib=avutil");
}
