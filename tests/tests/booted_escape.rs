//! The escape suite (needs root): build scripts that try to get out, run through the real
//! `left4mectl overlay build` in a booted systemd, each required to be stopped, while the
//! allowed work of a build (download from a test host, unpack, write to /overlay) succeeds.
//!
//! Every probe prints `probe LABEL: OUTCOME`; the suite compares each outcome with the one
//! expected and names the layer that produces it. Network probes target addresses the test
//! gives the veth peer inside the system's own network namespace, each with a listener, and
//! the same probes run unconfined first must get through: "blocked" is told from "nobody
//! there". No probe can send a packet off the machine.
//!
//! Probes of their own build: a symlink in /overlay to host files (refused by the output
//! check), a memory bomb, running past the time limit with a daemon, filling the disk; then
//! the consumer side (an instance mounting an overlay that holds such symlinks and a set-uid
//! file, seen from inside the game's unit) and the security score of the build unit.

mod booted_support;
mod build_support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use booted_support::{boot, builder, ctl_ok, wait_for};
use build_support::*;
use left4me_tests::{BootedSystem, STATE_DIR, game_tree::lookup_user, require_root, target_dir};

/// The highest `systemd-analyze security` exposure accepted for a build unit.
const MAX_EXPOSURE: f64 = 2.5;
const PROBE: &str = "/usr/local/bin/left4me-escape-probe";
const ABSTRACT_NAME: &str = "left4me-escape-test";
/// Root's admin dir (DESIGN.md §2) and the job ledger in it.
const ADMIN_DIR: &str = "/var/lib/left4me-admin";
const LEDGER: &str = "/var/lib/left4me-admin/left4me.db";

/// Private and special addresses the peer gets (each answers on TCP 80 and UDP 5353).
const DENIED_TARGETS: &[(&str, &str)] = &[
    ("127.0.0.1", "loopback"),
    ("[::1]", "IPv6 loopback"),
    ("[::ffff:127.0.0.1]", "IPv4-mapped loopback"),
    ("10.0.0.1", "RFC 1918 10/8"),
    ("172.16.0.1", "RFC 1918 172.16/12"),
    ("192.168.0.1", "RFC 1918 192.168/16"),
    ("169.254.169.254", "cloud metadata (link-local)"),
    ("100.64.0.1", "CGNAT 100.64/10"),
    ("[fd00::1]", "IPv6 unique local"),
];
const PEER_ADDRESSES: &[&str] = &[
    "10.0.0.1/32",
    "172.16.0.1/32",
    "192.168.0.1/32",
    "169.254.169.254/32",
    "100.64.0.1/32",
    "fd00::1/128",
];

