//! `left4me-sandbox-probe`: one harmless or malicious action per invocation, for every test that
//! puts the sandbox to work: the privileged sandbox tests (`sandbox/tests`, as this crate's
//! binary) and the booted escape suite (`tests/tests/booted_escape.rs`, which compiles this file
//! with plain `rustc` and installs it into the booted system as `left4me-escape-probe`). So it
//! uses no crate: raw system calls through the C library, inline assembly for the i386 gate.
//!
//! Usage: `left4me-sandbox-probe [--label LABEL] ACTION [ARGS…]`. It prints one line, `OUTCOME`
//! or, with a label (a build script runs dozens in a row), `probe LABEL: OUTCOME`, and exits 0
//! whatever happened. OUTCOME is `ok [DETAIL]`, `err ERRNO`, `timeout`, `connected`, `reply`,
//! `no-reply`, or `signal N` / `exit N` for actions run in a child the kernel may kill.
//!
//! Every action is a plain system call with the arguments an escape attempt would use; no
//! library in between decides anything.

mod ffi;
mod kernel;
mod resources;

use std::ffi::{CString, c_int, c_long};
use std::io::Write as _;
use std::net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::Duration;

use ffi::{errno, errno_name};

/// `ok` for a non-negative return, else `err ERRNO`.
fn ret(r: i64) -> String {
    if r >= 0 {
        "ok".into()
    } else {
        format!("err {}", errno_name(errno()))
    }
}

fn io_err(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("err {}", errno_name(code)),
        None if e.kind() == std::io::ErrorKind::TimedOut => "timeout".into(),
        None => format!("err {e}"),
    }
}

fn io<T>(result: std::io::Result<T>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => io_err(&e),
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in arguments")
}

/// Runs `f` in a forked child, which prints its own line; returns how the child ended when it
/// did not print one (killed by a signal, or a non-zero exit).
fn in_child(f: impl FnOnce() -> String, emit: &dyn Fn(&str)) -> Option<String> {
    // SAFETY: the probe is single-threaded; the child runs `f`, prints and exits.
    let pid = unsafe { ffi::fork() };
    if pid < 0 {
        return Some(ret(-1));
    }
    if pid == 0 {
        emit(&f());
        let _ = std::io::stdout().flush();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { ffi::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    unsafe { ffi::waitpid(pid, &mut status, 0) };
    match (status & 0x7f, (status >> 8) & 0xff) {
        (0, 0) => None,
        (0, code) => Some(format!("exit {code}")),
        (signal, _) => Some(format!("signal {signal}")),
    }
}

/// Closes `fd`, keeping errno as it was.
fn close_keeping_errno(fd: c_int) {
    let saved = errno();
    // SAFETY: a descriptor the caller created and no longer uses.
    unsafe { ffi::close(fd) };
    ffi::set_errno(saved);
}

/// A `sockaddr_in` for `addr`, as bytes.
fn sockaddr_in(addr: SocketAddrV4) -> [u8; 16] {
    let mut raw = [0u8; 16];
    raw[0..2].copy_from_slice(&(ffi::AF_INET as u16).to_ne_bytes());
    raw[2..4].copy_from_slice(&addr.port().to_be_bytes());
    raw[4..8].copy_from_slice(&addr.ip().octets());
    raw
}

/// `socket(AF_INET, SOCK_STREAM, protocol)`, then `op` with the socket and `addr`'s
/// `sockaddr_in`; reports `ok`, `err E…`, or `err E… (socket)` when the socket was refused.
fn on_tcp_socket(
    protocol: c_int,
    addr: SocketAddrV4,
    op: impl FnOnce(c_int, &[u8]) -> i64,
) -> String {
    // SAFETY: plain integer arguments.
    let fd = unsafe { ffi::socket(ffi::AF_INET, ffi::SOCK_STREAM, protocol) };
    if fd < 0 {
        return format!("{} (socket)", ret(-1));
    }
    let r = op(fd, &sockaddr_in(addr));
    close_keeping_errno(fd);
    ret(r)
}

fn loopback(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port)
}

fn tcp(addr: &str) -> String {
    let addr: SocketAddr = addr.parse().expect("ADDR:PORT");
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(_) => "connected".into(),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => "timeout".into(),
        Err(e) => io_err(&e),
    }
}

/// `socket(AF_INET, SOCK_STREAM, protocol)` then `connect` (MPTCP is protocol 262).
fn connect_proto(protocol: c_int, addr: &str) -> String {
    let addr: SocketAddrV4 = addr.parse().expect("IPv4:PORT");
    on_tcp_socket(protocol, addr, |fd, sa| {
        // SAFETY: `sa` is a `sockaddr_in` of the length given.
        i64::from(unsafe { ffi::connect(fd, sa.as_ptr().cast(), sa.len() as u32) })
    })
}

