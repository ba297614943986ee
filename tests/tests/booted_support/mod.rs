//! What the booted end-to-end scenarios share: a system with left4me installed and the
//! stand-in game in place, `left4mectl` and `systemctl` inside it, and the checks every
//! scenario makes (overlay mounts in PID 1's namespace, nothing left behind).

#![allow(dead_code)] // each scenario file uses a different part

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use left4me_tests::{BootedSystem, Builder, Leftovers, STATE_DIR, SystemIdentity, release_binary};

/// A test drop-in that shortens `RestartSec=` for scenarios that go through several restarts.
pub const FAST_RESTART: (&str, &str) = (
    "/etc/systemd/system/left4me-server@.service.d/90-test-restart.conf",
    "# left4me booted tests: restart loops in seconds, not tens of seconds.\n[Service]\nRestartSec=1\n",
);

/// A builder for a system with left4me installed (`make install` into its root).
pub fn builder(name: &str) -> Builder {
    BootedSystem::builder()
        .name(name)
        .install_project(true)
        .command_timeout(Duration::from_secs(90))
}

/// A line for the test log that shows also when the test passes: cargo captures `print!` and
/// `eprint!` of passing tests, not writes to the stderr handle.
pub fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "left4me e2e: {line}");
}

/// Boots `builder`, lays out the stand-in game install, and says how long it took.
pub fn boot(builder: Builder) -> Result<BootedSystem> {
    let started = Instant::now();
    let sys = builder.boot()?;
    sys.install_game_tree(&release_binary("srcds-standin"))?;
    eprintln!(
        "{}: booted with left4me installed in {:.1}s (systemd to `running` {:.1}s)",
        sys.name(),
        started.elapsed().as_secs_f64(),
        sys.boot_duration().as_secs_f64()
    );
    Ok(sys)
}

/// Text of an output, stdout then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `left4mectl ARGS…` inside, whatever its exit status.
pub fn ctl(sys: &BootedSystem, args: &[&str]) -> Result<Output> {
    let mut argv = vec!["left4mectl"];
    argv.extend_from_slice(args);
    Ok(sys.run(argv)?)
}

/// `left4mectl ARGS…` inside; must exit 0. Returns stdout and stderr together.
pub fn ctl_ok(sys: &BootedSystem, args: &[&str]) -> Result<String> {
    let out = ctl(sys, args)?;
    ensure!(
        out.status.success(),
        "`left4mectl {}` failed ({}):\n{}",
        args.join(" "),
        out.status,
        text(&out)
    );
    Ok(text(&out))
}

/// `left4mectl ARGS…` inside; must exit with `code`.
pub fn ctl_status(sys: &BootedSystem, args: &[&str], code: i32) -> Result<String> {
    let out = ctl(sys, args)?;
    ensure!(
        out.status.code() == Some(code),
        "`left4mectl {}` exited {} instead of {code}:\n{}",
        args.join(" "),
        out.status,
        text(&out)
    );
    Ok(text(&out))
}

/// Writes `text` to `inside` (a path inside the system), creating parent dirs.
pub fn write(sys: &BootedSystem, inside: &str, text: &str) -> Result<()> {
    let path = sys.host_path(inside);
    std::fs::create_dir_all(path.parent().context("a path with a parent")?)?;
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
}

/// Creates overlay `name` in the state dir with `files` (relative path, contents): the
/// content dir `overlays/NAME` and everything in it owned by the game user, as a build
/// publishes it; `overlays/` itself stays root's (DESIGN.md section 2).
pub fn make_overlay(sys: &BootedSystem, name: &str, files: &[(&str, &str)]) -> Result<()> {
    for (rel, contents) in files {
        write(sys, &format!("{STATE_DIR}/overlays/{name}/{rel}"), contents)?;
    }
    sys.run_ok([
        "chown",
        "-R",
        "left4me:left4me",
        &format!("{STATE_DIR}/overlays/{name}"),
    ])?;
    Ok(())
}

pub fn unit(name: &str) -> String {
    format!("left4me-server@{name}.service")
}

/// `systemctl show -p PROP --value` of instance `name`.
pub fn prop(sys: &BootedSystem, name: &str, property: &str) -> Result<String> {
    Ok(sys.run_stdout(["systemctl", "show", "-p", property, "--value", &unit(name)])?)
}

