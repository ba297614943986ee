//! End to end in a booted systemd (needs root): twenty instances started with one
//! `left4mectl start` all become active, and `left4mectl list` shows each one's live state from
//! a single `systemctl` call.

mod booted_support;

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use booted_support::*;
use left4me_tests::require_root;

const INSTANCES: u16 = 20;
/// A `systemctl` that logs each call, for counting what `left4mectl list` asks.
const COUNTING_SYSTEMCTL: &str =
    "#!/bin/sh\necho \"$*\" >> /run/left4me-test/calls\nexec /usr/bin/systemctl \"$@\"\n";

#[test]
fn booted_twenty_instances_start_together() -> Result<()> {
    require_root();
    let sys = boot(builder("e2e-twenty"))?;
    let names: Vec<String> = (1..=INSTANCES).map(|i| format!("s{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        let port = (27100 + i).to_string();
        // --no-reload: `start` sees that systemd has not read these specs and reloads once.
        ctl_ok(&sys, &["--no-reload", "create", name, "--port", &port])?;
    }

    let started = Instant::now();
    let mut args = vec!["start"];
    args.extend(names.iter().map(String::as_str));
    let out = ctl_ok(&sys, &args)?;
    let took = started.elapsed();
    report(&format!(
        "left4mectl start of {INSTANCES} instances: all active after {took:.1?}"
    ));
    ensure!(
        out.contains("reloaded systemd (systemctl daemon-reload)"),
        "{out}"
    );
    ensure!(
        out.matches("started s").count() == usize::from(INSTANCES),
        "{out}"
    );
    for name in &names {
        ensure!(state(&sys, name)? == "active/running", "{name}");
        ensure!(merged_mounts(&sys, name)?.len() == 1, "{name}: mounts");
    }

    // list: one systemctl call for all twenty.
    // /run is the system's own tmpfs, out of the host's sight: write it from inside.
    sys.run_ok([
        "sh",
        "-c",
        "mkdir /run/left4me-test && printf '%s' \"$1\" >/run/left4me-test/systemctl && \
         chmod 755 /run/left4me-test/systemctl",
        "sh",
        COUNTING_SYSTEMCTL,
    ])?;
    let listed = Instant::now();
    let list = sys.run_stdout([
        "env",
        "PATH=/run/left4me-test:/usr/sbin:/usr/bin:/sbin:/bin",
        "left4mectl",
        "list",
    ])?;
    eprintln!("left4mectl list took {:.1?}:\n{list}", listed.elapsed());
    let calls = sys.run_stdout(["cat", "/run/left4me-test/calls"])?;
    ensure!(
        calls.lines().count() == 1 && calls.starts_with("show "),
        "list called systemctl {} times:\n{calls}",
        calls.lines().count()
    );
    for name in &names {
        let line = list
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .with_context(|| format!("{name} not listed:\n{list}"))?;
        ensure!(
            line.contains(" ok ")
                && line.contains(" active (running) ")
                && line.contains(" enabled ")
                && line.contains("c1m1_hotel, 0/8 players — Left 4 Dead 2"),
            "{line}"
        );
    }
    let json: serde_json::Value = serde_json::from_str(&ctl_ok(&sys, &["list", "--json"])?)?;
    let rows = json.as_array().context("an array")?;
    ensure!(rows.len() == usize::from(INSTANCES));
    for row in rows {
        ensure!(
            row["active_state"] == "active"
                && row["enabled"] == true
                && row["main_pid"].as_u64().is_some()
                && row["status_text"]
                    .as_str()
                    .is_some_and(|s| s.contains("players")),
            "{row}"
        );
    }

    let stopping = Instant::now();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let result = finish(sys, &names);
    eprintln!(
        "stopped {INSTANCES} instances and tore down in {:.1?}",
        stopping.elapsed()
    );
    result
}
