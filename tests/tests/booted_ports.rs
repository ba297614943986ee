//! End to end in a booted systemd (needs root): every port a real srcds binds (UDP game, client
//! and SourceTV ports, TCP RCON on the game port) is unique per instance and allowed exactly by
//! the drop-in's `SocketBindAllow=` lines.
//!
//! - Twenty instances on the host's systemd (252): all ports distinct, as `left4mectl list
//!   --json` and `ss -lun`/`ss -ltn` inside the booted system show.
//! - On Debian 13's systemd 257 (built with the BPF framework, laid over the host's root by
//!   `boot/newer-systemd.sh`), `SocketBindAllow=` is enforced: with the generated allow-list
//!   the instance starts and binds every port; with one port left out the stand-in's bind is
//!   refused (`EPERM`) and it fails as the real engine fails.

mod booted_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use booted_support::*;
use left4me_tests::{BootedSystem, require_root, target_dir, workspace_dir};

const INSTANCES: u16 = 20;
const FIRST_PORT: u16 = 27015;

/// The sockets of `srcds_run` processes inside, from `ss -H -l{u,t}np`: (protocol, port).
fn srcds_sockets(sys: &BootedSystem) -> Result<BTreeSet<(&'static str, u16)>> {
    let mut sockets = BTreeSet::new();
    for (protocol, flags) in [("udp", "-Hlunp"), ("tcp", "-Hltnp")] {
        let out = sys.run_stdout(["ss", flags])?;
        for line in out.lines().filter(|l| l.contains("\"srcds_run\"")) {
            let local = line
                .split_whitespace()
                .nth(3)
                .with_context(|| format!("no local address in {line:?}"))?;
            let port = local
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .with_context(|| format!("no port in {local:?}"))?;
            ensure!(
                sockets.insert((protocol, port)),
                "{protocol} {port} bound twice:\n{out}"
            );
        }
    }
    Ok(sockets)
}

/// What an instance binds, from a `list --json` row.
fn expected_sockets(row: &serde_json::Value) -> Result<Vec<(&'static str, u16)>> {
    let port = |key: &str| -> Result<Option<u16>> {
        Ok(match &row[key] {
            serde_json::Value::Null => None,
            value => Some(
                value
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .with_context(|| format!("{key} in {row}"))?,
            ),
        })
    };
    let game = port("port")?.context("a port")?;
    let client = port("client_port")?.context("a client port")?;
    let mut sockets = vec![("udp", game), ("tcp", game), ("udp", client)];
    sockets.extend(port("tv_port")?.map(|tv| ("udp", tv)));
    Ok(sockets)
}

#[test]
fn booted_twenty_instances_bind_distinct_ports() -> Result<()> {
    require_root();
    twenty_instances(boot(builder("ports-twenty"))?)
}

#[test]
fn booted_twenty_instances_under_an_enforcing_systemd() -> Result<()> {
    require_root();
    twenty_instances(boot(newer_systemd(builder("ports-twenty-257"))?)?)
}

