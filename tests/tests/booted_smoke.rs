//! Smoke tests of the throwaway-systemd harness itself (booted: needs root).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use left4me_tests::{BootError, BootedSystem, Leftovers, SystemIdentity, require_root};

fn assert_nothing_left(identity: &SystemIdentity) {
    let leftovers = Leftovers::find(identity);
    assert!(
        leftovers.is_empty(),
        "leftovers of {}:\n{leftovers}",
        identity.base.display()
    );
}

fn boot(name: &str) -> Result<BootedSystem> {
    let started = Instant::now();
    let sys = BootedSystem::builder().name(name).boot()?;
    eprintln!(
        "{name}: booted in {:?} (setup {:?}, systemd to `running` {:?})",
        started.elapsed(),
        sys.setup_duration(),
        sys.boot_duration()
    );
    Ok(sys)
}

/// A file in the host's /tmp: the booted systems' tmpfiles must not touch it.
struct Canary(PathBuf);

impl Canary {
    fn new(test: &str) -> Self {
        let path = PathBuf::from(format!("/tmp/left4me-canary-{test}-{}", std::process::id()));
        std::fs::write(&path, "still here\n").expect("write the canary");
        Canary(path)
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn booted_two_systems_run_side_by_side_and_leave_nothing() -> Result<()> {
    require_root();
    let canary = Canary::new("parallel");
    let (a, b) = thread::scope(|scope| {
        let a = scope.spawn(|| boot("smoke-a"));
        let b = scope.spawn(|| boot("smoke-b"));
        (a.join().unwrap(), b.join().unwrap())
    });
    let (a, b) = (a?, b?);
    let identities = [a.identity(), b.identity()];

    for sys in [&a, &b] {
        let state = sys.run_stdout(["systemctl", "is-system-running"])?;
        ensure!(
            state == "running",
            "{}: {state}\n{}",
            sys.name(),
            sys.failed_units()
        );
        let hostname = sys.run_stdout(["hostname"])?;
        ensure!(
            hostname == format!("left4me-{}", sys.name()),
            "hostname {hostname}"
        );
        // systemd-tmpfiles-setup emptied /tmp, but only inside.
        let inside = sys.host_path(&canary.0);
        ensure!(
            !inside.exists(),
            "{} survived tmpfiles inside",
            inside.display()
        );
    }
    ensure!(
        std::fs::read_to_string(&canary.0)? == "still here\n",
        "the host's /tmp was touched"
    );
    ensure!(a.pid() != b.pid());

    // Same unit name in both: each system has cgroups of its own, so stopping
    // one does not touch the other.
    for sys in [&a, &b] {
        sys.run_ok(["systemd-run", "--unit=smoke-probe", "sleep", "600"])?;
    }
    a.run_ok(["systemctl", "stop", "smoke-probe.service"])?;
    let in_b = b.run_stdout(["systemctl", "is-active", "smoke-probe.service"])?;
    ensure!(
        in_b == "active",
        "smoke-probe in b is {in_b} after stopping a's"
    );
    let in_a = a.run(["systemctl", "is-active", "smoke-probe.service"])?;
    ensure!(String::from_utf8_lossy(&in_a.stdout).trim() == "inactive");

    let (ta, tb) = (a.shutdown()?, b.shutdown()?);
    eprintln!("teardown: {ta:?}, {tb:?}");
    for identity in &identities {
        assert_nothing_left(identity);
    }
    Ok(())
}

#[test]
fn booted_no_packet_leaves_the_system() -> Result<()> {
    require_root();
    let sys = boot("smoke-net")?;
    let identity = sys.identity();

    // The namespace holds lo and both ends of the veth, nothing else.
    let links = sys.run_stdout(["ip", "-o", "link", "show"])?;
    let mut names: Vec<&str> = links
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .collect();
    names.sort();
    ensure!(names == ["a@b", "b@a", "lo"], "links inside: {links}");
    let route = sys.run_stdout(["ip", "route", "get", "10.0.0.1"])?;
    ensure!(route.contains("dev a"), "route to 10.0.0.1: {route}");
    let own = std::fs::read_link("/proc/self/ns/net")?;
    let theirs = std::fs::read_link(format!("/proc/{}/ns/net", sys.pid()))?;
    ensure!(
        own != theirs,
        "the system shares the host's network namespace"
    );

    // From inside (a shell in the system) and from a thread in its netns.
    let rx_before = rx_packets(&sys, "b")?;
    let shell = sys.run([
        "timeout",
        "10",
        "bash",
        "-c",
        "exec 3<>/dev/tcp/10.0.0.1/80",
    ])?;
    ensure!(!shell.status.success(), "a connect to 10.0.0.1 succeeded");
    let target: SocketAddr = "10.0.0.1:80".parse()?;
    let direct = sys.in_netns(|| TcpStream::connect_timeout(&target, Duration::from_secs(5)))?;
    ensure!(direct.is_err(), "a connect to 10.0.0.1 succeeded");
    eprintln!(
        "connect to 10.0.0.1: shell said {:?}, socket said {:?}",
        String::from_utf8_lossy(&shell.stderr).trim(),
        direct.err()
    );
    // What was sent went into the veth and died at its other end.
    let rx_after = rx_packets(&sys, "b")?;
    ensure!(
        rx_after > rx_before,
        "b received nothing ({rx_before} → {rx_after})"
    );

    // The extension point: a test host on the peer, answered by a listener
    // the test process holds.
    sys.add_peer_address("10.0.0.1/32")?;
    let listener = sys.in_netns(|| TcpListener::bind("10.0.0.1:8080"))??;
    let accepter = thread::spawn(move || listener.accept().map(|(_, from)| from));
    sys.run_ok(["bash", "-c", "echo hi >/dev/tcp/10.0.0.1/8080"])?;
    let from = accepter.join().unwrap()?;
    eprintln!("listener on the peer accepted a connection from {from}");

    drop(sys);
    assert_nothing_left(&identity);
    Ok(())
}

fn rx_packets(sys: &BootedSystem, device: &str) -> Result<u64> {
    let path = format!("/sys/class/net/{device}/statistics/rx_packets");
    let text = sys.run_stdout(["cat", &path])?;
    text.trim()
        .parse()
        .with_context(|| format!("{path}: {text}"))
}

#[test]
fn booted_reboot_keeps_files_and_drops_volatile_state() -> Result<()> {
    require_root();
    let unit = "[Unit]\nDescription=left4me smoke\n\n\
                [Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n\n\
                [Install]\nWantedBy=multi-user.target\n";
    let mut sys = BootedSystem::builder()
        .name("smoke-reboot")
        .with_file("/etc/systemd/system/left4me-smoke.service", unit)
        .boot()?;
    let identity = sys.identity();
    sys.run_ok(["sh", "-c", "echo kept > /etc/left4me-smoke"])?;
    sys.run_ok(["sh", "-c", "echo kept > /var/lib/left4me/smoke"])?;
    sys.run_ok(["mkdir", "-p", "/run/left4me-smoke"])?;
    sys.run_ok(["mount", "-t", "tmpfs", "smoke", "/run/left4me-smoke"])?;
    sys.run_ok(["systemctl", "enable", "left4me-smoke.service"])?;
    let inactive = sys.run(["systemctl", "is-active", "left4me-smoke.service"])?;
    ensure!(
        !inactive.status.success(),
        "enabled, not started, yet active"
    );
    let first_pid = sys.pid();

    let started = Instant::now();
    sys.reboot()?;
    eprintln!(
        "reboot took {:?} (boot {:?})",
        started.elapsed(),
        sys.boot_duration()
    );

    ensure!(sys.pid() != first_pid, "same systemd after reboot");
    ensure!(sys.run_stdout(["cat", "/etc/left4me-smoke"])? == "kept");
    ensure!(sys.run_stdout(["cat", "/var/lib/left4me/smoke"])? == "kept");
    let state_fs = sys.run_stdout(["findmnt", "-n", "-o", "FSTYPE", "/var/lib/left4me"])?;
    ensure!(state_fs == "tmpfs", "state dir is on {state_fs}");
    let mount = sys.run(["findmnt", "/run/left4me-smoke"])?;
    ensure!(
        !mount.status.success(),
        "the /run mount survived the reboot"
    );
    ensure!(!Path::new(&sys.host_path("/run/left4me-smoke")).exists());
    let active = sys.run_stdout(["systemctl", "is-active", "left4me-smoke.service"])?;
    ensure!(active == "active", "enabled unit is {active} after reboot");
    ensure!(sys.run_stdout(["systemctl", "is-system-running"])? == "running");
    let journal = sys.journal(Some("left4me-smoke.service"));
    ensure!(journal.contains("left4me smoke"), "journal:\n{journal}");

    drop(sys);
    assert_nothing_left(&identity);
    Ok(())
}

#[test]
fn booted_a_failed_unit_fails_the_boot_and_cleans_up() -> Result<()> {
    require_root();
    let error = BootedSystem::builder()
        .name("smoke-degraded")
        .with_file(
            "/etc/systemd/system/left4me-smoke-fail.service",
            "[Service]\nType=oneshot\nExecStart=/bin/false\n",
        )
        .with_symlink(
            "/etc/systemd/system/multi-user.target.wants/left4me-smoke-fail.service",
            "/etc/systemd/system/left4me-smoke-fail.service",
        )
        .boot()
        .err()
        .context("a boot with a failing unit succeeded")?;
    match &error {
        BootError::NotRunning {
            state,
            failed,
            journal,
            ..
        } => {
            ensure!(state == "degraded", "state {state}");
            ensure!(
                failed.contains("left4me-smoke-fail.service"),
                "failed: {failed}"
            );
            ensure!(journal.contains("left4me-smoke-fail"), "journal: {journal}");
        }
        other => anyhow::bail!("unexpected error: {other}"),
    }
    assert_no_system_named("smoke-degraded");
    Ok(())
}

#[test]
fn booted_a_panicking_test_still_tears_down() {
    require_root();
    let (sender, receiver) = std::sync::mpsc::channel();
    let panicked = thread::spawn(move || {
        let sys = BootedSystem::builder()
            .name("smoke-panic")
            .boot()
            .expect("boot");
        sender.send(sys.identity()).unwrap();
        panic!("deliberate panic with a booted system in scope");
    })
    .join();
    assert!(panicked.is_err(), "the thread did not panic");
    let identity = receiver.recv().expect("the system booted");
    assert_nothing_left(&identity);
}

/// Asserts no base dir, cgroup or mount is left of any system named `name`
/// of this process (a failed boot never hands out its identity).
fn assert_no_system_named(name: &str) {
    let prefix = format!("left4me-booted-{name}-{}-", std::process::id());
    let mut leaves = left4me_tests::cgroup::siblings_with_prefix(&prefix);
    leaves.extend(
        std::fs::read_dir("/tmp")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(&prefix)),
    );
    assert!(leaves.is_empty(), "left of {name}: {leaves:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&prefix),
        "mounts of {name} left:\n{mounts}"
    );
}

#[test]
fn booted_leftovers_of_a_dead_test_process_are_reaped() -> Result<()> {
    require_root();
    // What a test process killed mid-run leaves: a mounted base dir and
    // cgroups with something running in them, named after a pid now gone.
    let mut finished = std::process::Command::new("true").spawn()?;
    let dead_pid = finished.id();
    finished.wait()?;
    let leaf = format!("left4me-booted-stale-{dead_pid}-0");
    let identity = SystemIdentity {
        base: Path::new("/tmp").join(&leaf),
        cgroup_leaf: leaf.clone(),
    };
    std::fs::create_dir(&identity.base)?;
    left4me_tests::mounts::mount_private_tmpfs(&identity.base, "mode=0700")?;
    let cgroups = left4me_tests::cgroup::SystemCgroups::create(&leaf)?;
    let mut orphan = std::process::Command::new("sleep").arg("600").spawn()?;
    cgroups.attach(orphan.id())?;

    let reaped = left4me_tests::reap_stale();
    eprintln!("reaped: {reaped:?}");
    let status = orphan.wait()?;
    ensure!(!status.success(), "the orphan was not killed: {status}");
    assert_nothing_left(&identity);
    Ok(())
}

#[test]
fn booted_the_installed_project_is_there_after_boot() -> Result<()> {
    require_root();
    let sys = BootedSystem::builder()
        .name("smoke-install")
        .install_project(true)
        .boot()?;
    for path in [
        "/usr/bin/left4mectl",
        "/usr/lib/left4me/left4me-supervisor",
        "/usr/lib/systemd/system-generators/left4me-generator",
    ] {
        ensure!(sys.host_path(path).is_file(), "{path} is not installed");
    }
    sys.run_ok(["systemctl", "cat", "left4me-server@.service"])?;
    let owner = sys.run_stdout(["stat", "-c", "%U:%G %a", "/var/lib/left4me"])?;
    // DESIGN.md §2: root owns the state dir; the game user only leaves inside it.
    ensure!(owner == "root:root 755", "state dir is {owner}");

    let srcds = left4me_tests::release_binary("srcds-standin");
    let tree = sys.install_game_tree(&srcds)?;
    let srcds_run = tree.installation.join("srcds_run");
    let owner = sys.run_stdout(["stat", "-c", "%U %a", srcds_run.to_str().unwrap()])?;
    ensure!(owner == "left4me 755", "srcds_run is {owner}");
    let client = sys.run_stdout([
        "runuser",
        "-u",
        "left4me",
        "--",
        "sh",
        "-c",
        "cd && cat .steam/sdk32/steamclient.so .steam/sdk64/steamclient.so",
    ])?;
    ensure!(
        client.contains("linux32") && client.contains("linux64"),
        "{client}"
    );
    Ok(())
}