/// `sendto(MSG_FASTOPEN)` to 127.0.0.1:`port`: a TCP connect made inside a send, which
/// Landlock's connect check does not see.
fn sendto_fastopen(port: u16) -> String {
    let payload = b"GET / HTTP/1.0\r\n\r\n";
    on_tcp_socket(0, loopback(port), |fd, sa| {
        // SAFETY: the payload and address are valid for the lengths given.
        let sent = unsafe {
            ffi::sendto(
                fd,
                payload.as_ptr().cast(),
                payload.len(),
                ffi::MSG_FASTOPEN,
                sa.as_ptr().cast(),
                sa.len() as u32,
            )
        };
        if sent < 0 { -1 } else { 0 }
    })
}

/// `listen` on a TCP socket never bound (the kernel binds it to a free port).
fn listen_unbound() -> String {
    on_tcp_socket(0, loopback(0), |fd, _| {
        // SAFETY: a descriptor of ours.
        i64::from(unsafe { ffi::listen(fd, 1) })
    })
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
        Err(e) => return io_err(&e),
    };
    if let Err(e) = socket.send_to(b"left4me-probe", addr) {
        return io_err(&e);
    }
    let _ = socket.set_read_timeout(Some(Duration::from_millis(1500)));
    let mut buf = [0u8; 64];
    match socket.recv_from(&mut buf) {
        Ok(_) => "reply".into(),
        Err(e) if matches!(e.raw_os_error(), Some(11) | Some(110)) => "no-reply".into(),
        Err(e) => io_err(&e),
    }
}

fn socket(domain: c_int, kind: c_int, protocol: c_int) -> String {
    // SAFETY: plain integers; the descriptor is closed right away.
    let fd = unsafe { ffi::socket(domain, kind, protocol) };
    if fd >= 0 {
        close_keeping_errno(fd);
    }
    ret(i64::from(fd))
}

/// `connect` to the unix socket address `path` (a leading NUL makes it abstract).
fn unix_connect(path: &[u8]) -> String {
    // SAFETY: plain integers.
    let fd = unsafe { ffi::socket(ffi::AF_UNIX, ffi::SOCK_STREAM, 0) };
    if fd < 0 {
        return ret(-1);
    }
    let mut addr = [0u8; 110];
    addr[0..2].copy_from_slice(&(ffi::AF_UNIX as u16).to_ne_bytes());
    addr[2..2 + path.len()].copy_from_slice(path);
    // SAFETY: `addr` is a sockaddr_un of the stated length.
    let r = unsafe { ffi::connect(fd, addr.as_ptr().cast(), (2 + path.len()) as u32) };
    close_keeping_errno(fd);
    ret(i64::from(r))
}

/// A fork-like `clone(flags | SIGCHLD)` whose child exits at once.
fn clone(flags: c_long) -> String {
    // SAFETY: a raw clone without CLONE_VM and with a null stack is a fork; the child only
    // calls `_exit`.
    let pid = unsafe { ffi::syscall(ffi::SYS_CLONE, flags | ffi::SIGCHLD, 0, 0, 0, 0) };
    if pid == 0 {
        // SAFETY: the child ends here, without destructors.
        unsafe { ffi::_exit(0) };
    }
    if pid > 0 {
        // SAFETY: reaping the child just created.
        unsafe { ffi::waitpid(pid as c_int, std::ptr::null_mut(), 0) };
    }
    ret(pid)
}

fn clone3() -> String {
    // `struct clone_args` (the first 64 bytes, CLONE_ARGS_SIZE_VER0): flags, pidfd, child_tid,
    // parent_tid, exit_signal, stack, stack_size, tls.
    let mut args = [0u64; 8];
    args[4] = ffi::SIGCHLD as u64;
    // SAFETY: `args` is a valid `clone_args` of the size passed; without CLONE_VM the child is
    // a fork-like copy that only calls `_exit`.
    let pid = unsafe { ffi::syscall(ffi::SYS_CLONE3, args.as_ptr(), size_of_val(&args)) };
    if pid == 0 {
        // SAFETY: immediate exit of the child.
        unsafe { ffi::_exit(0) };
    }
    if pid > 0 {
        // SAFETY: reaping the child just created.
        unsafe { ffi::waitpid(pid as c_int, std::ptr::null_mut(), 0) };
    }
    ret(pid)
}

