//! The kit: what Valve's `steamcmd_linux.tar.gz` unpacks to, with the stand-in client.
//!
//! ```text
//! steamcmd.sh              the wrapper (kit/steamcmd.sh)
//! linux32/steamcmd         the i386 client (src/steamcmd.c, built by build.rs)
//! linux32/steamclient.so   placeholders: the game server's ~/.steam/sdk32 and sdk64 point here
//! linux64/steamclient.so
//! steam_standin.cfg        "server=URL" and optionally "throttle=BYTES_PER_SECOND"
//! ```

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The wrapper script.
pub const STEAMCMD_SH: &str = include_str!("../kit/steamcmd.sh");

/// The i386 client.
pub const STEAMCMD_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/steamcmd"));

/// Where the client finds the fake Steam, beside steamcmd.sh.
pub const CFG_NAME: &str = "steam_standin.cfg";

fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("kit-tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path)
}

/// The text of `steam_standin.cfg`.
pub fn cfg_text(server: &str, throttle: Option<u64>) -> String {
    let mut text = format!("server={server}\n");
    if let Some(bytes_per_second) = throttle {
        text.push_str(&format!("throttle={bytes_per_second}\n"));
    }
    text
}

/// Installs the kit into `dir` (created if missing), talking to the fake Steam at `server`
/// (`http://HOST:PORT`), downloads throttled to `throttle` bytes/s when given.
pub fn install_kit(dir: &Path, server: &str, throttle: Option<u64>) -> io::Result<()> {
    write(&dir.join("linux32/steamcmd"), STEAMCMD_ELF, 0o755)?;
    for arch in ["linux32", "linux64"] {
        let text = format!("left4me SteamCMD stand-in: placeholder {arch}/steamclient.so\n");
        write(
            &dir.join(arch).join("steamclient.so"),
            text.as_bytes(),
            0o644,
        )?;
    }
    write(
        &dir.join(CFG_NAME),
        cfg_text(server, throttle).as_bytes(),
        0o644,
    )?;
    write(&dir.join("steamcmd.sh"), STEAMCMD_SH.as_bytes(), 0o755)
}

/// Writes `dest` (e.g. `.../steamcmd_linux.tar.gz`): the kit as a gzipped tarball with the
/// layout of Valve's (files at the top level, no leading directory).
pub fn kit_tarball(dest: &Path, server: &str, throttle: Option<u64>) -> io::Result<()> {
    let staging = dest.with_extension("kit-staging");
    let _ = std::fs::remove_dir_all(&staging);
    install_kit(&staging, server, throttle)?;
    let status = Command::new("tar")
        .arg("-czf")
        .arg(dest)
        .arg("-C")
        .arg(&staging)
        .args([
            "--owner=0",
            "--group=0",
            "steamcmd.sh",
            "linux32",
            "linux64",
            CFG_NAME,
        ])
        .status();
    let _ = std::fs::remove_dir_all(&staging);
    match status? {
        s if s.success() => Ok(()),
        s => Err(io::Error::other(format!(
            "tar -czf {} failed ({s}); is tar installed?",
            dest.display()
        ))),
    }
}
