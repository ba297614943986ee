//! What the booted game scenarios share: the stand-in Steam inside the system's network
//! namespace, the stand-in SteamCMD kit as host.toml's `steamcmd`, and reading the version
//! store (`current`, version dirs, a version's files) and instances' versions from outside.

#![allow(dead_code)] // each scenario file uses a different part

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use left4me_steamcmd_standin::{Depot, SteamServer, serve};
use left4me_tests::{BootedSystem, STATE_DIR};
use serde_json::Value;

use crate::booted_support::ctl_ok;

/// The stand-in Steam's address: a documentation address (not denied to builds), port 80 (one
/// SteamCMD may connect to).
pub const STEAM_HOST: &str = "192.0.2.10";
pub const STEAM_URL: &str = "http://192.0.2.10:80";
/// Where the stand-in SteamCMD kit lies inside the system.
pub const KIT: &str = "/opt/steamcmd-standin";

/// The stand-in Steam, serving a depot inside the system's network namespace. It is stopped
/// from inside too: its stop wakes its accept with a connect, which must not leave the system.
pub struct Steam<'a> {
    sys: &'a BootedSystem,
    server: Option<SteamServer>,
}

impl<'a> Steam<'a> {
    pub fn start(sys: &'a BootedSystem, depot: &Path) -> Result<Self> {
        let listener = sys.in_netns(|| TcpListener::bind((STEAM_HOST, 80)))??;
        Ok(Steam {
            sys,
            server: Some(serve(Depot::open(depot), listener)?),
        })
    }
}

impl Drop for Steam<'_> {
    fn drop(&mut self) {
        let server = self.server.take();
        let _ = self.sys.in_netns(move || drop(server));
    }
}

/// Every file of version `id`: path, mode, owner and content hash, one line each.
pub fn fingerprint(sys: &BootedSystem, id: &str) -> Result<String> {
    let tree = format!("{STATE_DIR}/game/versions/{id}/tree");
    let script = format!(
        "cd {tree} && find . -printf '%p %m %U:%G %s %T@ %y\\n' | sort && \
         find . -type f -print0 | sort -z | xargs -0 sha256sum"
    );
    Ok(sys.run_stdout(["sh", "-c", &script])?)
}

pub fn json(out: &str) -> Result<Value> {
    serde_json::from_str(out).with_context(|| format!("not JSON: {out}"))
}

/// The version instance `name` runs, from `status --json`.
pub fn running_version(sys: &BootedSystem, name: &str) -> Result<Option<String>> {
    let status = json(&ctl_ok(sys, &["status", name, "--json"])?)?;
    Ok(status["game_version"].as_str().map(str::to_owned))
}

/// `game/current`, as the file says.
pub fn current(sys: &BootedSystem) -> Result<String> {
    Ok(
        std::fs::read_to_string(sys.host_path(format!("{STATE_DIR}/game/current")))?
            .trim()
            .to_owned(),
    )
}

/// The version directories, staging ones included.
pub fn version_dirs(sys: &BootedSystem) -> Result<Vec<String>> {
    let mut names: Vec<String> =
        std::fs::read_dir(sys.host_path(format!("{STATE_DIR}/game/versions")))?
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_>>()?;
    names.sort();
    Ok(names)
}

/// `game versions --json`, the row of `id`.
pub fn version_row(sys: &BootedSystem, id: &str) -> Result<Value> {
    let rows = json(&ctl_ok(sys, &["game", "versions", "--json"])?)?;
    rows.as_array()
        .context("versions --json is an array")?
        .iter()
        .find(|r| r["id"] == id)
        .cloned()
        .with_context(|| format!("no version {id} in {rows}"))
}

pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let until = Instant::now() + timeout;
    while !done()? {
        if Instant::now() > until {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// `left4mectl ARGS…` inside, in the background.
pub fn spawn_ctl(sys: &BootedSystem, args: &[&str]) -> Result<Child> {
    let mut argv = vec!["left4mectl"];
    argv.extend_from_slice(args);
    Ok(sys
        .command(argv)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?)
}
