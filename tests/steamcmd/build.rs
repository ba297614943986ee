//! Builds `linux32/steamcmd`, the stand-in's i386 client, from `src/steamcmd.c` with
//! `gcc -m32` (Debian: gcc-multilib), dynamically linked like Valve's.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "src/steamcmd.c";
    println!("cargo::rerun-if-changed={source}");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("steamcmd");
    let status = Command::new("gcc")
        .args(["-m32", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(source)
        .status()
        .expect("running gcc (install gcc-multilib: apt-get install gcc-multilib)");
    assert!(
        status.success(),
        "gcc -m32 failed to build {source}: is gcc-multilib installed (apt-get install gcc-multilib)?"
    );
}