/// Compiles the probe (`sandbox/probe/main.rs`, the one the privileged sandbox tests run; std
/// only) with rustc and installs it in the system's /usr/local/bin. Every call is labelled
/// (`--label LABEL`), so it prints `probe LABEL: OUTCOME`.
fn install_probe(sys: &BootedSystem) -> Result<()> {
    let source = workspace_file("sandbox/probe/main.rs");
    let binary = target_dir().join("left4me-escape-probe");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let started = Instant::now();
    let out = Command::new(&rustc)
        .args(["--edition", "2024", "-O", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .with_context(|| format!("run {rustc:?} (the probe is compiled with plain rustc)"))?;
    ensure!(
        out.status.success(),
        "rustc {}:\n{}",
        source.display(),
        text(&out)
    );
    let inside = sys.host_path(PROBE);
    std::fs::create_dir_all(inside.parent().context("parent")?)?;
    std::fs::copy(&binary, &inside)?;
    std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o755))?;
    eprintln!(
        "left4me escape: probe compiled in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// How an outcome is compared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Match {
    Exact,
    Prefix,
    Contains,
}

/// One expected probe outcome and the layer that produces it.
struct Expect {
    label: String,
    outcome: String,
    how: Match,
    layer: &'static str,
}

fn expect(label: impl Into<String>, outcome: impl Into<String>, layer: &'static str) -> Expect {
    Expect {
        label: label.into(),
        outcome: outcome.into(),
        how: Match::Exact,
        layer,
    }
}

fn expect_prefix(label: &str, outcome: &str, layer: &'static str) -> Expect {
    Expect {
        how: Match::Prefix,
        ..expect(label, outcome, layer)
    }
}

fn expect_contains(label: &str, outcome: &str, layer: &'static str) -> Expect {
    Expect {
        how: Match::Contains,
        ..expect(label, outcome, layer)
    }
}

/// `probe LABEL: OUTCOME` lines of a build's output (after the elapsed-time prefix).
fn probe_lines(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .filter_map(|line| {
            let rest = &line[line.find("probe ")? + "probe ".len()..];
            let (label, outcome) = rest.split_once(": ")?;
            Some((label.to_owned(), outcome.trim().to_owned()))
        })
        .collect()
}

/// The rows of the report table: (label, expected, observed, layer, ok).
type Row = (String, String, String, String, bool);

fn check(expects: &[Expect], observed: &BTreeMap<String, String>, rows: &mut Vec<Row>) {
    for e in expects {
        let got = observed
            .get(&e.label)
            .cloned()
            .unwrap_or_else(|| "(no line)".to_owned());
        let ok = match e.how {
            Match::Exact => got == e.outcome,
            Match::Prefix => got.starts_with(&e.outcome),
            Match::Contains => got.contains(&e.outcome),
        };
        rows.push((
            e.label.clone(),
            e.outcome.clone(),
            got,
            e.layer.to_owned(),
            ok,
        ));
    }
}

fn table(rows: &[Row]) -> String {
    let width = |i: usize| {
        rows.iter()
            .map(|r| match i {
                0 => r.0.len(),
                1 => r.1.len(),
                _ => r.2.len(),
            })
            .max()
            .unwrap_or(0)
            .min(60)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let mut out = format!(
        "{:<4} {:<w0$}  {:<w1$}  {:<w2$}  LAYER\n",
        "", "PROBE", "EXPECTED", "OBSERVED"
    );
    for (label, expected, got, layer, ok) in rows {
        let _ = writeln!(
            out,
            "{:<4} {label:<w0$}  {expected:<w1$}  {got:<w2$}  {layer}",
            if *ok { "ok" } else { "FAIL" }
        );
    }
    out
}

/// The main probe script: allowed work first, then every probe of one build.
fn main_script(victim_pid: u32) -> String {
    let mut s = format!(
        "set -u\nP='{PROBE} --label'\n\
         # Allowed work: download from the test host, unpack, write to /overlay.\n\
         curl -fsS -o /tmp/pack.tar.gz http://{FILE_HOST}/pack.tar.gz && echo 'probe allowed download: ok'\n\
         mkdir -p left4dead2/addons && tar -xzf /tmp/pack.tar.gz -C left4dead2/addons && echo 'probe allowed unpack: ok'\n\
         echo written > left4dead2/written.txt && echo 'probe allowed write: ok'\n\
         # A daemon that tries to outlive the build.\n\
         $P 'daemon' daemon /tmp/heartbeat\n\
         # Identity, descriptors, environment.\n\
         $P 'credentials' creds\n\
         $P 'inherited fds' fds\n\
         $P 'environment' env\n\
         # Files.\n\
         $P 'read /etc/shadow' read /etc/shadow\n\
         $P 'read the SQLite db' read {LEDGER}\n\
         $P 'read another overlay' read {STATE_DIR}/overlays/victim/secret.txt\n\
         $P 'read the game install' read {STATE_DIR}/installation/srcds_run\n\
         $P 'read /proc/1/environ' read /proc/1/environ\n\
         $P 'read /root' read /root/.profile\n\
         $P 'write host /tmp' write /tmp/escape-probe\n\
         $P 'write /var/tmp' write /var/tmp/escape-probe\n\
         $P 'write /dev/shm' write /dev/shm/escape-probe\n\
         $P 'write another overlay' write {STATE_DIR}/overlays/victim/pwned.txt\n\
         $P 'write /etc' write /etc/escape-probe\n\
         $P 'write /usr/local/bin' write /usr/local/bin/escape-probe\n\
         $P 'hardlink /etc/passwd into /overlay' hardlink /etc/passwd /overlay/passwd-link\n\
         $P 'hardlink /etc/shadow into /tmp' hardlink /etc/shadow /tmp/shadow-link\n\
         touch suid-target && $P 'chmod 4755 in /overlay' chmod-suid /overlay/suid-target\n\
         cp /bin/true /tmp/true && chmod 755 /tmp/true && $P 'exec from /tmp' exec /tmp/true\n\
         cp /bin/true exe && chmod 755 exe && $P 'exec from /overlay' exec /overlay/exe\n\
         rm -f exe\n\
         # Network (in parallel: a blocked TCP connect takes its 2 s timeout).\n"
    );
    for (addr, _) in DENIED_TARGETS {
        let _ = writeln!(s, "$P 'tcp {addr}:80' tcp {addr}:80 &");
        let _ = writeln!(s, "$P 'udp {addr}:5353' udp {addr}:5353 &");
    }
    let _ = writeln!(
        s,
        "$P 'tcp {FILE_HOST}:8080 (port not allowed)' tcp {FILE_HOST}:8080 &"
    );
    let _ = writeln!(
        s,
        "$P 'tcp {RESOLVER}:80 (the resolver)' tcp {RESOLVER}:80 &"
    );
    s.push_str("wait\n");
    let _ = write!(
        s,
        "$P 'bind tcp :8080' bind-tcp 0.0.0.0:8080\n\
         $P 'mptcp socket' socket 2 1 262\n\
         $P 'sctp socket' socket 2 1 132\n\
         $P 'raw icmp socket' socket 2 3 1\n\
         $P 'packet socket' socket 17 3 0\n\
         $P 'netlink socket' socket 16 3 0\n\
         $P 'unix /run/systemd/private' unix /run/systemd/private\n\
         $P 'unix abstract @{ABSTRACT_NAME}' unix-abstract {ABSTRACT_NAME}\n\
         # Processes and kernel interfaces.\n\
         $P 'signal a host process (same uid)' kill {victim_pid} 15\n\
         $P 'signal pid 1' kill 1 0\n\
         $P 'ptrace the parent' ptrace-parent\n\
         $P 'setuid(0)' setuid0\n\
         $P 'unshare(CLONE_NEWUSER)' unshare 268435456\n\
         unshare -U true 2>/dev/null; echo \"probe unshare -U (util-linux): exit $?\"\n\
         $P 'mount tmpfs' mount-tmpfs /tmp\n\
         $P 'open_tree' open-tree\n\
         $P 'clone(CLONE_NEWUSER|CLONE_NEWNS)' clone 268566528\n\
         $P 'clone(CLONE_NEWNET)' clone 1073741824\n\
         $P 'int 0x80 (i386 gate)' int80 20\n\
         $P 'io_uring_setup' io-uring\n\
         $P 'bpf' bpf\n\
         $P 'perf_event_open' perf\n\
         $P 'keyctl' keyctl\n\
         # systemd's hardening directives, kept by the runner itself (sandbox/README.md parity table).\n\
         $P 'personality(READ_IMPLIES_EXEC)' personality\n\
         $P 'sched_setscheduler(SCHED_FIFO)' sched-fifo\n\
         $P 'clock_settime' clock-settime\n\
         $P 'adjtimex' adjtimex\n\
         $P 'mmap(PROT_WRITE|PROT_EXEC)' mmap-wx\n\
         $P 'mprotect(RW -> RX)' mprotect-exec\n\
         $P 'PR_GET_MDWE' mdwe\n\
         $P 'finit_module' init-module\n\
         $P 'syslog' syslog\n\
         $P 'read /dev/kmsg' read /dev/kmsg\n\
         $P 'sethostname' sethostname\n\
         $P 'setns(/proc/self/ns/net)' setns /proc/self/ns/net\n\
         $P 'unshare(CLONE_NEWUTS)' unshare 67108864\n\
         $P 'write /proc/sys/kernel/ostype' write /proc/sys/kernel/ostype\n\
         $P 'list /sys/fs/cgroup' read-dir /sys/fs/cgroup\n\
         $P 'iopl(3)' iopl\n\
         $P 'shmget' shmget\n\
         # Archives with hostile entries, unpacked three ways into /tmp.\n\
         curl -fsS -o /tmp/evil.tar http://{FILE_HOST}/evil.tar\n\
         mkdir -p /tmp/x1/a/b/c /tmp/x2/a/b/c /tmp/x3/a/b/c\n\
         landed() {{ for f in /escape-dotdot.txt /usr/escape-abs.txt {STATE_DIR}/overlays/victim/pwned-abs.txt {STATE_DIR}/overlays/victim/pwned-link.txt /tmp/x$1/a/b/c/hl; do [ -e \"$f\" ] && printf '%s ' \"$f\"; done; }}\n\
         (cd /tmp/x1/a/b/c && tar -xf /tmp/evil.tar) >/tmp/tar1.log 2>&1; echo \"probe tar (GNU defaults): exit $? landed: [$(landed 1)]\"\n\
         (cd /tmp/x2/a/b/c && tar -xPf /tmp/evil.tar) >/tmp/tar2.log 2>&1; echo \"probe tar -P (no guards): exit $? landed: [$(landed 2)]\"\n\
         python3 -c 'import tarfile; t = tarfile.open(\"/tmp/evil.tar\"); t.errorlevel = 0; t.extractall(\"/tmp/x3/a/b/c\", **({{\"filter\": \"fully_trusted\"}} if hasattr(tarfile, \"fully_trusted_filter\") else {{}}))' >/tmp/tar3.log 2>&1; echo \"probe python tarfile fully_trusted: exit $? landed: [$(landed 3)]\"\n\
         grep -h -e 'Cannot' -e 'Error' -e 'Removing' /tmp/tar*.log | sort | uniq -c | head -20\n\
         # Last: as many processes as the kernel gives (TasksMax bounds it).\n\
         $P 'fork bomb' forks 100000\n\
         echo done\n"
    );
    s
}

fn expectations(sandbox: (u32, u32)) -> Vec<Expect> {
    const MOUNTNS: &str = "mount namespace: not in the sandbox's root";
    const SECCOMP: &str = "seccomp (runner)";
    let mut e = vec![
        expect(
            "allowed download",
            "ok",
            "allowed: public test host, port 80",
        ),
        expect("allowed unpack", "ok", "allowed"),
        expect("allowed write", "ok", "allowed: /overlay"),
        expect(
            "daemon",
            "ok daemon started",
            "(its end is checked after the build)",
        ),
        expect(
            "credentials",
            format!(
                "ok uid={0},{0},{0} gid={1},{1},{1} groups=0 caps=0/0/0 bounding=0 ambient=0 \
                 nnp=1 seccomp=2",
                sandbox.0, sandbox.1
            ),
            "runner: sandbox uid, no groups, no capabilities, no_new_privs, seccomp",
        ),
        expect("inherited fds", "ok none", "runner: fds above 2 closed"),
        expect(
            "environment",
            format!(
                "ok HOME=/tmp LANG=C.UTF-8 OVERLAY=/overlay PATH=/usr/bin:/bin PWD=/overlay \
                 SHLVL=1 _={PROBE}"
            ),
            "runner: environment scrubbed (bash adds PWD, SHLVL, _)",
        ),
        expect(
            "read /etc/shadow",
            "err EACCES",
            "Landlock (and mode 0640 root:shadow)",
        ),
        expect("read the SQLite db", "err ENOENT", MOUNTNS),
        expect("read another overlay", "err ENOENT", MOUNTNS),
        expect("read the game install", "err ENOENT", MOUNTNS),
        expect(
            "read /proc/1/environ",
            "err ENOENT",
            "procfs hidepid=invisible",
        ),
        expect("read /root", "err ENOENT", MOUNTNS),
        expect(
            "write host /tmp",
            "ok",
            "mount namespace: private tmpfs (host /tmp checked)",
        ),
        expect("write /var/tmp", "err ENOENT", MOUNTNS),
        expect(
            "write /dev/shm",
            "err ENOENT",
            "mount namespace: /dev has 5 device nodes",
        ),
        expect("write another overlay", "err ENOENT", MOUNTNS),
        expect("write /etc", "err EROFS", "read-only bind mount"),
        expect("write /usr/local/bin", "err EROFS", "read-only bind mount"),
        expect(
            "hardlink /etc/passwd into /overlay",
            "err EXDEV",
            "separate mounts (and Landlock)",
        ),
        expect(
            "hardlink /etc/shadow into /tmp",
            "err EXDEV",
            "separate mounts (and Landlock)",
        ),
        expect(
            "chmod 4755 in /overlay",
            "err EPERM",
            "seccomp: chmod with set-id bits (and nosuid)",
        ),
        expect("exec from /tmp", "err EACCES", "noexec mount and Landlock"),
        expect(
            "exec from /overlay",
            "err EACCES",
            "noexec mount and Landlock",
        ),
    ];
    for (addr, what) in DENIED_TARGETS {
        let _ = what;
        e.push(expect(
            format!("tcp {addr}:80"),
            "timeout",
            "IPAddressDeny= (cgroup BPF drops the SYN)",
        ));
        e.push(expect(
            format!("udp {addr}:5353"),
            "err EPERM",
            "IPAddressDeny= (cgroup BPF refuses the datagram)",
        ));
    }
    e.extend([
        expect(
            format!("tcp {FILE_HOST}:8080 (port not allowed)"),
            "err EACCES",
            "Landlock TCP connect rule",
        ),
        expect(
            format!("tcp {RESOLVER}:80 (the resolver)"),
            "connected",
            "ALLOWED by design: the resolver's exact IPAddressAllow= exception",
        ),
        expect(
            "bind tcp :8080",
            "err EPERM",
            "seccomp: no bind at all (and Landlock's TCP bind rule)",
        ),
        expect("mptcp socket", "err EPERM", SECCOMP),
        expect("sctp socket", "err EPERM", SECCOMP),
        expect("raw icmp socket", "err EPERM", SECCOMP),
        expect(
            "packet socket",
            "err EPERM",
            "seccomp (and RestrictAddressFamilies=)",
        ),
        expect(
            "netlink socket",
            "err EPERM",
            "seccomp (and RestrictAddressFamilies=)",
        ),
        expect(
            "unix /run/systemd/private",
            "err EPERM",
            "seccomp (and RestrictAddressFamilies=)",
        ),
        expect(
            format!("unix abstract @{ABSTRACT_NAME}"),
            "err EPERM",
            "seccomp (and Landlock abstract-socket scope)",
        ),
        expect(
            "signal a host process (same uid)",
            "err EPERM",
            "Landlock signal scope",
        ),
        expect(
            "signal pid 1",
            "err EPERM",
            "credentials (and Landlock signal scope)",
        ),
        expect(
            "ptrace the parent",
            "err EPERM",
            "seccomp (and the unit's SystemCallFilter=)",
        ),
        expect("setuid(0)", "err EPERM", "seccomp / no CAP_SETUID"),
        expect("unshare(CLONE_NEWUSER)", "err EPERM", SECCOMP),
        expect("unshare -U (util-linux)", "exit 1", SECCOMP),
        expect("mount tmpfs", "err EPERM", "seccomp (and no CAP_SYS_ADMIN)"),
        expect("open_tree", "err EPERM", SECCOMP),
        expect("clone(CLONE_NEWUSER|CLONE_NEWNS)", "err EPERM", SECCOMP),
        expect(
            "clone(CLONE_NEWNET)",
            "err EPERM",
            "seccomp (and the unit's RestrictNamespaces=)",
        ),
        expect(
            "int 0x80 (i386 gate)",
            "signal 31",
            "seccomp: other architectures killed (and SystemCallArchitectures=)",
        ),
        expect(
            "io_uring_setup",
            "err EPERM",
            "seccomp (and the unit's SystemCallFilter=)",
        ),
        expect("bpf", "err EPERM", SECCOMP),
        expect("perf_event_open", "err EPERM", SECCOMP),
        expect("keyctl", "err EPERM", SECCOMP),
        // systemd's hardening directives: the runner's own policy (the unit sets most of them
        // too; its filter answers EPERM first where it refuses a call ours lets through).
        expect("personality(READ_IMPLIES_EXEC)", "err EPERM", SECCOMP),
        expect("sched_setscheduler(SCHED_FIFO)", "err EPERM", SECCOMP),
        expect("clock_settime", "err EPERM", SECCOMP),
        expect("adjtimex", "err EPERM", SECCOMP),
        expect(
            "mmap(PROT_WRITE|PROT_EXEC)",
            "err EPERM",
            "the unit's MemoryDenyWriteExecute= (EPERM), then the runner's PR_SET_MDWE (EACCES)",
        ),
        expect(
            "mprotect(RW -> RX)",
            "err EPERM",
            "the unit's MemoryDenyWriteExecute= (EPERM), then the runner's PR_SET_MDWE (EACCES)",
        ),
        expect(
            "PR_GET_MDWE",
            "ok 1",
            "runner: PR_SET_MDWE under the script profile",
        ),
        expect("finit_module", "err EPERM", SECCOMP),
        expect("syslog", "err EPERM", SECCOMP),
        expect("read /dev/kmsg", "err ENOENT", "mount tree"),
        expect("sethostname", "err EPERM", SECCOMP),
        expect("setns(/proc/self/ns/net)", "err EPERM", SECCOMP),
        expect("unshare(CLONE_NEWUTS)", "err EPERM", SECCOMP),
        expect(
            "write /proc/sys/kernel/ostype",
            "err ENOENT",
            "procfs subset=pid",
        ),
        expect("list /sys/fs/cgroup", "err ENOENT", "mount tree"),
        expect("iopl(3)", "err EPERM", SECCOMP),
        expect("shmget", "err EPERM", SECCOMP),
        expect_contains(
            "tar (GNU defaults)",
            "landed: []",
            "tar's own guards, then mount namespace / read-only root",
        ),
        expect_contains(
            "tar -P (no guards)",
            "landed: []",
            "read-only root, mount namespace (no /var), EXDEV",
        ),
        expect_contains(
            "python tarfile fully_trusted",
            "landed: []",
            "read-only root, mount namespace (no /var), EXDEV",
        ),
        expect_prefix(
            "fork bomb",
            "refused after",
            "TasksMax= (cgroup pids limit)",
        ),
    ]);
    e
}

/// A tar with hostile entries: `..`, absolute paths, a symlink then a file through it, and
/// a hard link to a host file.
const EVIL_TAR: &str = r#"
import io, sys, tarfile
state = sys.argv[2]
def data(t, name, body=b"escaped\n"):
    i = tarfile.TarInfo(name); i.size = len(body); t.addfile(i, io.BytesIO(body))
with tarfile.open(sys.argv[1], "w", format=tarfile.GNU_FORMAT) as t:
    data(t, "../../../../../../../escape-dotdot.txt")
    data(t, "/usr/escape-abs.txt")
    data(t, state + "/overlays/victim/pwned-abs.txt")
    link = tarfile.TarInfo("link"); link.type = tarfile.SYMTYPE; link.linkname = state + "/overlays/victim"
    t.addfile(link)
    data(t, "link/pwned-link.txt")
    hard = tarfile.TarInfo("hl"); hard.type = tarfile.LNKTYPE; hard.linkname = "/etc/passwd"
    t.addfile(hard)
"#;

fn sandbox_processes(sys: &BootedSystem) -> Result<String> {
    let out = sys.run(["pgrep", "-a", "-u", "l4d2-sandbox"])?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main_pid(sys: &BootedSystem, unit: &str) -> Result<u32> {
    let pid: u32 = sys
        .run_stdout(["systemctl", "show", "-p", "MainPID", "--value", unit])?
        .trim()
        .parse()?;
    ensure!(pid != 0, "{unit} has no main process");
    Ok(pid)
}

/// `systemd-analyze security` exposure from its output.
fn exposure(output: &str) -> Result<f64> {
    let line = output
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .with_context(|| format!("no exposure line in:\n{output}"))?;
    let value = line
        .split(": ")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .context("exposure value")?;
    Ok(value.parse()?)
}

#[test]
fn booted_escape_suite() -> Result<()> {
    require_root();
    let sys = boot(builder("escape"))?;
    install_probe(&sys)?;
    let hosts = start_hosts(&sys, PEER_ADDRESSES)?;
    let _abstract = sys.in_netns(|| {
        UnixListener::bind_addr(&UnixAddr::from_abstract_name(ABSTRACT_NAME.as_bytes())?)
    })??;
    let sandbox = lookup_user(sys.root(), "l4d2-sandbox").context("the sandbox user")?;
    let game = lookup_user(sys.root(), "left4me").context("the game user")?;

    // Things to reach for: another overlay, the ledger, a process of the sandbox user.
    let victim_dir = sys.host_path(format!("{STATE_DIR}/overlays/victim"));
    std::fs::create_dir_all(&victim_dir)?;
    std::fs::write(victim_dir.join("secret.txt"), "victim secret\n")?;
    sys.run_ok([
        "chown",
        "-R",
        "left4me:left4me",
        &format!("{STATE_DIR}/overlays/victim"),
    ])?;
    // Root's admin dir, as tmpfiles.d makes it on an installed system.
    sys.run_ok([
        "install", "-d", "-m", "0700", "-o", "root", "-g", "root", ADMIN_DIR,
    ])?;
    define_overlay(&sys, "warmup", &script_overlay("true\n", ""))?;
    build_ok(&sys, "warmup")?; // the ledger now exists
    let db = std::fs::metadata(sys.host_path(LEDGER))?;
    ensure!(
        db.permissions().mode() & 0o777 == 0o600,
        "left4me.db mode {:o}",
        db.permissions().mode()
    );
    sys.run_ok([
        "systemd-run",
        "--unit=escape-victim",
        "-p",
        "User=l4d2-sandbox",
        "sleep",
        "1000",
    ])?;
    let victim_pid = main_pid(&sys, "escape-victim.service")?;

    // Files for the allowed work and the hostile archive, on the test host.
    python(
        &sys,
        "import io, sys, tarfile\n\
         with tarfile.open(sys.argv[1], 'w:gz') as t:\n    \
             i = tarfile.TarInfo('allowed.vpk'); i.size = 6; t.addfile(i, io.BytesIO(b'VPK ok'))",
        &["/tmp/pack.tar.gz"],
    )?;
    hosts
        .files
        .put("/pack.tar.gz", read_inside(&sys, "/tmp/pack.tar.gz")?);
    python(&sys, EVIL_TAR, &["/tmp/evil.tar", STATE_DIR])?;
    hosts
        .files
        .put("/evil.tar", read_inside(&sys, "/tmp/evil.tar")?);
    use_test_resolver(&sys)?;

    // Control: unconfined, every network target answers.
    let mut control = Vec::new();
    for (addr, _) in DENIED_TARGETS {
        let tcp = sys.run_stdout([PROBE, "--label", "c", "tcp", &format!("{addr}:80")])?;
        let udp = sys.run_stdout([PROBE, "--label", "c", "udp", &format!("{addr}:5353")])?;
        ensure!(tcp == "probe c: connected", "control tcp {addr}: {tcp}");
        ensure!(udp == "probe c: reply", "control udp {addr}: {udp}");
        control.push(*addr);
    }
    let other = sys.run_stdout([PROBE, "--label", "c", "tcp", &format!("{FILE_HOST}:8080")])?;
    ensure!(
        other == "probe c: connected",
        "control {FILE_HOST}:8080: {other}"
    );
    let unix = sys.run_stdout([PROBE, "--label", "c", "unix-abstract", ABSTRACT_NAME])?;
    ensure!(
        unix.starts_with("probe c: ok"),
        "control abstract socket: {unix}"
    );
    eprintln!(
        "left4me escape: control (unconfined): tcp/udp answered on {}; 8080 and @{ABSTRACT_NAME} too",
        control.join(" ")
    );

    // --- The main probe build.
    define_overlay(
        &sys,
        "escape-main",
        &script_overlay(&main_script(victim_pid), "[limits]\ntasks_max = 64\n"),
    )?;
    let started = Instant::now();
    let out = sys
        .command(["left4mectl", "overlay", "build", "escape-main"])
        .env("LEFT4ME_CANARY", "should-not-reach-the-build")
        .output()?;
    let output = text(&out);
    eprintln!(
        "left4me escape: main probe build: {} in {:.1}s",
        out.status,
        started.elapsed().as_secs_f64()
    );
    ensure!(
        out.status.success(),
        "the main probe build failed:\n{output}"
    );
    let observed = probe_lines(&output);
    let mut rows = Vec::new();
    check(&expectations(sandbox), &observed, &mut rows);

    // After the build: nothing landed outside, nothing survives, the victim lives.
    let mut after = |label: &str, ok: bool, observed: String, layer: &str| {
        rows.push((
            label.to_owned(),
            "(checked outside)".into(),
            observed,
            layer.to_owned(),
            ok,
        ));
    };
    let victim_files: Vec<String> = std::fs::read_dir(&victim_dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    after(
        "other overlay untouched",
        victim_files == ["secret.txt"],
        format!("{victim_files:?}"),
        "all of the above",
    );
    for path in [
        "/tmp/escape-probe",
        "/escape-dotdot.txt",
        "/usr/escape-abs.txt",
        "/etc/escape-probe",
        "/usr/local/bin/escape-probe",
        "/var/tmp/escape-probe",
    ] {
        let there = exists_inside(&sys, path);
        after(
            &format!("host {path} absent"),
            !there,
            if there { "PRESENT" } else { "absent" }.into(),
            "mount namespace",
        );
    }
    let survivors = sandbox_processes(&sys)?;
    let survivors: Vec<&str> = survivors
        .lines()
        .filter(|l| !l.contains("sleep 1000"))
        .collect();
    after(
        "daemon outlives the build",
        survivors.is_empty(),
        if survivors.is_empty() {
            "none left".into()
        } else {
            survivors.join("; ")
        },
        "the unit's cgroup, killed when the build ends",
    );
    let victim_alive = main_pid(&sys, "escape-victim.service").ok() == Some(victim_pid);
    after(
        "signalled host process still runs",
        victim_alive,
        if victim_alive { "alive" } else { "GONE" }.into(),
        "Landlock signal scope",
    );
    let content = format!("{STATE_DIR}/overlays/escape-main");
    let allowed = std::fs::read(sys.host_path(format!("{content}/left4dead2/addons/allowed.vpk")))
        .unwrap_or_default();
    after(
        "allowed work is in the overlay",
        allowed == b"VPK ok",
        String::from_utf8_lossy(&allowed).into_owned(),
        "allowed",
    );
    let suid = std::fs::metadata(sys.host_path(format!("{content}/suid-target")))?;
    after(
        "no set-uid file on disk",
        suid.permissions().mode() & 0o6000 == 0
            && std::os::unix::fs::MetadataExt::uid(&suid) == game.0,
        format!("mode {:o}", suid.permissions().mode() & 0o7777),
        "seccomp, nosuid, idmap (owned by the game user)",
    );

    // --- A symlink in /overlay pointing at host files: the output check refuses the build.
    define_overlay(
        &sys,
        "escape-links",
        &script_overlay(
            "mkdir -p left4dead2/cfg\n\
             ln -s /etc/shadow left4dead2/cfg/leak.cfg\n\
             ln -s ../../../../../var/lib/left4me-admin/left4me.db left4dead2/db.vpk\n\
             echo linked\n",
            "",
        ),
    )?;
    let links_before = exists_inside(&sys, &format!("{STATE_DIR}/overlays/escape-links"));
    let out = build_fails(&sys, "escape-links", "the output was refused")?;
    let refused = out.contains("symlink left4dead2/cfg/leak.cfg -> /etc/shadow is absolute")
        && out.contains("climbs above the overlay");
    let unchanged = exists_inside(&sys, &format!("{STATE_DIR}/overlays/escape-links"))
        == links_before
        && build_dirs(&sys)?.is_empty();
    after(
        "symlinks in /overlay to host files",
        refused && unchanged,
        if refused {
            "build refused".into()
        } else {
            out.clone()
        },
        "left4mectl output check (absolute / climbing / RESOLVE_BENEATH)",
    );

    // --- A memory bomb. It reports what it got until the kernel kills it. (With cgroup v2
    // systemd also ends the unit, OOMPolicy=stop; on this hybrid-cgroup host only the kill is
    // seen, so the script stops at the first error.)
    define_overlay(
        &sys,
        "escape-memory",
        &script_overlay(
            "set -e\n\
             python3 -c '\n\
             blocks = []\n\
             while True:\n    \
                 blocks.append(bytearray(8 << 20))\n    \
                 print(\"probe memory bomb: at\", 8 * len(blocks), \"MiB\", flush=True)\n'\n\
             echo survived\n",
            "[limits]\nmemory_max = \"128M\"\n",
        ),
    )?;
    let out = build_fails(&sys, "escape-memory", "memory")?;
    // The highest figure printed (bash also echoes the killed command's source).
    let reached = out
        .lines()
        .filter_map(|l| {
            l.split("probe memory bomb: at ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    after(
        "memory bomb (memory_max 128M)",
        !out.contains("survived") && (16..=128).contains(&reached) && build_dirs(&sys)?.is_empty(),
        format!("killed after {reached} MiB; build failed"),
        "MemoryMax= (cgroup OOM kill)",
    );

    // --- Past the time limit, with a daemon; the unit's score is read while it runs.
    define_overlay(
        &sys,
        "escape-timeout",
        &script_overlay(
            &format!("{PROBE} --label daemon daemon /tmp/heartbeat\nsleep 60\necho survived\n"),
            "[limits]\ntimeout = \"4s\"\n",
        ),
    )?;
    let live_score = std::thread::scope(|scope| -> Result<(String, String)> {
        let runner = scope.spawn(|| build_fails(&sys, "escape-timeout", "time limit"));
        let unit = wait_for(
            &sys,
            "escape-timeout",
            "the build unit",
            Duration::from_secs(10),
            || {
                let units = sys.run_stdout([
                    "systemctl",
                    "list-units",
                    "--plain",
                    "--no-legend",
                    "left4me-build-escape-timeout-*",
                ])?;
                Ok(units.split_whitespace().next().map(str::to_owned))
            },
        )?;
        let score = sys.run(["systemd-analyze", "security", "--no-pager", &unit])?;
        let out = runner.join().expect("build thread")?;
        Ok((text(&score), out))
    })?;
    let (live, out) = live_score;
    let survivors = sandbox_processes(&sys)?;
    let survivors: Vec<&str> = survivors
        .lines()
        .filter(|l| !l.contains("sleep 1000"))
        .collect();
    after(
        "past the time limit (timeout 4s) with a daemon",
        !out.contains("survived") && survivors.is_empty(),
        format!("stopped; {} processes left", survivors.len()),
        "RuntimeMaxSec=, the unit's cgroup",
    );
    let live_exposure = exposure(&live)?;

    // --- Filling the disk: a small file system for the overlays, the build must be killed.
    ctl_ok(
        &sys,
        &[
            "overlay",
            "create",
            "escape-disk",
            "--script",
            &format!(
                "{PROBE} --label 'fill the disk' fill /overlay/fill\nsleep 3\necho survived\n"
            ),
        ],
    )?;
    let overlays = format!("{STATE_DIR}/overlays");
    sys.run_ok([
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=96M,mode=0755",
        "tmpfs",
        &overlays,
    ])?;
    let result = build_fails(&sys, "escape-disk", "ran low");
    let free = sys.run_stdout(["df", "--output=avail", "-B1M", &overlays]);
    sys.run_ok(["umount", &overlays])?;
    let out = result?;
    let free: u64 = free?
        .lines()
        .last()
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap_or(0);
    after(
        "fill the disk",
        !out.contains("survived") && free > 90,
        format!("killed; {free} MiB free again"),
        "left4mectl disk guard (keeps 5%, at least 16 MiB free), output removed",
    );

    // --- The report.
    let report = table(&rows);
    let failed = rows.iter().filter(|r| !r.4).count();
    let blocked = rows
        .iter()
        .filter(|r| {
            !r.3.starts_with("allowed") && !r.3.starts_with("ALLOWED") && !r.3.starts_with("(its")
        })
        .count();
    eprintln!(
        "left4me escape: {} checks, {blocked} escapes blocked, {failed} failed:\n{report}",
        rows.len()
    );
    if failed > 0 {
        bail!("{failed} escape checks failed:\n{report}\n--- main build output ---\n{output}");
    }
    ensure!(blocked >= 30, "only {blocked} escape probes");

    // --- The consumer side: an overlay holding symlinks to host files and a set-uid copy
    // of `id` (put there by root, as a manual overlay could be), mounted by an instance.
    let links = sys.host_path(format!("{STATE_DIR}/overlays/links/left4dead2"));
    std::fs::create_dir_all(&links)?;
    let targets = [
        ("leak_shadow", "/etc/shadow"),
        ("leak_db", LEDGER),
        ("leak_victim", "/var/lib/left4me/overlays/victim/secret.txt"),
    ];
    for (name, target) in targets {
        std::os::unix::fs::symlink(target, links.join(name))?;
    }
    std::fs::copy(sys.host_path("/usr/bin/id"), links.join("suid-id"))?;
    sys.run_ok([
        "chown",
        "-R",
        "left4me:left4me",
        &format!("{STATE_DIR}/overlays/links"),
    ])?;
    sys.run_ok([
        "chown",
        "root:root",
        &format!("{STATE_DIR}/overlays/links/left4dead2/suid-id"),
    ])?;
    sys.run_ok([
        "chmod",
        "4755",
        &format!("{STATE_DIR}/overlays/links/left4dead2/suid-id"),
    ])?;
    ctl_ok(&sys, &["overlay", "create", "links"])?;
    ctl_ok(
        &sys,
        &[
            "create",
            "links1",
            "--port",
            "27015",
            "--overlay",
            "overlays/links",
        ],
    )?;
    ctl_ok(&sys, &["start", "links1"])?;
    let game_pid = main_pid(&sys, "left4me-server@links1.service")?;
    let merged = format!("{STATE_DIR}/runtime/links1/merged/left4dead2");
    let as_game = |argv: &[&str]| -> Result<String> {
        let pid = game_pid.to_string();
        let uid = game.0.to_string();
        let gid = game.1.to_string();
        let mut full = vec![
            "nsenter", "-t", &pid, "-m", "-U", "-S", &uid, "-G", &gid, "--",
        ];
        full.extend_from_slice(argv);
        let out = sys.run(full)?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr
            .lines()
            .next()
            .map(|l| l.rsplit(": ").next().unwrap_or(l));
        Ok(match (stdout.is_empty(), why) {
            (true, Some(why)) => format!("exit {} ({why})", out.status.code().unwrap_or(-1)),
            _ => format!("exit {} {stdout}", out.status.code().unwrap_or(-1)),
        })
    };
    let mut consumer = Vec::new();
    for (name, target) in targets {
        let through = as_game(&["cat", &format!("{merged}/{name}")])?;
        let direct = as_game(&["cat", target])?;
        consumer.push((
            format!("game reads {name} -> {target}"),
            direct.clone(),
            through.clone(),
            "symlink resolves in the game's own mount namespace, with its credentials".to_owned(),
            through == direct,
        ));
    }
    let id = as_game(&[&format!("{merged}/suid-id"), "-u"])?;
    consumer.push((
        "game runs a set-uid root binary from the overlay".to_owned(),
        format!("exit 0 {}", game.0),
        id.clone(),
        "the supervisor mounts the overlay nosuid".to_owned(),
        id == format!("exit 0 {}", game.0),
    ));
    let options = booted_support::merged_mounts(&sys, "links1")?;
    let mountinfo = std::fs::read_to_string(format!("/proc/{}/mountinfo", sys.pid()))?;
    let flags = mountinfo
        .lines()
        .find(|l| l.contains(&format!("{STATE_DIR}/runtime/links1/merged ")))
        .and_then(|l| l.split(' ').nth(5))
        .unwrap_or("")
        .to_owned();
    consumer.push((
        "merged mount flags".to_owned(),
        "nosuid,nodev".to_owned(),
        flags.clone(),
        "left4me-supervisor prepare".to_owned(),
        flags.contains("nosuid") && flags.contains("nodev") && !options.is_empty(),
    ));
    ctl_ok(&sys, &["stop", "links1"])?;
    let consumer_table = table(&consumer);
    eprintln!(
        "left4me escape: consumer side (instance links1, seen from the game's unit):\n{consumer_table}"
    );
    ensure!(
        consumer.iter().all(|r| r.4),
        "consumer side:\n{consumer_table}"
    );

    // --- The build unit's security score, as a unit file and live.
    let unit_file = ctl_ok(&sys, &["overlay", "build", "escape-main", "--unit-file"])?;
    std::fs::write(
        sys.host_path("/tmp/left4me-build-escape-main.service"),
        &unit_file,
    )?;
    let offline = text(&sys.run([
        "systemd-analyze",
        "security",
        "--no-pager",
        "--offline=yes",
        "/tmp/left4me-build-escape-main.service",
    ])?);
    let file_exposure = exposure(&offline)?;
    ctl_ok(
        &sys,
        &[
            "overlay",
            "create",
            "offline",
            "--no-network",
            "--script",
            "true",
        ],
    )?;
    let offline_unit = ctl_ok(&sys, &["overlay", "build", "offline", "--unit-file"])?;
    std::fs::write(
        sys.host_path("/tmp/left4me-build-offline.service"),
        &offline_unit,
    )?;
    let no_network = exposure(&text(&sys.run([
        "systemd-analyze",
        "security",
        "--no-pager",
        "--offline=yes",
        "/tmp/left4me-build-offline.service",
    ])?))?;
    eprintln!(
        "left4me escape: systemd-analyze security of the build unit: {file_exposure} (unit file), \
         {live_exposure} (the live transient unit), {no_network} (network = false)\n{}",
        offline
            .lines()
            .filter(|l| l.contains('✗') || l.contains("Overall"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    ensure!(
        file_exposure <= MAX_EXPOSURE,
        "build unit exposure {file_exposure} > {MAX_EXPOSURE}"
    );
    ensure!(
        live_exposure <= MAX_EXPOSURE,
        "live build unit exposure {live_exposure} > {MAX_EXPOSURE}"
    );
    ensure!(no_network <= file_exposure);

    sys.run_ok(["systemctl", "stop", "escape-victim.service"])?;
    drop(hosts);
    booted_support::finish(sys, &[])
}