fn ptrace_attach(pid: c_int) -> String {
    let null = std::ptr::null_mut();
    // SAFETY: PTRACE_ATTACH with integer arguments; on success the tracee is detached again.
    let r = unsafe { ffi::ptrace(ffi::PTRACE_ATTACH, pid, null, null) };
    if r == 0 {
        // SAFETY: wait for the attach stop, then detach.
        unsafe {
            ffi::waitpid(pid, std::ptr::null_mut(), ffi::WALL);
            ffi::ptrace(ffi::PTRACE_DETACH, pid, null, null);
        }
    }
    ret(r)
}

fn mount_tmpfs(target: &str) -> String {
    let _ = std::fs::create_dir_all(target);
    let (src, dst, fs) = (cstr("none"), cstr(target), cstr("tmpfs"));
    // SAFETY: NUL-terminated strings that outlive the call; null data is allowed.
    let r = unsafe { ffi::mount(src.as_ptr(), dst.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
    ret(i64::from(r))
}

/// Creates `path`, then tries to make it set-uid.
fn chmod_suid(path: &str) -> String {
    if let Err(e) = std::fs::write(path, "#!/bin/sh\n") {
        return format!("{} (creating)", io_err(&e));
    }
    let p = cstr(path);
    // SAFETY: NUL-terminated path that outlives the call.
    ret(i64::from(unsafe { ffi::chmod(p.as_ptr(), 0o4755) }))
}

/// `open(O_CREAT, 04755)`: a set-uid file in one call.
fn create_suid(path: &str) -> String {
    let p = cstr(path);
    let flags = ffi::O_CREAT | ffi::O_WRONLY | ffi::O_CLOEXEC;
    // SAFETY: NUL-terminated path; the descriptor, if any, is closed.
    let fd = unsafe { ffi::open(p.as_ptr(), flags, 0o4755 as std::ffi::c_uint) };
    if fd >= 0 {
        close_keeping_errno(fd);
    }
    ret(i64::from(fd))
}

/// `ioctl(request)` on the read end of a fresh pipe (TIOCSTI: ENOTTY if the filter lets it
/// through; FIONREAD: an ordinary ioctl).
fn pipe_ioctl(request: u64) -> String {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe writes.
    if unsafe { ffi::pipe(fds.as_mut_ptr()) } != 0 {
        return ret(-1);
    }
    let mut word: c_int = i32::from(b'x');
    // SAFETY: both requests read or write one int-sized value at the pointer.
    let r = unsafe { ffi::ioctl(fds[0], request, &raw mut word) };
    close_keeping_errno(fds[0]);
    close_keeping_errno(fds[1]);
    ret(i64::from(r))
}

/// Descriptors above 2 that are open (asking every number: /proc may be out of reach).
fn open_fds() -> String {
    let open: Vec<String> = (3..4096)
        // SAFETY: F_GETFD on any number only reports whether it is open.
        .filter(|&fd| unsafe { ffi::fcntl(fd, ffi::F_GETFD) } >= 0)
        .map(|fd| fd.to_string())
        .collect();
    if open.is_empty() {
        "ok none".into()
    } else {
        format!("ok {}", open.join(","))
    }
}

fn environment() -> String {
    let mut vars: Vec<String> = std::env::vars_os()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    vars.sort();
    format!("ok {}", vars.join(" "))
}

/// The bits of the capability set `read` reports (1 per capability), up to the last one.
fn cap_bits(read: impl Fn(c_int) -> c_int) -> u64 {
    let mut bits = 0u64;
    for cap in 0..64 {
        match read(cap) {
            r if r < 0 => break,
            1 => bits |= 1 << cap,
            _ => {}
        }
    }
    bits
}

fn credentials() -> String {
    let (mut ru, mut eu, mut su, mut rg, mut eg, mut sg) = (0, 0, 0, 0, 0, 0);
    // SAFETY: out-pointers to locals; getgroups with size 0 only counts.
    let groups = unsafe {
        ffi::getresuid(&mut ru, &mut eu, &mut su);
        ffi::getresgid(&mut rg, &mut eg, &mut sg);
        ffi::getgroups(0, std::ptr::null_mut())
    };
    let header = [0x2008_0522u32, 0]; // _LINUX_CAPABILITY_VERSION_3, this process
    let mut data = [0u32; 6]; // two {effective, permitted, inheritable}
    // SAFETY: capget with a v3 header and room for two data structs.
    let caps = match unsafe { ffi::syscall(ffi::SYS_CAPGET, header.as_ptr(), data.as_mut_ptr()) } {
        0 => {
            let set = |i: usize| u64::from(data[i]) | u64::from(data[i + 3]) << 32;
            format!("{:x}/{:x}/{:x}", set(0), set(1), set(2))
        }
        _ => format!("capget:{}", errno_name(errno())),
    };
    // SAFETY: PR_CAPBSET_READ takes an integer, returns 1, 0 or -1 (past the last cap).
    let bounding =
        cap_bits(|cap| unsafe { ffi::prctl(ffi::PR_CAPBSET_READ, cap as u64, 0u64, 0u64, 0u64) });
    let ambient = cap_bits(|cap| {
        // SAFETY: as above, for the ambient set.
        unsafe {
            ffi::prctl(
                ffi::PR_CAP_AMBIENT,
                ffi::PR_CAP_AMBIENT_IS_SET,
                cap as u64,
                0u64,
                0u64,
            )
        }
    });
    // SAFETY: plain queries with the unused arguments zero, as the kernel demands.
    let (nnp, seccomp) = unsafe {
        (
            ffi::prctl(ffi::PR_GET_NO_NEW_PRIVS, 0u64, 0u64, 0u64, 0u64),
            ffi::prctl(ffi::PR_GET_SECCOMP, 0u64, 0u64, 0u64, 0u64),
        )
    };
    format!(
        "ok uid={ru},{eu},{su} gid={rg},{eg},{sg} groups={groups} caps={caps} \
         bounding={bounding:x} ambient={ambient:x} nnp={nnp} seccomp={seccomp}"
    )
}

/// System call `nr` of the i386 ABI through its `int 0x80` gate, from this 64-bit process
/// (seccomp sees `AUDIT_ARCH_I386`), with up to three integer arguments.
#[cfg(target_arch = "x86_64")]
fn int80(nr: u32, args: [u32; 3]) -> String {
    let mut eax = nr;
    // SAFETY: the i386 system call gate with integer arguments only (callers pass no pointers:
    // a 64-bit process's addresses do not fit the 32-bit ABI). LLVM reserves rbx, so the first
    // argument is swapped into ebx around the gate. The kernel clobbers r8-r11 on this path.
    unsafe {
        std::arch::asm!(
            "xchg {a1:r}, rbx",
            "int 0x80",
            "xchg {a1:r}, rbx",
            a1 = inout(reg) u64::from(args[0]) => _,
            inout("eax") eax,
            in("ecx") args[1],
            in("edx") args[2],
            lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
        );
    }
    let r = eax as i32;
    if r >= 0 {
        format!("ok {r}")
    } else {
        format!("err {}", errno_name(-r))
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn int80(_nr: u32, _args: [u32; 3]) -> String {
    "err not-x86_64".into()
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let label = if args.first().map(String::as_str) == Some("--label") {
        args.remove(0);
        Some(args.remove(0))
    } else {
        None
    };
    let emit = |outcome: &str| match &label {
        Some(label) => println!("probe {label}: {outcome}"),
        None => println!("{outcome}"),
    };
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let num = |i: usize| arg(i).parse::<i64>().expect("a number");
    let outcome = match arg(0) {
        // files
        "read" => io(std::fs::read(arg(1))),
        "read-dir" => io(std::fs::read_dir(arg(1))),
        "exists" => io(std::fs::symlink_metadata(arg(1))),
        "write" => io(std::fs::write(arg(1), "written by the probe\n")),
        "append" => io(std::fs::OpenOptions::new()
            .append(true)
            .open(arg(1))
            .and_then(|mut f| f.write_all(b"x"))),
        "create-new" => io(std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(format!("{}/new-{}", arg(1), std::process::id()))),
        "hardlink" => {
            let (from, to) = (cstr(arg(1)), cstr(arg(2)));
            // SAFETY: NUL-terminated paths.
            ret(i64::from(unsafe { ffi::link(from.as_ptr(), to.as_ptr()) }))
        }
        "chmod-suid" => chmod_suid(arg(1)),
        "create-suid" => create_suid(arg(1)),
        "exec" => match std::process::Command::new(arg(1)).status() {
            Ok(s) => format!("ok {s}"),
            Err(e) => io_err(&e),
        },
        // network
        "tcp" => tcp(arg(1)),
        "connect-proto" => connect_proto(num(1) as c_int, arg(2)),
        "sendto-fastopen" => sendto_fastopen(num(1) as u16),
        "udp" => udp(arg(1)),
        "bind-tcp" => io(std::net::TcpListener::bind(arg(1))),
        "listen" => listen_unbound(),
        "socket" => socket(num(1) as c_int, num(2) as c_int, num(3) as c_int),
        "unix" => unix_connect(arg(1).as_bytes()),
        "unix-abstract" => unix_connect(&[b"\0", arg(1).as_bytes()].concat()),
        // processes and kernel interfaces
        // SAFETY: a signal to a pid; the kernel decides.
        "kill" => ret(i64::from(unsafe {
            ffi::kill(num(1) as c_int, num(2) as c_int)
        })),
        "ptrace" => ptrace_attach(num(1) as c_int),
        // SAFETY: getppid takes no arguments.
        "ptrace-parent" => ptrace_attach(unsafe { ffi::getppid() }),
        "clone" => clone(num(1) as c_long),
        "clone3" => clone3(),
        // SAFETY: unshare only changes this probe's own namespaces.
        "unshare" => ret(i64::from(unsafe { ffi::unshare(num(1) as c_int) })),
        "mount-tmpfs" => mount_tmpfs(arg(1)),
        "open-tree" => {
            let path = cstr("/");
            // SAFETY: a valid path; OPEN_TREE_CLONE (the descriptor is left to the exit).
            ret(unsafe { ffi::syscall(ffi::SYS_OPEN_TREE, -100, path.as_ptr(), 1) })
        }
        "io-uring" => {
            let mut params = [0u8; 120]; // struct io_uring_params
            // SAFETY: a zeroed params struct of the right size.
            ret(unsafe { ffi::syscall(ffi::SYS_IO_URING_SETUP, 8, params.as_mut_ptr()) })
        }
        // SAFETY: invalid arguments on purpose: only whether the call is reachable matters.
        "bpf" => ret(unsafe { ffi::syscall(ffi::SYS_BPF, 0, 0, 0) }),
        // SAFETY: as above.
        "perf" => ret(unsafe { ffi::syscall(ffi::SYS_PERF_EVENT_OPEN, 0, 0, -1, -1, 0) }),
        // SAFETY: KEYCTL_GET_KEYRING_ID of the session keyring, no create.
        "keyctl" => ret(unsafe { ffi::syscall(ffi::SYS_KEYCTL, 0, -3, 0) }),
        "memfd" => {
            let name = cstr("probe");
            // SAFETY: a valid name (the descriptor is left to the exit).
            ret(unsafe { ffi::syscall(ffi::SYS_MEMFD_CREATE, name.as_ptr(), 0) })
        }
        "tiocsti" => pipe_ioctl(ffi::TIOCSTI),
        "fionread" => pipe_ioctl(ffi::FIONREAD),
        // systemd's hardening directives, one kernel interface each (see `kernel`)
        "personality" => kernel::personality(),
        "sched-fifo" => kernel::sched_fifo(),
        "clock-settime" => kernel::clock_settime(),
        "adjtimex" => kernel::adjtimex(),
        "mmap-wx" => kernel::mmap_write_exec(),
        "mprotect-exec" => kernel::mprotect_exec(),
        "mdwe" => kernel::mdwe(),
        "init-module" => kernel::init_module(),
        "syslog" => kernel::syslog(),
        "sethostname" => kernel::sethostname(),
        "setns" => kernel::setns(arg(1)),
        "iopl" => kernel::iopl(),
        "shmget" => kernel::shmget(),
        // SAFETY: an integer argument.
        "setuid0" => ret(i64::from(unsafe { ffi::setuid(0) })),
        "int80" => {
            // Without a number: getpid (20), a call every profile that admits i386 allows.
            let n = |i: usize, default| {
                if arg(i).is_empty() {
                    default
                } else {
                    num(i) as u32
                }
            };
            let (nr, args) = (n(1, 20), [n(2, 0), n(3, 0), n(4, 0)]);
            match in_child(|| int80(nr, args), &emit) {
                Some(ended) => ended,
                None => return,
            }
        }
        // identity
        "fds" => open_fds(),
        "env" => environment(),
        "creds" => credentials(),
        // resources
        "forks" => resources::fork_until_refused(arg(1).parse().unwrap_or(10_000)),
        "daemon" => resources::daemonize(arg(1)),
        "fill" => resources::fill(arg(1)),
        "memory" => match in_child(
            || {
                let mut blocks: Vec<Vec<u8>> = Vec::new();
                loop {
                    blocks.push(vec![1u8; 8 << 20]);
                }
            },
            &emit,
        ) {
            Some(ended) => ended,
            None => return,
        },
        other => format!("unknown action {other:?}"),
    };
    emit(&outcome);
}
