//! The runner binary against harmless and malicious probes, each in a fresh sandbox (one
//! `left4me-sandbox` process per probe). Needs root. For every malicious probe the table names
//! the layer that stops it; `privileged_layers` shows the same probes against one layer at a
//! time, which is where those attributions are proven.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap::ValueEnum as _;
use common::{
    Listeners, OWNER_UID, OWNER_USER, PROBE, RUNNER, Report, SANDBOX_UID, SANDBOX_USER, TestEnv,
    Victim, abstract_listener, probe_dir,
};
use left4me_sandbox::policy::Profile;

const SECRET: (&str, &str) = ("LEFT4ME_TEST_SECRET", "hunter2");

struct Sandbox<'a> {
    output: &'a Path,
    extra: Vec<String>,
}

impl Sandbox<'_> {
    fn command(&self, command: &[&str]) -> Command {
        let mut cmd = Command::new(RUNNER);
        cmd.arg("--output")
            .arg(self.output)
            .args([
                "--user",
                SANDBOX_USER,
                "--owner",
                OWNER_USER,
                "--allow-exec",
            ])
            .arg(probe_dir())
            .args(&self.extra)
            .arg("--")
            .args(command)
            .env(SECRET.0, SECRET.1);
        cmd
    }

    fn run(&self, command: &[&str]) -> Output {
        self.command(command).output().unwrap()
    }

    /// Runs the probe; returns its line (or `killed by signal N` / `exit N: stderr`).
    fn probe(&self, args: &[&str]) -> String {
        let mut command = vec![PROBE];
        command.extend_from_slice(args);
        describe(&self.run(&command))
    }
}

fn describe(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0) => stdout.lines().next().unwrap_or("").to_owned(),
        Some(code) if code > 128 => format!("killed by signal {}", code - 128),
        Some(code) => format!(
            "exit {code}: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        None => "runner killed".into(),
    }
}

