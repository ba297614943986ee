//! Which layer stops which probe: every probe runs under the mount namespace alone (as root),
//! then with exactly one more layer (dropped credentials, Landlock, seccomp), then with all of
//! them, each run a fresh child of `left4me_sandbox::run`. The table is the evidence behind the
//! "stopped by" column of `privileged_probes`, and it proves the probes can succeed: where the
//! mount-only column says `ok`, a broken layer would let the attack through. The matrix runs
//! under every profile: the same everywhere, except the i386 gate. Needs root.

mod common;

use std::ffi::OsString;
use std::io::Read;

use clap::ValueEnum as _;
use common::{
    Listeners, OWNER_USER, PROBE, Report, SANDBOX_USER, TestEnv, Victim, abstract_listener,
    probe_dir,
};
use left4me_sandbox::policy::Profile;
use left4me_sandbox::{Invocation, Layers, Network, Outcome, Policy};

const COLUMNS: [(&str, Layers); 5] = [
    ("mounts", Layers::NONE),
    (
        "+creds",
        Layers {
            credentials: true,
            landlock: false,
            seccomp: false,
        },
    ),
    (
        "+landlock",
        Layers {
            credentials: false,
            landlock: true,
            seccomp: false,
        },
    ),
    (
        "+seccomp",
        Layers {
            credentials: false,
            landlock: false,
            seccomp: true,
        },
    ),
    ("all", Layers::ALL),
];

/// Runs the probe with `layers`, capturing its stdout through a file on fd 1 (and its stderr,
/// the runner's log line, in another, to keep the table readable).
fn run_probe(invocation: &Invocation, layers: Layers, capture: &std::path::Path) -> String {
    let file = std::fs::File::create(capture).unwrap();
    let log = std::fs::File::create(capture.with_extension("log")).unwrap();
    let saved_out = rustix::io::dup(rustix::stdio::stdout()).unwrap();
    let saved_err = rustix::io::dup(rustix::stdio::stderr()).unwrap();
    rustix::stdio::dup2_stdout(&file).unwrap();
    rustix::stdio::dup2_stderr(&log).unwrap();
    let outcome = left4me_sandbox::run(invocation, layers);
    rustix::stdio::dup2_stdout(&saved_out).unwrap();
    rustix::stdio::dup2_stderr(&saved_err).unwrap();
    let mut text = String::new();
    std::fs::File::open(capture)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    match outcome.unwrap() {
        Outcome::Exited(0) => text.lines().next().unwrap_or("").to_owned(),
        Outcome::Exited(code) => format!("exit {code}"),
        Outcome::Signaled(signal) => format!("signal {signal}"),
        Outcome::Failed { message, .. } => format!("failed: {message}"),
    }
}

