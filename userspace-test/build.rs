//! Compiles and runs `abi_probe.c` against `include/carveout.h`, so the Rust mirror of the ABI
//! (`src/abi.rs`) is checked at compile time against the C header, the one source of truth.

use std::{env, fs, path::PathBuf, process::Command};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let include = manifest.join("../include");
    let probe_src = manifest.join("abi_probe.c");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let probe = out.join("abi_probe");
    println!("cargo:rerun-if-changed={}", probe_src.display());
    println!(
        "cargo:rerun-if-changed={}",
        include.join("carveout.h").display()
    );

    let cc = env::var("HOST_CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .arg("-I")
        .arg(&include)
        .arg("-o")
        .arg(&probe)
        .arg(&probe_src)
        .status()
        .unwrap_or_else(|err| panic!("running {cc} for the ABI probe: {err}"));
    assert!(status.success(), "{cc} could not compile abi_probe.c");
    let output = Command::new(&probe)
        .output()
        .expect("running the ABI probe");
    assert!(output.status.success(), "the ABI probe failed");
    fs::write(out.join("abi_c.rs"), output.stdout).expect("writing abi_c.rs");
}
