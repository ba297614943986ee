//! `left4me-escape-probe`: one escape attempt per invocation, for the booted escape suite.
//!
//! Compiled by the suite itself with plain `rustc` (no crates: raw system calls through libc's
//! `syscall`, inline assembly for the 32-bit gate) and installed into the booted system's
//! `/usr/local/bin`, the only place a build script can execute a program from. Each call prints
//! one line, `probe LABEL: OUTCOME`, and exits 0 whatever happened, so a build script can run
//! dozens in a row; OUTCOME is `ok [DETAIL]`, `err ERRNO`, `timeout`, `connected`, `reply`,
//! `no-reply` or `signal N` (for actions run in a child that the kernel may kill).
//!
//! Usage: left4me-escape-probe LABEL ACTION [ARGS…]

use std::ffi::{CString, c_char, c_int, c_long, c_void};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

unsafe extern "C" {
    fn syscall(number: c_long, ...) -> c_long;
    fn __errno_location() -> *mut c_int;
    fn fork() -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn _exit(status: c_int) -> !;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn getppid() -> c_int;
    fn setsid() -> c_int;
    fn sleep(seconds: u32) -> u32;
    fn chmod(path: *const c_char, mode: u32) -> c_int;
    fn link(old: *const c_char, new: *const c_char) -> c_int;
    fn socket(domain: c_int, kind: c_int, protocol: c_int) -> c_int;
    fn connect(fd: c_int, addr: *const c_void, len: u32) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn ptrace(request: c_int, pid: c_int, addr: *mut c_void, data: *mut c_void) -> c_long;
    fn mount(
        source: *const c_char,
        target: *const c_char,
        fstype: *const c_char,
        flags: u64,
        data: *const c_void,
    ) -> c_int;
    fn unshare(flags: c_int) -> c_int;
    fn setuid(uid: u32) -> c_int;
    fn prctl(option: c_int, ...) -> c_int;
    fn ioctl(fd: c_int, request: u64, ...) -> c_int;
    fn fcntl(fd: c_int, cmd: c_int, ...) -> c_int;
    fn getresuid(r: *mut u32, e: *mut u32, s: *mut u32) -> c_int;
    fn getresgid(r: *mut u32, e: *mut u32, s: *mut u32) -> c_int;
    fn getgroups(size: c_int, list: *mut u32) -> c_int;
}

const SYS_CLONE: c_long = 56;
const SYS_IO_URING_SETUP: c_long = 425;
const SYS_BPF: c_long = 321;
const SYS_PERF_EVENT_OPEN: c_long = 298;
const SYS_KEYCTL: c_long = 250;
const SYS_MEMFD_CREATE: c_long = 319;
const SYS_OPEN_TREE: c_long = 428;
const CLONE_NEWNS: c_long = 0x0002_0000;
const CLONE_NEWUSER: c_long = 0x1000_0000;
const CLONE_NEWNET: c_long = 0x4000_0000;
const SIGCHLD: c_long = 17;
const AF_UNIX: c_int = 1;
const AF_INET: c_int = 2;
const AF_INET6: c_int = 10;
const AF_NETLINK: c_int = 16;
const AF_PACKET: c_int = 17;
const SOCK_STREAM: c_int = 1;
const SOCK_RAW: c_int = 3;
const IPPROTO_MPTCP: c_int = 262;
const IPPROTO_SCTP: c_int = 132;
const PTRACE_ATTACH: c_int = 16;
const PR_GET_NO_NEW_PRIVS: c_int = 39;
const PR_GET_SECCOMP: c_int = 21;
const TIOCSTI: u64 = 0x5412;
const F_GETFD: c_int = 1;

fn errno() -> i32 {
    // SAFETY: libc's thread-local errno.
    unsafe { *__errno_location() }
}

fn errno_name(e: i32) -> String {
    let name = match e {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        17 => "EEXIST",
        18 => "EXDEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        25 => "ENOTTY",
        27 => "EFBIG",
        28 => "ENOSPC",
        30 => "EROFS",
        38 => "ENOSYS",
        40 => "ELOOP",
        93 => "EPROTONOSUPPORT",
        97 => "EAFNOSUPPORT",
        101 => "ENETUNREACH",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        113 => "EHOSTUNREACH",
        _ => return format!("errno{e}"),
    };
    name.to_owned()
}

fn ret(r: i64) -> String {
    if r >= 0 {
        format!("ok {r}")
    } else {
        format!("err {}", errno_name(errno()))
    }
}