fn main() {
    if common::filtered_out("privileged_layers") {
        return;
    }
    let env = TestEnv::new("layers");
    let listeners = Listeners::new();
    let out = env.output("out");
    std::fs::copy(PROBE, out.join("copied-probe")).unwrap();
    std::os::unix::fs::chown(
        out.join("copied-probe"),
        Some(common::OWNER_UID),
        Some(common::OWNER_UID),
    )
    .unwrap();
    let victim = Victim::start();
    let victim_pid = victim.pid().to_string();
    let abstract_name = format!("left4me-sbxlayers-{}", std::process::id());
    let _abstract = abstract_listener(&abstract_name);
    let blocked = format!("127.0.0.1:{}", listeners.blocked_port());
    let allowed = format!("127.0.0.1:{}", listeners.allowed_port());
    let capture = env.base.join("stdout");
    // A tool kit in the host's /tmp, granted with --allow-exec: it must appear at its own path
    // on top of the sandbox's private /tmp (which hides everything else of the host's /tmp).
    let kit = std::path::PathBuf::from(format!("/tmp/left4me-sbxkit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&kit);
    std::fs::create_dir_all(kit.join("bin")).unwrap();
    std::fs::copy("/bin/true", kit.join("bin/tool")).unwrap();
    let host_tmp_file = format!("{}-host-file", kit.display());
    std::fs::write(&host_tmp_file, "the host's /tmp\n").unwrap();
    let kit_tool = kit.join("bin/tool").display().to_string();
    let kit_write = kit.join("bin/written").display().to_string();

    // probe, args, expected result per column (mounts, +creds, +landlock, +seccomp, all), and
    // the conclusion; the same under every profile.
    let rows: Vec<(&str, Vec<&str>, [&str; 5], &str)> = vec![
        (
            "read /etc/hostname",
            vec!["read", "/etc/hostname"],
            ["ok", "ok", "err EACCES", "ok", "err EACCES"],
            "Landlock",
        ),
        (
            "read /etc/shadow",
            vec!["read", "/etc/shadow"],
            ["ok", "err EACCES", "err EACCES", "ok", "err EACCES"],
            "DAC once root is gone; Landlock",
        ),
        (
            "read /proc/1/cmdline",
            vec!["read", "/proc/1/cmdline"],
            ["ok", "err ENOENT", "err EACCES", "ok", "err ENOENT"],
            "hidepid once root is gone; Landlock",
        ),
        (
            "write /etc/probe",
            vec!["write", "/etc/probe"],
            ["err EROFS"; 5],
            "read-only root",
        ),
        (
            "create a file in /overlay",
            vec!["create-new", "/overlay"],
            [
                "err EOVERFLOW",
                "ok",
                "err EOVERFLOW",
                "err EOVERFLOW",
                "ok",
            ],
            "(harmless) root is not in the idmap; the sandbox uid is",
        ),
        (
            "write /dev/urandom",
            vec!["append", "/dev/urandom"],
            ["ok", "ok", "err EACCES", "ok", "err EACCES"],
            "Landlock",
        ),
        (
            "exec /overlay/copied-probe",
            vec!["exec", "/overlay/copied-probe"],
            ["err EACCES"; 5],
            "noexec mount",
        ),
        (
            "connect allowed port",
            vec!["tcp", &allowed],
            ["connected"; 5],
            "(harmless)",
        ),
        (
            "connect other port",
            vec!["tcp", &blocked],
            [
                "connected",
                "connected",
                "err EACCES",
                "connected",
                "err EACCES",
            ],
            "Landlock",
        ),
        (
            "MPTCP connect other port",
            vec!["connect-proto", "262", &blocked],
            ["ok", "ok", "ok", "err EPERM (socket)", "err EPERM (socket)"],
            "seccomp (slips past Landlock)",
        ),
        (
            "TCP bind",
            vec!["bind-tcp", "127.0.0.1:0"],
            ["ok", "ok", "err EACCES", "err EPERM", "err EPERM"],
            "seccomp (no bind at all); Landlock",
        ),
        (
            "listen without bind",
            vec!["listen"],
            ["ok", "ok", "ok", "err EPERM", "err EPERM"],
            "seccomp (auto-bind slips past Landlock)",
        ),
        (
            "AF_PACKET socket",
            vec!["socket", "17", "3", "0"],
            ["ok", "err EPERM", "ok", "err EPERM", "err EPERM"],
            "no CAP_NET_RAW; seccomp",
        ),
        (
            "AF_NETLINK socket",
            vec!["socket", "16", "3", "0"],
            ["ok", "ok", "ok", "err EPERM", "err EPERM"],
            "seccomp",
        ),
        (
            "abstract unix connect outside",
            vec!["unix-abstract", &abstract_name],
            ["ok", "ok", "err EPERM", "err EPERM", "err EPERM"],
            "Landlock scope; seccomp",
        ),
        (
            "kill same-uid process outside (sig 0)",
            vec!["kill", &victim_pid, "0"],
            ["ok", "ok", "err EPERM", "ok", "err EPERM"],
            "Landlock scope",
        ),
        (
            "ptrace same-uid process outside",
            vec!["ptrace", &victim_pid],
            ["ok", "ok", "err EPERM", "err EPERM", "err EPERM"],
            "Landlock; seccomp",
        ),
        (
            "unshare(CLONE_NEWUSER)",
            vec!["unshare", "268435456"],
            ["ok", "ok", "ok", "err EPERM", "err EPERM"],
            "seccomp",
        ),
        (
            "clone(CLONE_NEWUSER)",
            vec!["clone", "268435456"],
            ["ok", "ok", "ok", "err EPERM", "err EPERM"],
            "seccomp",
        ),
        (
            "clone3",
            vec!["clone3"],
            ["ok", "ok", "ok", "err ENOSYS", "err ENOSYS"],
            "seccomp (ENOSYS)",
        ),
        (
            "mount tmpfs",
            vec!["mount-tmpfs", "/tmp/m"],
            ["ok", "err EPERM", "err EPERM", "err EPERM", "err EPERM"],
            "no CAP_SYS_ADMIN; Landlock; seccomp",
        ),
        (
            "io_uring_setup",
            vec!["io-uring"],
            ["ok", "ok", "ok", "err EPERM", "err EPERM"],
            "seccomp",
        ),
        (
            "chmod 4755",
            vec!["chmod-suid", "/tmp/s"],
            ["ok", "ok", "ok", "err EPERM", "err EPERM"],
            "seccomp",
        ),
        (
            "open(O_CREAT, 04755)",
            vec!["create-suid", "/tmp/s2"],
            ["ok", "ok", "ok", "err EPERM", "err EPERM"],
            "seccomp",
        ),
        (
            "TIOCSTI (on a pipe: ENOTTY if it got through)",
            vec!["tiocsti"],
            [
                "err ENOTTY",
                "err ENOTTY",
                "err ENOTTY",
                "err EPERM",
                "err EPERM",
            ],
            "seccomp",
        ),
        (
            "memfd_create",
            vec!["memfd"],
            ["ok", "ok", "ok", "err EPERM", "err EPERM"],
            "seccomp",
        ),
        (
            "setuid(0)",
            vec!["setuid0"],
            ["ok", "err EPERM", "ok", "err EPERM", "err EPERM"],
            "no CAP_SETUID; seccomp",
        ),
        (
            "exec a tool kit in the host's /tmp (--allow-exec)",
            vec!["exec", &kit_tool],
            ["ok exit status: 0"; 5],
            "(harmless) mounted over the private /tmp",
        ),
        (
            "write into the tool kit",
            vec!["write", &kit_write],
            ["err EROFS"; 5],
            "read-only bind",
        ),
        (
            "see the host's /tmp beside the kit",
            vec!["exists", &host_tmp_file],
            ["err ENOENT"; 5],
            "private /tmp",
        ),
        (
            "write /tmp beside the kit",
            vec!["write", "/tmp/beside-the-kit"],
            ["ok"; 5],
            "(harmless) private /tmp",
        ),
        (
            "personality(READ_IMPLIES_EXEC)",
            vec!["personality"],
            ["ok", "ok", "ok", "err EPERM", "err EPERM"],
            "seccomp (LockPersonality=)",
        ),
        (
            "adjtimex (a read)",
            vec!["adjtimex"],
            ["ok", "ok", "ok", "err EPERM", "err EPERM"],
            "seccomp (ProtectClock=)",
        ),
        (
            "unshare(CLONE_NEWUTS)",
            vec!["unshare", "67108864"],
            ["ok", "err EPERM", "ok", "err EPERM", "err EPERM"],
            "no CAP_SYS_ADMIN; seccomp (RestrictNamespaces=)",
        ),
        (
            "setns(/proc/self/ns/net)",
            vec!["setns", "/proc/self/ns/net"],
            ["ok", "err EPERM", "ok", "err EPERM", "err EPERM"],
            "no CAP_SYS_ADMIN; seccomp (RestrictNamespaces=)",
        ),
        (
            "inherited descriptors",
            vec!["fds"],
            ["ok none"; 5],
            "close_range (always on)",
        ),
    ];

    let mut report = Report::default();
    for profile in Profile::value_variants() {
        // W^X memory (refused under `script` only) and the i386 gate: refused as a whole under
        // `script`, the allow-list by its i386 numbers under `steamcmd` ("ok N" is any number
        // the call returned).
        let i386: [(&str, Vec<&str>, [&str; 5], &str); 6] = match profile {
            Profile::Script => [
                (
                    "mmap(PROT_WRITE|PROT_EXEC)",
                    vec!["mmap-wx"],
                    ["ok", "ok", "ok", "err EACCES", "err EACCES"],
                    "PR_SET_MDWE with the filter (MemoryDenyWriteExecute=)",
                ),
                (
                    "mprotect(RW -> RX)",
                    vec!["mprotect-exec"],
                    ["ok", "ok", "ok", "err EACCES", "err EACCES"],
                    "PR_SET_MDWE with the filter (MemoryDenyWriteExecute=)",
                ),
                (
                    "int 0x80: i386 getpid",
                    vec!["int80", "20"],
                    ["ok N", "ok N", "ok N", "signal 31", "signal 31"],
                    "seccomp arch check",
                ),
                (
                    "int 0x80: i386 unshare(CLONE_NEWUSER)",
                    vec!["int80", "310", "268435456"],
                    ["ok 0", "ok 0", "ok 0", "signal 31", "signal 31"],
                    "seccomp arch check",
                ),
                (
                    "int 0x80: i386 socketcall(SYS_SOCKET, NULL)",
                    vec!["int80", "102", "1", "0"],
                    [
                        "err EFAULT",
                        "err EFAULT",
                        "err EFAULT",
                        "signal 31",
                        "signal 31",
                    ],
                    "seccomp arch check",
                ),
                (
                    "int 0x80: i386 socketcall(SYS_BIND, NULL)",
                    vec!["int80", "102", "2", "0"],
                    [
                        "err EFAULT",
                        "err EFAULT",
                        "err EFAULT",
                        "signal 31",
                        "signal 31",
                    ],
                    "seccomp arch check",
                ),
            ],
            Profile::Steamcmd => [
                (
                    "mmap(PROT_WRITE|PROT_EXEC)",
                    vec!["mmap-wx"],
                    ["ok"; 5],
                    "(allowed) SteamCMD may generate code",
                ),
                (
                    "mprotect(RW -> RX)",
                    vec!["mprotect-exec"],
                    ["ok"; 5],
                    "(allowed) SteamCMD may generate code",
                ),
                (
                    "int 0x80: i386 getpid",
                    vec!["int80", "20"],
                    ["ok N"; 5],
                    "(harmless) i386 admitted",
                ),
                (
                    "int 0x80: i386 unshare(CLONE_NEWUSER)",
                    vec!["int80", "310", "268435456"],
                    ["ok 0", "ok 0", "ok 0", "err EPERM", "err EPERM"],
                    "seccomp (the allow-list by i386 numbers)",
                ),
                (
                    "int 0x80: i386 socketcall(SYS_SOCKET, NULL)",
                    vec!["int80", "102", "1", "0"],
                    ["err EFAULT"; 5],
                    "(allowed) i386 glibc's socket(); EFAULT: no argument block",
                ),
                (
                    "int 0x80: i386 socketcall(SYS_BIND, NULL)",
                    vec!["int80", "102", "2", "0"],
                    [
                        "err EFAULT",
                        "err EFAULT",
                        "err EFAULT",
                        "err EPERM",
                        "err EPERM",
                    ],
                    "seccomp (socketcall by sub-call: no bind)",
                ),
            ],
        };
        let mut policy = Policy::new(
            *profile,
            Network::Tcp {
                ports: vec![listeners.allowed_port()],
            },
        );
        policy.extra_exec = vec![probe_dir(), kit.clone()];
        println!(
            "\nprofile {profile}\n{:<44} {}",
            "probe",
            COLUMNS
                .iter()
                .map(|(name, _)| format!("{name:<19}"))
                .collect::<String>()
        );
        for (what, args, expected, layer) in rows.iter().chain(&i386) {
            let mut command: Vec<OsString> = vec![PROBE.into()];
            command.extend(args.iter().map(OsString::from));
            let invocation = Invocation {
                output: out.clone(),
                sandbox_user: SANDBOX_USER.into(),
                owner_user: OWNER_USER.into(),
                policy: policy.clone(),
                lowers: Vec::new(),
                home: None,
                command,
            };
            let mut cells = Vec::new();
            let mut ok = true;
            for ((_, layers), want) in COLUMNS.iter().zip(expected) {
                let got = run_probe(&invocation, *layers, &capture);
                let matches = if *want == "ok N" {
                    got.strip_prefix("ok ")
                        .is_some_and(|n| n.parse::<i64>().is_ok())
                } else {
                    got == *want
                };
                ok &= matches;
                cells.push(if matches {
                    got.chars().take(18).collect::<String>()
                } else {
                    format!("{got} (want {want})")
                });
            }
            let line = cells.iter().map(|c| format!("{c:<19}")).collect::<String>();
            report.check(&format!("{profile}: {what}"), &line, ok, layer);
        }
    }
    drop(victim);
    let _ = std::fs::remove_dir_all(&kit);
    let _ = std::fs::remove_file(&host_tmp_file);
    report.finish("privileged_layers", env);
}