/// A minimal HTTP/1.0 file server on the allowed port, in a thread.
fn serve(listener: TcpListener, root: PathBuf) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) <= 2 {
                    break;
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let file = root.join(path.trim_start_matches('/'));
            let response = match std::fs::read(&file) {
                Ok(body) => {
                    let mut r = format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend(body);
                    r
                }
                Err(_) => b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
}

/// Runs `script` with `sh -c` in `dir` (given as the working directory, not in the script, so
/// any path works: spaces, quotes).
fn sh(dir: &std::path::Path, script: &str) {
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

fn main() {
    if common::filtered_out("privileged_probes") {
        return;
    }
    let env = TestEnv::new("probes");
    let listeners = Listeners::new();
    let allowed = listeners.allowed_port().to_string();
    let blocked = listeners.blocked_port().to_string();
    let out = env.output("out");
    let sandbox = Sandbox {
        output: &out,
        extra: vec!["--allow-port".into(), allowed.clone()],
    };
    let mut report = Report::default();
    println!("left4me-sandbox probes (uid {SANDBOX_UID} in the sandbox, owner uid {OWNER_UID})");

    // --- harmless ---------------------------------------------------------------------
    let log = sandbox.run(&[PROBE, "creds"]);
    let stderr = String::from_utf8_lossy(&log.stderr);
    report.check(
        "log line reports Landlock FullyEnforced",
        stderr.lines().next().unwrap_or(""),
        stderr.contains("landlock FullyEnforced (kernel ABI 7"),
        "runner log",
    );
    let creds = describe(&log);
    report.check(
        "credentials: sandbox uid, no caps in any set",
        &creds,
        creds
            == format!(
                "ok uid={0},{0},{0} gid={0},{0},{0} groups=0 caps=0/0/0 bounding=0 ambient=0 nnp=1 \
                 seccomp=2",
                SANDBOX_UID
            ),
        "dropped privileges",
    );
    let got = sandbox.probe(&["write", "/overlay/hello.txt"]);
    let meta = std::fs::metadata(out.join("hello.txt"));
    let owner = meta
        .as_ref()
        .map(|m| format!("{}:{}", m.uid(), m.gid()))
        .unwrap_or_else(|e| e.to_string());
    report.check(
        "write /overlay/hello.txt (on disk owner uid:gid)",
        &format!("{got}, {owner}"),
        got == "ok" && owner == format!("{OWNER_UID}:{OWNER_UID}"),
        "idmapped /overlay",
    );
    let got = sandbox.probe(&["write", "/tmp/scratch"]);
    report.check("write /tmp/scratch", &got, got == "ok", "private tmpfs");
    let got = sandbox.probe(&["tcp", &format!("127.0.0.1:{allowed}")]);
    report.check(
        "TCP connect to the allowed port",
        &got,
        got == "connected",
        "Landlock port rule",
    );
    let got = sandbox.probe(&["fionread"]);
    report.check(
        "ordinary ioctl (FIONREAD)",
        &got,
        got == "ok",
        "seccomp allows",
    );

    // Inherited descriptor: prove the probe would see it, then that the sandbox closes it.
    let leaked = std::fs::File::open("/etc/hostname").unwrap();
    rustix::io::fcntl_setfd(&leaked, rustix::io::FdFlags::empty()).unwrap();
    let fd = leaked.as_raw_fd().to_string();
    let control = describe(&Command::new(PROBE).arg("fds").output().unwrap());
    report.check(
        &format!("control: unsandboxed probe sees inherited fd {fd}"),
        &control,
        control.split([' ', ',']).any(|f| f == fd),
        "(control)",
    );
    let got = sandbox.probe(&["fds"]);
    report.check(
        "inherited descriptors above 2",
        &got,
        got == "ok none",
        "close_range",
    );
    drop(leaked);

    let control = describe(
        &Command::new(PROBE)
            .arg("env")
            .env(SECRET.0, SECRET.1)
            .output()
            .unwrap(),
    );
    report.check(
        "control: unsandboxed probe sees the secret",
        "",
        control.contains(SECRET.1),
        "(control)",
    );
    let got = sandbox.probe(&["env"]);
    report.check(
        "environment",
        &got,
        got == "ok HOME=/tmp LANG=C.UTF-8 OVERLAY=/overlay PATH=/usr/bin:/bin",
        "scrubbed",
    );

    // --- malicious ----------------------------------------------------------------------
    let mut victim = Victim::start();
    let victim_pid = victim.pid().to_string();
    let abstract_name = format!("left4me-sbxtest-{}", std::process::id());
    let _abstract = abstract_listener(&abstract_name);
    std::fs::copy(PROBE, out.join("copied-probe")).unwrap();
    std::os::unix::fs::chown(out.join("copied-probe"), Some(OWNER_UID), Some(OWNER_UID)).unwrap();
    let blocked_addr = format!("127.0.0.1:{blocked}");
    let cases: &[(&str, &[&str], &[&str], &str)] = &[
        (
            "read /etc/shadow",
            &["read", "/etc/shadow"],
            &["err EACCES"],
            "Landlock (and DAC)",
        ),
        (
            "read /etc/hostname (world-readable, not in policy)",
            &["read", "/etc/hostname"],
            &["err EACCES"],
            "Landlock",
        ),
        (
            "write /etc/probe",
            &["write", "/etc/probe"],
            &["err EROFS"],
            "read-only root (and Landlock)",
        ),
        (
            "write /usr/probe",
            &["write", "/usr/probe"],
            &["err EROFS"],
            "read-only bind (and Landlock)",
        ),
        (
            "write to /dev/urandom (read-only device)",
            &["append", "/dev/urandom"],
            &["err EACCES"],
            "Landlock",
        ),
        (
            "list /home (not in the view)",
            &["read-dir", "/home"],
            &["err ENOENT"],
            "mount tree",
        ),
        (
            "read /proc/1/cmdline",
            &["read", "/proc/1/cmdline"],
            &["err ENOENT"],
            "procfs hidepid=invisible (and Landlock)",
        ),
        (
            "exec a binary copied into /overlay",
            &["exec", "/overlay/copied-probe"],
            &["err EACCES"],
            "noexec mount and Landlock",
        ),
        (
            "TCP connect to a non-allowed port",
            &["tcp", &blocked_addr],
            &["err EACCES"],
            "Landlock",
        ),
        (
            "TCP Fast Open (sendto MSG_FASTOPEN) to a non-allowed port",
            &["sendto-fastopen", &blocked],
            &["err EPERM"],
            "seccomp (send flags)",
        ),
        (
            "MPTCP connect to a non-allowed port",
            &["connect-proto", "262", &blocked_addr],
            &["err EPERM (socket)"],
            "seccomp (socket protocol)",
        ),
        (
            "SCTP socket",
            &["socket", "2", "1", "132"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "raw ICMP socket",
            &["socket", "2", "3", "1"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "AF_PACKET socket",
            &["socket", "17", "3", "0"],
            &["err EPERM"],
            "seccomp (and no CAP_NET_RAW)",
        ),
        (
            "AF_NETLINK socket",
            &["socket", "16", "3", "0"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "AF_UNIX socket",
            &["socket", "1", "1", "0"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "abstract unix connect to an outside listener",
            &["unix-abstract", &abstract_name],
            &["err EPERM"],
            "seccomp (Landlock scope too)",
        ),
        (
            "TCP bind",
            &["bind-tcp", "127.0.0.1:0"],
            &["err EPERM"],
            "seccomp (and Landlock)",
        ),
        (
            "TCP listen without bind (auto-bind)",
            &["listen"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "unshare(CLONE_NEWUSER)",
            &["unshare", "268435456"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "unshare(CLONE_NEWNS)",
            &["unshare", "131072"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "mount a tmpfs",
            &["mount-tmpfs", "/tmp/m"],
            &["err EPERM"],
            "seccomp (and no CAP_SYS_ADMIN, Landlock)",
        ),
        (
            "clone(CLONE_NEWUSER)",
            &["clone", "268435456"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "clone3 (flags unreadable to the filter)",
            &["clone3"],
            &["err ENOSYS"],
            "seccomp",
        ),
        ("io_uring_setup", &["io-uring"], &["err EPERM"], "seccomp"),
        (
            "ptrace(PTRACE_ATTACH) the runner (parent)",
            &["ptrace-parent"],
            &["err EPERM"],
            "seccomp (and Landlock, DAC)",
        ),
        (
            "ptrace(PTRACE_ATTACH) a same-uid process outside",
            &["ptrace", &victim_pid],
            &["err EPERM"],
            "seccomp (and Landlock)",
        ),
        (
            "chmod 4755 in /overlay",
            &["chmod-suid", "/overlay/suid"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "open(O_CREAT, 04755) in /overlay",
            &["create-suid", "/overlay/suid2"],
            &["err EPERM"],
            "seccomp",
        ),
        ("TIOCSTI", &["tiocsti"], &["err EPERM"], "seccomp"),
        (
            "kill a same-uid process outside",
            &["kill", &victim_pid, "15"],
            &["err EPERM"],
            "Landlock signal scope",
        ),
        (
            "memfd_create (fileless exec)",
            &["memfd"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "setuid(0)",
            &["setuid0"],
            &["err EPERM"],
            "seccomp (and no CAP_SETUID)",
        ),
        // systemd's hardening directives, one row each (the parity table of the README)
        (
            "LockPersonality: personality(READ_IMPLIES_EXEC)",
            &["personality"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "RestrictRealtime: sched_setscheduler(SCHED_FIFO)",
            &["sched-fifo"],
            &["err EPERM"],
            "seccomp (and RLIMIT_RTPRIO 0)",
        ),
        (
            "ProtectClock: clock_settime(CLOCK_REALTIME)",
            &["clock-settime"],
            &["err EPERM"],
            "seccomp (and no CAP_SYS_TIME)",
        ),
        (
            "ProtectClock: adjtimex",
            &["adjtimex"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "ProtectClock: /dev/rtc0",
            &["exists", "/dev/rtc0"],
            &["err ENOENT"],
            "mount tree (no such device)",
        ),
        (
            "ProtectKernelTunables: write /proc/sys/kernel/ostype",
            &["write", "/proc/sys/kernel/ostype"],
            &["err ENOENT"],
            "procfs subset=pid (and read-only, Landlock)",
        ),
        (
            "ProtectKernelTunables: /sys",
            &["read-dir", "/sys"],
            &["err ENOENT"],
            "mount tree",
        ),
        (
            "ProtectKernelModules: finit_module",
            &["init-module"],
            &["err EPERM"],
            "seccomp (and no CAP_SYS_MODULE)",
        ),
        (
            "ProtectKernelLogs: syslog(SIZE_BUFFER)",
            &["syslog"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "ProtectKernelLogs: read /dev/kmsg",
            &["read", "/dev/kmsg"],
            &["err ENOENT"],
            "mount tree",
        ),
        (
            "ProtectControlGroups: /sys/fs/cgroup",
            &["read-dir", "/sys/fs/cgroup"],
            &["err ENOENT"],
            "mount tree",
        ),
        (
            "ProtectHostname: sethostname(the current name)",
            &["sethostname"],
            &["err EPERM"],
            "seccomp (and no CAP_SYS_ADMIN)",
        ),
        (
            "RestrictNamespaces: unshare(CLONE_NEWUTS)",
            &["unshare", "67108864"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "RestrictNamespaces: unshare(CLONE_NEWIPC)",
            &["unshare", "134217728"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "RestrictNamespaces: unshare(CLONE_NEWPID)",
            &["unshare", "536870912"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "RestrictNamespaces: unshare(CLONE_NEWNET)",
            &["unshare", "1073741824"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "RestrictNamespaces: unshare(CLONE_NEWCGROUP)",
            &["unshare", "33554432"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "RestrictNamespaces: unshare(CLONE_NEWTIME)",
            &["unshare", "128"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "RestrictNamespaces: clone(CLONE_NEWNET)",
            &["clone", "1073741824"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "RestrictNamespaces: setns(/proc/self/ns/net)",
            &["setns", "/proc/self/ns/net"],
            &["err EPERM", "err EACCES (open)"],
            "seccomp",
        ),
        (
            "PrivateDevices: /dev/mem",
            &["exists", "/dev/mem"],
            &["err ENOENT"],
            "mount tree (five devices only)",
        ),
        (
            "PrivateDevices: list /dev",
            &["read-dir", "/dev"],
            &["err EACCES"],
            "Landlock",
        ),
        (
            "PrivateDevices: iopl(3)",
            &["iopl"],
            &["err EPERM"],
            "seccomp (and no CAP_SYS_RAWIO)",
        ),
        (
            "PrivateIPC: shmget(IPC_PRIVATE)",
            &["shmget"],
            &["err EPERM"],
            "seccomp",
        ),
        (
            "KeyringMode: keyctl(session keyring)",
            &["keyctl"],
            &["err EPERM"],
            "seccomp",
        ),
        ("SystemCallFilter: bpf", &["bpf"], &["err EPERM"], "seccomp"),
        (
            "SystemCallFilter: perf_event_open",
            &["perf"],
            &["err EPERM"],
            "seccomp",
        ),
    ];
    // Every profile stops the same escapes; they differ only at the i386 gate (a 64-bit probe
    // can enter it with `int 0x80`).
    for profile in Profile::value_variants() {
        let i386: [(&str, &[&str], &[&str], &str); 5] = match profile {
            Profile::Script => [
                (
                    "MemoryDenyWriteExecute: PR_GET_MDWE",
                    &["mdwe"],
                    &["ok 1"],
                    "PR_SET_MDWE (REFUSE_EXEC_GAIN)",
                ),
                (
                    "MemoryDenyWriteExecute: mmap(PROT_WRITE|PROT_EXEC)",
                    &["mmap-wx"],
                    &["err EACCES"],
                    "PR_SET_MDWE",
                ),
                (
                    "MemoryDenyWriteExecute: mprotect(RW -> RX)",
                    &["mprotect-exec"],
                    &["err EACCES"],
                    "PR_SET_MDWE",
                ),
                (
                    "int 0x80 (i386 getpid) from a 64-bit binary",
                    &["int80", "20"],
                    &["signal 31"],
                    "seccomp arch check (SIGSYS)",
                ),
                (
                    "int 0x80 (i386 unshare(CLONE_NEWUSER))",
                    &["int80", "310", "268435456"],
                    &["signal 31"],
                    "seccomp arch check (SIGSYS)",
                ),
            ],
            Profile::Steamcmd => [
                (
                    "MemoryDenyWriteExecute: PR_GET_MDWE",
                    &["mdwe"],
                    &["ok 0"],
                    "(allowed) SteamCMD may generate code",
                ),
                (
                    "MemoryDenyWriteExecute: mmap(PROT_WRITE|PROT_EXEC)",
                    &["mmap-wx"],
                    &["ok"],
                    "(allowed) SteamCMD may generate code",
                ),
                (
                    "MemoryDenyWriteExecute: mprotect(RW -> RX)",
                    &["mprotect-exec"],
                    &["ok"],
                    "(allowed) SteamCMD may generate code",
                ),
                (
                    "int 0x80 (i386 getpid) from a 64-bit binary",
                    &["int80", "20"],
                    &["ok N"],
                    "(harmless) i386 admitted",
                ),
                (
                    "int 0x80 (i386 unshare(CLONE_NEWUSER))",
                    &["int80", "310", "268435456"],
                    &["err EPERM"],
                    "seccomp (the allow-list by i386 numbers)",
                ),
            ],
        };
        let confined = Sandbox {
            output: &out,
            extra: vec![
                "--allow-port".into(),
                allowed.clone(),
                "--profile".into(),
                profile.to_string(),
            ],
        };
        let log = confined.run(&[PROBE, "creds"]);
        let stderr = String::from_utf8_lossy(&log.stderr);
        let abis = match profile {
            Profile::Script => "(x86_64)",
            Profile::Steamcmd => "(x86_64, i386)",
        };
        report.check(
            &format!("{profile}: log line names the profile and its ABIs"),
            "",
            stderr.contains(&format!("seccomp profile {profile}: "))
                && stderr.contains(&format!("allowed {abis}")),
            "runner log",
        );
        for (what, args, want, layer) in cases.iter().chain(&i386) {
            let got = confined.probe(args);
            let ok = want.contains(&got.as_str())
                || (want == &["ok N"]
                    && got
                        .strip_prefix("ok ")
                        .is_some_and(|n| n.parse::<i64>().is_ok()));
            report.check(&format!("{profile}: {what}"), &got, ok, layer);
        }
        // --no-network: no IP sockets at all.
        let offline = Sandbox {
            output: &out,
            extra: vec![
                "--no-network".into(),
                "--profile".into(),
                profile.to_string(),
            ],
        };
        let got = offline.probe(&["tcp", &format!("127.0.0.1:{allowed}")]);
        report.check(
            &format!("{profile}: --no-network: TCP connect"),
            &got,
            got == "err EPERM",
            "seccomp (no IP sockets)",
        );
        let got = offline.probe(&["socket", "2", "2", "0"]);
        report.check(
            &format!("{profile}: --no-network: UDP socket"),
            &got,
            got == "err EPERM",
            "seccomp (no IP sockets)",
        );
    }
    report.check(
        "the victim survived",
        "",
        victim.alive(),
        "Landlock signal scope",
    );
    let suid = ["suid", "suid2"]
        .iter()
        .filter_map(|f| std::fs::metadata(out.join(f)).ok())
        .any(|m| m.mode() & 0o6000 != 0);
    report.check("no set-id file in the output", "", !suid, "seccomp");

    // The util-linux tool, as a script would call it.
    let got = describe(&sandbox.run(&["/usr/bin/unshare", "-U", "true"]));
    report.check(
        "`unshare -U true`",
        got.lines().next().unwrap_or(""),
        got.starts_with("exit 1") && got.contains("Operation not permitted"),
        "seccomp",
    );

    // --- real tools -------------------------------------------------------------------------
    let www = env.base.join("www");
    std::fs::create_dir_all(www.join("c/left4dead2/addons")).unwrap();
    let mut vpk = vec![0u8; 200_000];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut vpk)
        .unwrap();
    std::fs::write(www.join("c/left4dead2/addons/a.vpk"), &vpk).unwrap();
    sh(
        &www.join("c"),
        "tar -czf ../maps.tar.gz . && 7z a -bd -tzip ../maps.zip . >/dev/null && 7z a -bd ../maps.7z . >/dev/null",
    );
    let sum = Command::new("md5sum")
        .arg(www.join("c/left4dead2/addons/a.vpk"))
        .output()
        .unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    serve(listeners.allowed.try_clone().unwrap(), www.clone());
    let tools_out = env.output("tools");
    let tools = Sandbox {
        output: &tools_out,
        extra: vec!["--allow-port".into(), allowed.clone()],
    };
    let script = format!(
        r#"set -eu
base=http://127.0.0.1:{allowed}
curl -fsS "$base/maps.tar.gz" | tar -xz
wget -q "$base/maps.zip" && mkdir z && unzip -q maps.zip -d z
wget -q -O m.7z "$base/maps.7z" && 7z x -bd -os m.7z >/dev/null
python3 - "$base" <<'PY'
import hashlib, io, sys, urllib.request, zipfile
data = urllib.request.urlopen(sys.argv[1] + "/maps.zip").read()
zipfile.ZipFile(io.BytesIO(data)).extractall("p")
print(hashlib.md5(open("p/left4dead2/addons/a.vpk", "rb").read()).hexdigest())
PY
md5sum left4dead2/addons/a.vpk z/left4dead2/addons/a.vpk s/left4dead2/addons/a.vpk | cut -d' ' -f1 | sort -u
rm maps.zip m.7z
"#
    );
    let run = tools.run(&["/bin/bash", "-c", &script]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    report.check(
        "bash + curl, wget, tar, unzip, 7z, python3, md5sum",
        &describe(&run).chars().take(26).collect::<String>(),
        run.status.success() && lines == [sum.as_str(), sum.as_str()],
        "all allowed",
    );
    if !run.status.success() {
        println!("{}", String::from_utf8_lossy(&run.stderr));
    }
    let foreign = Command::new("find")
        .arg(&tools_out)
        .args(["!", "-uid", &OWNER_UID.to_string()])
        .output()
        .unwrap();
    report.check(
        "every extracted file belongs to the owner",
        "",
        foreign.stdout.is_empty(),
        "idmapped /overlay",
    );

    // --- exit codes -------------------------------------------------------------------------
    let code = |out: &Output| out.status.code().unwrap_or(-1);
    let check_code = |report: &mut Report, what: &str, out: Output, want: i32, stderr: &str| {
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        let got = code(&out);
        report.check(
            what,
            &format!("exit {got}"),
            got == want && err.contains(stderr),
            "runner",
        );
        if got != want || !err.contains(stderr) {
            println!("      stderr: {}", err.trim());
        }
    };
    check_code(
        &mut report,
        "command's status (false)",
        sandbox.run(&["/bin/false"]),
        1,
        "",
    );
    check_code(
        &mut report,
        "command killed by SIGTERM -> 143",
        sandbox.run(&["/bin/sh", "-c", "kill -TERM $$"]),
        143,
        "",
    );
    check_code(
        &mut report,
        "command not found -> 127",
        sandbox.run(&["/nonexistent"]),
        127,
        "cannot execute /nonexistent",
    );
    check_code(
        &mut report,
        "command not executable -> 126",
        sandbox.run(&["/etc/passwd"]),
        126,
        "cannot execute /etc/passwd",
    );
    let root_owned = env.base.join("root-owned");
    std::fs::create_dir_all(&root_owned).unwrap();
    let bad = Sandbox {
        output: &root_owned,
        extra: Vec::new(),
    };
    check_code(
        &mut report,
        "output not owned by the owner -> 125",
        bad.run(&["/bin/true"]),
        125,
        "owned by uid 0",
    );
    let unknown = Command::new(RUNNER)
        .args(["--user", "no-such-user", "--output"])
        .arg(&out)
        .args(["--", "/bin/true"])
        .output()
        .unwrap();
    check_code(
        &mut report,
        "unknown user -> 125",
        unknown,
        125,
        "no-such-user",
    );
    check_code(
        &mut report,
        "usage error -> 2",
        Command::new(RUNNER).arg("--output").output().unwrap(),
        2,
        "",
    );

    drop(victim);
    report.finish("privileged_probes", env);
}
