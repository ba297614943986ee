//! What the booted game scenarios share (the stand-in Steam itself is
//! `left4me_tests::steam::FakeSteam`): reading the version store (`current`, version dirs, a
//! version's files and rows) and instances' versions from outside, waiting, and `left4mectl`
//! in the background.

#![allow(dead_code)] // each scenario file uses a different part

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use left4me_tests::{BootedSystem, STATE_DIR};
use serde_json::Value;

use crate::booted_support::ctl_ok;

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