/// ActiveState/SubState, e.g. `active/running`.
pub fn state(sys: &BootedSystem, name: &str) -> Result<String> {
    let out = sys.run_stdout([
        "systemctl",
        "show",
        "-p",
        "ActiveState,SubState",
        &unit(name),
    ])?;
    let get = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or("")
            .to_owned()
    };
    Ok(format!("{}/{}", get("ActiveState="), get("SubState=")))
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout` with `what`
/// and the unit's journal.
pub fn wait_for<T>(
    sys: &BootedSystem,
    name: &str,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!(
                "{what}: not within {timeout:?}; {name} is {}\n--- journal ---\n{}",
                state(sys, name).unwrap_or_default(),
                sys.journal(Some(&unit(name)))
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The instance's overlay mounts at `runtime/NAME/merged` in the booted system's PID 1 mount
/// namespace, read from the host (`/proc/<its pid>/mountinfo`): (mount id, super options).
pub fn merged_mounts(sys: &BootedSystem, name: &str) -> Result<Vec<(u64, String)>> {
    let target = format!("{STATE_DIR}/runtime/{name}/merged");
    let path = format!("/proc/{}/mountinfo", sys.pid());
    let mountinfo = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    Ok(mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            (fields.get(4) == Some(&target.as_str()) && fields.get(dash + 1) == Some(&"overlay"))
                .then(|| {
                    (
                        fields[0].parse().unwrap_or(0),
                        fields.get(dash + 3).unwrap_or(&"").to_string(),
                    )
                })
        })
        .collect())
}

/// Every overlay mount beneath the state dir in PID 1's namespace (mount points).
pub fn state_overlay_mounts(sys: &BootedSystem) -> Result<Vec<String>> {
    let path = format!("/proc/{}/mountinfo", sys.pid());
    let mountinfo = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    Ok(mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            (fields.get(dash + 1) == Some(&"overlay")
                && fields.get(4).is_some_and(|p| p.starts_with(STATE_DIR)))
            .then(|| fields[4].to_owned())
        })
        .collect())
}

/// The host path of `runtime/NAME/…`.
pub fn runtime_path(sys: &BootedSystem, name: &str, rel: &str) -> PathBuf {
    sys.state_dir().join("runtime").join(name).join(rel)
}

/// Pids of the children of `pid` inside the system.
pub fn children(sys: &BootedSystem, pid: &str) -> Result<Vec<String>> {
    Ok(sys
        .run_stdout(["cat", &format!("/proc/{pid}/task/{pid}/children")])?
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

/// The game server's pid: the only child of the unit's main process (the supervisor).
pub fn game_pid(sys: &BootedSystem, name: &str) -> Result<String> {
    let main = prop(sys, name, "MainPID")?;
    ensure!(main != "0", "{name} has no main process");
    let kids = children(sys, &main)?;
    ensure!(
        kids.len() == 1,
        "the supervisor {main} of {name} has children {kids:?}, not one game"
    );
    Ok(kids[0].clone())
}

/// Asserts that nothing of the system is left on the host once it is gone.
pub fn assert_nothing_left(identity: &SystemIdentity) {
    let leftovers = Leftovers::find(identity);
    assert!(
        leftovers.is_empty(),
        "leftovers of {}:\n{leftovers}",
        identity.base.display()
    );
}

/// Stops every instance in `names` with `left4mectl stop`, checks that no overlay mount is left
/// in the system, powers it off and checks that nothing is left on the host.
pub fn finish(sys: BootedSystem, names: &[&str]) -> Result<()> {
    if !names.is_empty() {
        let mut args = vec!["stop"];
        args.extend_from_slice(names);
        ctl_ok(&sys, &args)?;
    }
    let mounts = state_overlay_mounts(&sys)?;
    ensure!(mounts.is_empty(), "overlay mounts left inside: {mounts:?}");
    let identity = sys.identity();
    let took = sys.shutdown()?;
    eprintln!(
        "{}: torn down in {:.1}s",
        identity.cgroup_leaf,
        took.as_secs_f64()
    );
    assert_nothing_left(&identity);
    Ok(())
}

/// Writes `text` into the stand-in game's control file of instance `name`
/// (`<game>/standin.control`: `players N`, `player NAME [SCORE]`, …; read every 200 ms),
/// through its mounted tree as PID 1 of the system sees it.
pub fn standin_control(sys: &BootedSystem, name: &str, text: &str) -> Result<()> {
    let control = format!(
        "/proc/{}/root{STATE_DIR}/runtime/{name}/merged/left4dead2/standin.control",
        sys.pid()
    );
    std::fs::write(&control, text).with_context(|| format!("write {control}"))
}