fn io(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("err {}", errno_name(code)),
        None if e.kind() == std::io::ErrorKind::TimedOut => "timeout".into(),
        None => format!("err {e}"),
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in arguments")
}

/// Runs `f` in a forked child and reports how the child ended (for actions the kernel may
/// answer by killing the process).
fn in_child(f: impl FnOnce() -> i32) -> String {
    // SAFETY: the child only runs `f` and exits; the probe is single-threaded.
    let pid = unsafe { fork() };
    if pid < 0 {
        return ret(-1);
    }
    if pid == 0 {
        let code = f();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { _exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    unsafe { waitpid(pid, &mut status, 0) };
    if status & 0x7f != 0 {
        format!("signal {}", status & 0x7f)
    } else {
        format!("exit {}", (status >> 8) & 0xff)
    }
}

fn tcp(addr: &str) -> String {
    let addr: SocketAddr = addr.parse().expect("ADDR:PORT");
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(_) => "connected".into(),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => "timeout".into(),
        Err(e) => io(&e),
    }
}

fn udp(addr: &str) -> String {
    let addr: SocketAddr = addr.parse().expect("ADDR:PORT");
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let socket = match UdpSocket::bind(bind) {
        Ok(s) => s,
        Err(e) => return io(&e),
    };
    if let Err(e) = socket.send_to(b"left4me-probe", addr) {
        return io(&e);
    }
    let _ = socket.set_read_timeout(Some(Duration::from_millis(1500)));
    let mut buf = [0u8; 64];
    match socket.recv_from(&mut buf) {
        Ok(_) => "reply".into(),
        Err(e) if matches!(e.raw_os_error(), Some(11) | Some(110)) => "no-reply".into(),
        Err(e) => io(&e),
    }
}

fn raw_socket(domain: c_int, kind: c_int, protocol: c_int) -> String {
    // SAFETY: plain integers; the descriptor is closed right away.
    let fd = unsafe { socket(domain, kind, protocol) };
    if fd >= 0 {
        // SAFETY: our descriptor.
        unsafe { close(fd) };
    }
    ret(i64::from(fd))
}

fn unix_connect(path: &[u8]) -> String {
    // SAFETY: plain integers.
    let fd = unsafe { socket(AF_UNIX, SOCK_STREAM, 0) };
    if fd < 0 {
        return ret(-1);
    }
    let mut addr = [0u8; 110];
    addr[0] = AF_UNIX as u8;
    addr[2..2 + path.len()].copy_from_slice(path);
    // SAFETY: `addr` is a sockaddr_un of the stated length.
    let r = unsafe { connect(fd, addr.as_ptr().cast(), (2 + path.len()) as u32) };
    let out = ret(i64::from(r));
    // SAFETY: our descriptor.
    unsafe { close(fd) };
    out
}

fn int80() -> String {
    in_child(|| {
        let mut eax: u32 = 20; // getpid on i386
        // SAFETY: the i386 system call gate; the kernel (or seccomp) decides what happens.
        unsafe {
            std::arch::asm!("int 0x80", inout("eax") eax, options(nostack));
        }
        if eax > 0 && eax < 0x8000_0000 { 0 } else { 1 }
    })
}

fn fork_until_refused(limit: usize) -> String {
    let mut children = Vec::new();
    let mut failure = None;
    while children.len() < limit {
        // SAFETY: the child sleeps and exits; the probe is single-threaded.
        let pid = unsafe { fork() };
        if pid < 0 {
            failure = Some(errno());
            break;
        }
        if pid == 0 {
            // SAFETY: a plain sleep, then exit.
            unsafe {
                sleep(30);
                _exit(0);
            }
        }
        children.push(pid);
    }
    for &pid in &children {
        // SAFETY: our own children.
        unsafe {
            kill(pid, 9);
            waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    match failure {
        Some(e) => format!("refused after {} processes: {}", children.len(), errno_name(e)),
        None => format!("ok {} processes", children.len()),
    }
}

fn daemonize(marker: &str) -> String {
    let marker = marker.to_owned();
    // SAFETY: the child detaches and loops; the parent returns at once.
    let pid = unsafe { fork() };
    if pid < 0 {
        return ret(-1);
    }
    if pid == 0 {
        // SAFETY: detach from the session, fork again so the parent can exit.
        unsafe {
            setsid();
            if fork() != 0 {
                _exit(0);
            }
        }
        loop {
            let _ = std::fs::write(&marker, format!("{}\n", std::process::id()));
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // SAFETY: reaps the first child, which exits right away.
    unsafe { waitpid(pid, std::ptr::null_mut(), 0) };
    "ok daemon started".into()
}

fn fill(path: &str) -> String {
    let mut file = match std::fs::File::create(path) {
        Ok(f) => f,
        Err(e) => return io(&e),
    };
    let chunk = vec![0x5au8; 1 << 20];
    let mut written: u64 = 0;
    loop {
        match file.write_all(&chunk) {
            Ok(()) => written += chunk.len() as u64,
            Err(e) => return format!("{} after {} MiB", io(&e), written >> 20),
        }
    }
}

fn creds() -> String {
    let mut caps = [0u32; 6];
    let header = [0x2008_0522u32, 0];
    // SAFETY: capget with a v3 header and room for two data structs.
    let r = unsafe { syscall(125, header.as_ptr(), caps.as_mut_ptr()) };
    // SAFETY: plain queries with the unused arguments zero, as the kernel demands.
    let (nnp, seccomp) = unsafe {
        (
            prctl(PR_GET_NO_NEW_PRIVS, 0u64, 0u64, 0u64, 0u64),
            prctl(PR_GET_SECCOMP, 0u64, 0u64, 0u64, 0u64),
        )
    };
    let (mut ru, mut eu, mut su, mut rg, mut eg, mut sg) = (0, 0, 0, 0, 0, 0);
    let mut groups = [0u32; 64];
    // SAFETY: out-pointers to locals.
    let ngroups = unsafe {
        getresuid(&mut ru, &mut eu, &mut su);
        getresgid(&mut rg, &mut eg, &mut sg);
        getgroups(64, groups.as_mut_ptr())
    };
    let groups = &groups[..ngroups.max(0) as usize];
    format!(
        "ok uid={ru},{eu},{su} gid={rg},{eg},{sg} groups={groups:?} capget={r} \
         caps={:x}/{:x}/{:x}/{:x}/{:x}/{:x} nnp={nnp} seccomp={seccomp}",
        caps[0], caps[1], caps[2], caps[3], caps[4], caps[5]
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let label = args.first().cloned().unwrap_or_default();
    let action = args.get(1).cloned().unwrap_or_default();
    let arg = |i: usize| args.get(i + 2).cloned().unwrap_or_default();
    let outcome = match action.as_str() {
        "read" => match std::fs::File::open(arg(0)) {
            Ok(mut f) => {
                let mut buf = Vec::new();
                match f.read_to_end(&mut buf) {
                    Ok(n) => format!("ok read {n} bytes"),
                    Err(e) => io(&e),
                }
            }
            Err(e) => io(&e),
        },
        "write" => match std::fs::write(arg(0), "written by left4me-escape-probe\n") {
            Ok(()) => "ok".into(),
            Err(e) => io(&e),
        },
        "exists" => match std::fs::symlink_metadata(arg(0)) {
            Ok(_) => "ok exists".into(),
            Err(e) => io(&e),
        },
        "exec" => match std::process::Command::new(arg(0)).status() {
            Ok(s) => format!("ok {s}"),
            Err(e) => io(&e),
        },
        "tcp" => tcp(&arg(0)),
        "udp" => udp(&arg(0)),
        "bind-tcp" => match std::net::TcpListener::bind(arg(0)) {
            Ok(_) => "ok bound".into(),
            Err(e) => io(&e),
        },
        "mptcp" => raw_socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP),
        "sctp" => raw_socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP),
        "raw-icmp" => raw_socket(AF_INET, SOCK_RAW, 1),
        "packet" => raw_socket(AF_PACKET, SOCK_RAW, 0),
        "netlink" => raw_socket(AF_NETLINK, SOCK_RAW, 0),
        "inet6-raw" => raw_socket(AF_INET6, SOCK_RAW, 58),
        "unix" => unix_connect(arg(0).as_bytes()),
        "unix-abstract" => {
            let mut name = vec![0u8];
            name.extend_from_slice(arg(0).as_bytes());
            unix_connect(&name)
        }
        "kill" => {
            let pid: c_int = arg(0).parse().expect("PID");
            // SAFETY: signal 0 or SIGTERM to a pid; the kernel decides.
            ret(i64::from(unsafe { kill(pid, arg(1).parse().unwrap_or(15)) }))
        }
        // SAFETY: attach request; the kernel decides.
        "ptrace-parent" => ret(unsafe {
            ptrace(PTRACE_ATTACH, getppid(), std::ptr::null_mut(), std::ptr::null_mut())
        }),
        "clone-newuser" => {
            // SAFETY: a raw clone (fork-like, no CLONE_VM); a child that appears exits at once.
            let r = unsafe { syscall(SYS_CLONE, CLONE_NEWUSER | CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0) };
            if r == 0 {
                // SAFETY: the child ends here.
                unsafe { _exit(0) };
            }
            ret(r)
        }
        "clone-newnet" => {
            // SAFETY: as above.
            let r = unsafe { syscall(SYS_CLONE, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0) };
            if r == 0 {
                // SAFETY: the child ends here.
                unsafe { _exit(0) };
            }
            ret(r)
        }
        // SAFETY: plain flags.
        "unshare-user" => ret(i64::from(unsafe { unshare(CLONE_NEWUSER as c_int) })),
        "mount-tmpfs" => {
            let (src, target, fs) = (cstr("none"), cstr(&arg(0)), cstr("tmpfs"));
            // SAFETY: valid C strings.
            ret(i64::from(unsafe {
                mount(src.as_ptr(), target.as_ptr(), fs.as_ptr(), 0, std::ptr::null())
            }))
        }
        "open-tree" => {
            let path = cstr("/");
            // SAFETY: valid path; OPEN_TREE_CLONE.
            ret(unsafe { syscall(SYS_OPEN_TREE, -100, path.as_ptr(), 1) })
        }
        "int80" => int80(),
        "io-uring" => {
            let mut params = [0u8; 120];
            // SAFETY: io_uring_setup with a zeroed params struct of the right size.
            ret(unsafe { syscall(SYS_IO_URING_SETUP, 8, params.as_mut_ptr()) })
        }
        // SAFETY: invalid arguments on purpose: only whether the call is reachable matters.
        "bpf" => ret(unsafe { syscall(SYS_BPF, 0, 0, 0) }),
        // SAFETY: as above.
        "perf" => ret(unsafe { syscall(SYS_PERF_EVENT_OPEN, 0, 0, -1, -1, 0) }),
        // SAFETY: KEYCTL_GET_KEYRING_ID of the session keyring, no create.
        "keyctl" => ret(unsafe { syscall(SYS_KEYCTL, 0, -3, 0) }),
        "memfd" => {
            let name = cstr("x");
            // SAFETY: valid name.
            ret(unsafe { syscall(SYS_MEMFD_CREATE, name.as_ptr(), 0) })
        }
        // SAFETY: TIOCSTI on stdin with a valid byte.
        "tiocsti" => ret(i64::from(unsafe { ioctl(0, TIOCSTI, c"x".as_ptr()) })),
        // SAFETY: plain id.
        "setuid0" => ret(i64::from(unsafe { setuid(0) })),
        "chmod-suid" => {
            let path = cstr(&arg(0));
            // SAFETY: valid path.
            ret(i64::from(unsafe { chmod(path.as_ptr(), 0o4755) }))
        }
        "hardlink" => {
            let (from, to) = (cstr(&arg(0)), cstr(&arg(1)));
            // SAFETY: valid paths.
            ret(i64::from(unsafe { link(from.as_ptr(), to.as_ptr()) }))
        }
        "fds" => {
            // /proc is out of reach (Landlock): ask every descriptor number instead.
            let open: Vec<i32> = (0..4096)
                // SAFETY: F_GETFD on any number only reports whether it is open.
                .filter(|&fd| unsafe { fcntl(fd, F_GETFD) } >= 0)
                .collect();
            format!("ok {open:?}")
        }
        "env" => {
            let mut names: Vec<String> = std::env::vars_os()
                .map(|(k, _)| k.to_string_lossy().into_owned())
                .collect();
            names.sort();
            format!("ok {}", names.join(","))
        }
        "creds" => creds(),
        "forks" => fork_until_refused(arg(0).parse().unwrap_or(10_000)),
        "daemon" => daemonize(&arg(0)),
        "fill" => fill(&arg(0)),
        "memory" => in_child(|| {
            let mut blocks: Vec<Vec<u8>> = Vec::new();
            loop {
                blocks.push(vec![1u8; 8 << 20]);
            }
        }),
        other => format!("unknown action {other:?}"),
    };
    println!("probe {label}: {outcome}");
}