/// Twenty instances, every other one with SourceTV, all started: every port they bind is
/// distinct, and `ss` inside shows exactly the sockets `list --json` says.
fn twenty_instances(sys: BootedSystem) -> Result<()> {
    let version = sys.run_stdout(["systemctl", "--version"])?;
    report(&format!(
        "{}: {}",
        sys.name(),
        version.lines().next().unwrap_or_default()
    ));
    let names: Vec<String> = (1..=INSTANCES).map(|i| format!("p{i:02}")).collect();
    for (i, name) in (0u16..).zip(&names) {
        // Every other instance with SourceTV; all ports derived from the game port.
        let sourcetv = if i % 2 == 0 { "sourcetv = true\n" } else { "" };
        write(
            &sys,
            &format!("/etc/left4me/instances/{name}.toml"),
            &format!("port = {}\n{sourcetv}", FIRST_PORT + i),
        )?;
    }
    let started = Instant::now();
    let mut args = vec!["start"];
    args.extend(names.iter().map(String::as_str));
    ctl_ok(&sys, &args)?;
    report(&format!(
        "{INSTANCES} instances active after {:.1?}",
        started.elapsed()
    ));

    let json: serde_json::Value = serde_json::from_str(&ctl_ok(&sys, &["list", "--json"])?)?;
    let rows = json.as_array().context("an array")?;
    ensure!(rows.len() == usize::from(INSTANCES), "{json}");
    let mut expected = BTreeSet::new();
    let mut numbers = BTreeMap::new();
    for row in rows {
        ensure!(
            row["ok"] == true && row["active_state"] == "active",
            "{row}"
        );
        let name = row["name"].as_str().context("a name")?.to_owned();
        for socket in expected_sockets(row)? {
            ensure!(expected.insert(socket), "{socket:?} listed twice");
            // One port number belongs to one instance, whatever the protocol.
            if let Some(owner) = numbers.insert(socket.1, name.clone()) {
                ensure!(owner == name, "port {} of {owner} and {name}", socket.1);
            }
        }
    }
    // 20 game ports (UDP and TCP), 20 client ports, 10 SourceTV ports.
    ensure!(expected.len() == 70, "{expected:?}");
    ensure!(numbers.len() == 50, "{numbers:?}");

    let bound = srcds_sockets(&sys)?;
    ensure!(
        bound == expected,
        "ss shows other sockets than list --json:\nonly in ss: {:?}\nonly in list: {:?}",
        bound.difference(&expected).collect::<Vec<_>>(),
        expected.difference(&bound).collect::<Vec<_>>()
    );
    report(&format!(
        "{} sockets of {INSTANCES} srcds, {} port numbers, all distinct; ss = list --json",
        bound.len(),
        numbers.len()
    ));

    // The unit allows exactly those binds.
    let allow = prop(&sys, "p01", "SocketBindAllow")?;
    report(&format!("p01 SocketBindAllow={}", allow.replace('\n', " ")));
    for port in ["27015", "27115", "27215"] {
        ensure!(allow.contains(port), "{port} not allowed: {allow}");
    }

    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    finish(sys, &names)
}

/// Debian 13's systemd unpacked under the target dir (made once by `boot/newer-systemd.sh`,
/// which downloads it from deb.debian.org).
fn newer_systemd_layer() -> Result<PathBuf> {
    // The tests of this file run in parallel threads: one of them fetches, the others wait
    // (two fetches into one work dir remove each other's files).
    static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = FETCH
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = target_dir().join("newer-systemd/root");
    if !dir.join("usr/lib/systemd/systemd").exists() {
        let script = workspace_dir().join("tests/boot/newer-systemd.sh");
        let out = Command::new("sh").arg(&script).arg(&dir).output()?;
        ensure!(
            out.status.success(),
            "{} failed (it needs deb.debian.org):\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(dir)
}

/// `builder` with Debian 13's systemd laid over the root.
fn newer_systemd(builder: left4me_tests::Builder) -> Result<left4me_tests::Builder> {
    Ok(builder
        .top_layer(newer_systemd_layer()?)
        // systemd 256+ refuses the hybrid cgroup hierarchy of these machines without it (in a
        // container systemd reads its own arguments as the kernel command line).
        .systemd_arg("SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1"))
}

/// `SocketBindAllow=` lines of the generated drop-in for `name`, leaving out `drop`.
fn allow_lines_without(sys: &BootedSystem, name: &str, drop: &str) -> Result<String> {
    let dropin = ctl_ok(sys, &["render", name])?;
    let lines: Vec<&str> = dropin
        .lines()
        .filter(|l| l.starts_with("SocketBindAllow="))
        .collect();
    ensure!(lines.len() == 4, "{dropin}");
    ensure!(lines.contains(&drop), "{drop} is not in {lines:?}");
    Ok(lines
        .into_iter()
        .filter(|l| *l != drop)
        .map(|l| format!("{l}\n"))
        .collect())
}

/// The stand-in's log of `name` from `from` (a byte offset) on.
fn log_since(sys: &BootedSystem, name: &str, from: usize) -> String {
    let text = std::fs::read_to_string(runtime_path(sys, name, "upper/left4dead2/standin.log"))
        .unwrap_or_default();
    text.get(from..).unwrap_or_default().to_owned()
}

#[test]
fn booted_socket_bind_allow_is_enforced_on_a_newer_systemd() -> Result<()> {
    require_root();
    let sys = boot(newer_systemd(
        builder("ports-enforced").with_file(FAST_RESTART.0, FAST_RESTART.1),
    )?)?;
    let version = sys.run_stdout(["systemctl", "--version"])?;
    report(&format!(
        "booted {}",
        version.lines().next().unwrap_or_default()
    ));
    ensure!(version.contains("+BPF_FRAMEWORK"), "{version}");

    let name = "stv";
    write(
        &sys,
        &format!("/etc/left4me/instances/{name}.toml"),
        "port = 27015\nsourcetv = true\n",
    )?;
    ctl_ok(&sys, &["start", name])?;
    let bound = srcds_sockets(&sys)?;
    let all: BTreeSet<_> = [
        ("udp", 27015),
        ("tcp", 27015),
        ("udp", 27115),
        ("udp", 27215),
    ]
    .into();
    ensure!(bound == all, "{bound:?}");
    report("with the generated allow-list: started, binds udp 27015, 27115, 27215 and tcp 27015");
    ctl_ok(&sys, &["stop", name])?;

    // One port left out of the allow-list at a time.
    let dropin = format!("/etc/systemd/system/left4me-server@{name}.service.d/60-test.conf");
    for (rule, expect, fatal) in [
        (
            "SocketBindAllow=udp:27115",
            "Couldn't allocate any client IP port",
            true,
        ),
        (
            "SocketBindAllow=udp:27215",
            "Couldn't allocate any hltv IP port",
            true,
        ),
        (
            "SocketBindAllow=udp:27015",
            "Couldn't allocate any server IP port",
            true,
        ),
        (
            "SocketBindAllow=tcp:27015",
            "Socket bind failed (Operation not permitted)",
            false,
        ),
    ] {
        let text = format!(
            "[Service]\nSocketBindAllow=\n{}",
            allow_lines_without(&sys, name, rule)?
        );
        write(&sys, &dropin, &text)?;
        sys.run_ok(["systemctl", "daemon-reload"])?;
        let from = log_since(&sys, name, 0).len();
        let _ = sys.run(["systemctl", "start", &unit(name)])?;
        let log = wait_for(&sys, name, expect, Duration::from_secs(30), || {
            let log = log_since(&sys, name, from);
            Ok(log.contains(expect).then_some(log))
        })?;
        ensure!(
            log.contains("bind: Operation not permitted") || !fatal,
            "not refused by the allow-list:\n{log}"
        );
        if rule.ends_with(":27115") {
            // The client socket's fallback, bind(port 0), is refused too: `any` covers port 0.
            ensure!(
                log.matches("bind: Operation not permitted").count() == 2,
                "the client port and then port 0 refused:\n{log}"
            );
        }
        if fatal {
            ensure!(!log.contains("listening on udp"), "started anyway:\n{log}");
        } else {
            let state = wait_for(&sys, name, "active", Duration::from_secs(30), || {
                let state = state(&sys, name)?;
                Ok((state == "active/running").then_some(state))
            })?;
            ensure!(state == "active/running");
            let bound = srcds_sockets(&sys)?;
            ensure!(!bound.contains(&("tcp", 27015)), "{bound:?}");
        }
        report(&format!("without {rule}: {expect}"));
        let _ = sys.run(["systemctl", "stop", &unit(name)])?;
        let _ = sys.run(["systemctl", "reset-failed", &unit(name)])?;
    }
    sys.run_ok(["rm", &dropin])?;
    sys.run_ok(["systemctl", "daemon-reload"])?;
    if state(&sys, name)? != "inactive/dead" {
        bail!("{name} is {}", state(&sys, name)?);
    }
    finish(sys, &[])
}
