//! `left4me-sandbox-probe`: one harmless or malicious action per invocation, run by the
//! privileged tests under the sandbox. It prints one line, `ok [detail]` or `err ERRNO`, and
//! exits 0, unless the kernel kills it (which is the expected outcome of `int80`).
//!
//! Every action is a plain system call with the arguments an escape attempt would use; no
//! library in between decides anything.

use std::ffi::CString;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};

fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EBADF => "EBADF",
        libc::EACCES => "EACCES",
        libc::EEXIST => "EEXIST",
        libc::EINVAL => "EINVAL",
        libc::ENOTTY => "ENOTTY",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::ENOTDIR => "ENOTDIR",
        libc::EXDEV => "EXDEV",
        _ => return format!("errno{errno}"),
    };
    name.to_owned()
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `ok` for a non-negative return, else `err ERRNO`.
fn report(ret: i64) -> String {
    if ret >= 0 {
        "ok".into()
    } else {
        format!("err {}", errno_name(last_errno()))
    }
}

fn io_report<T>(result: std::io::Result<T>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => format!("err {}", errno_name(e.raw_os_error().unwrap_or(0))),
    }
}

fn cstr(text: &str) -> CString {
    CString::new(text).expect("no NUL in probe arguments")
}

fn socket(domain: i32, kind: i32, protocol: i32) -> String {
    // SAFETY: plain integer arguments; the descriptor, if any, is closed right away.
    let fd = unsafe { libc::socket(domain, kind, protocol) };
    if fd >= 0 {
        // SAFETY: `fd` is a descriptor this function just created.
        unsafe { libc::close(fd) };
    }
    report(i64::from(fd))
}

fn abstract_connect(name: &str) -> String {
    // SAFETY: plain integer arguments.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
    if fd < 0 {
        return report(-1);
    }
    // SAFETY: `sockaddr_un` is plain data; the name is copied after the leading NUL that makes
    // the address abstract, within the bounds of `sun_path` (checked).
    let ret = unsafe {
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = name.as_bytes();
        assert!(bytes.len() < addr.sun_path.len());
        for (i, b) in bytes.iter().enumerate() {
            addr.sun_path[i + 1] = *b as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sa_family_t>() + 1 + bytes.len();
        let ret = libc::connect(fd, (&raw const addr).cast(), len as libc::socklen_t);
        let saved = last_errno();
        libc::close(fd);
        *libc::__errno_location() = saved;
        ret
    };
    report(i64::from(ret))
}

fn listen_unbound() -> String {
    // SAFETY: plain integer arguments on a descriptor created here and closed here.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return report(-1);
        }
        let ret = libc::listen(fd, 1);
        let saved = last_errno();
        libc::close(fd);
        *libc::__errno_location() = saved;
        report(i64::from(ret))
    }
}

/// `socket(AF_INET, SOCK_STREAM, protocol)`, then `op` with the socket and `addr`; the socket is
/// closed keeping `op`'s errno, and the outcome reported (`ok`, `err E…`, `err E… (socket)`).
fn on_tcp_socket(
    protocol: i32,
    addr: std::net::SocketAddrV4,
    op: impl FnOnce(i32, *const libc::sockaddr, libc::socklen_t) -> i64,
) -> String {
    // SAFETY: plain integer arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, protocol) };
    if fd < 0 {
        return format!("{} (socket)", report(-1));
    }
    // SAFETY: `sockaddr_in` is plain data, zeroed then filled in, and `op` gets it with its
    // size; the descriptor is ours and closed once; errno is saved across the close.
    let ret = unsafe {
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_port = addr.port().to_be();
        sin.sin_addr.s_addr = u32::from(*addr.ip()).to_be();
        let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let ret = op(fd, (&raw const sin).cast(), size);
        let saved = last_errno();
        libc::close(fd);
        *libc::__errno_location() = saved;
        ret
    };
    report(ret)
}

fn loopback(port: u16) -> std::net::SocketAddrV4 {
    std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port)
}

/// `sendto(MSG_FASTOPEN)` to 127.0.0.1:`port`: a TCP connect made inside a send, which
/// Landlock's connect check does not see.
fn sendto_fastopen(port: u16) -> String {
    let payload = b"GET / HTTP/1.0\r\n\r\n";
    on_tcp_socket(0, loopback(port), |fd, addr, len| {
        // SAFETY: the payload and address are valid for the lengths given.
        let sent = unsafe {
            libc::sendto(
                fd,
                payload.as_ptr().cast(),
                payload.len(),
                libc::MSG_FASTOPEN,
                addr,
                len,
            )
        };
        if sent < 0 { -1 } else { 0 }
    })
}

/// `bind` to 127.0.0.1:`port`, without `listen`.
fn bind_tcp(port: u16) -> String {
    on_tcp_socket(0, loopback(port), |fd, addr, len| {
        // SAFETY: the address is valid for the length given.
        let ret = unsafe { libc::bind(fd, addr, len) };
        i64::from(ret)
    })
}

/// Creates a new file with a unique name in `dir` (`O_CREAT | O_EXCL`).
fn create_new(dir: &str) -> String {
    let path = format!("{dir}/new-{}", std::process::id());
    io_report(
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path),
    )
}

fn mount_tmpfs(target: &str) -> String {
    let _ = std::fs::create_dir_all(target);
    let (src, dst, fs) = (cstr("none"), cstr(target), cstr("tmpfs"));
    // SAFETY: NUL-terminated strings that outlive the call; null data is allowed.
    let ret = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
    report(i64::from(ret))
}

fn unshare(flags: i32) -> String {
    // SAFETY: unshare only changes this (single-threaded) probe's own namespaces.
    report(i64::from(unsafe { libc::unshare(flags) }))
}

fn clone_newuser() -> String {
    // SAFETY: a fork-like clone (no CLONE_VM, null stack); the child only calls `_exit`.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        // SAFETY: immediate exit of the child, no destructors.
        unsafe { libc::_exit(0) };
    }
    if pid > 0 {
        // SAFETY: reaping the child just created.
        unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), 0) };
    }
    report(pid)
}

fn clone3() -> String {
    /// `struct clone_args` (the first 64 bytes, CLONE_ARGS_SIZE_VER0).
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
    }
    let args = CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid `clone_args` of the size passed; without CLONE_VM the child is a
    // fork-like copy that only calls `_exit`.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &raw const args,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        // SAFETY: immediate exit of the child.
        unsafe { libc::_exit(0) };
    }
    if pid > 0 {
        // SAFETY: reaping the child just created.
        unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), 0) };
    }
    report(pid)
}

fn io_uring_setup() -> String {
    let mut params = [0u8; 120]; // struct io_uring_params
    // SAFETY: `params` is a zeroed buffer of the size of `struct io_uring_params`.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd >= 0 {
        // SAFETY: closing the ring just created.
        unsafe { libc::close(fd as i32) };
    }
    report(fd)
}

fn ptrace_attach(pid: i32) -> String {
    // SAFETY: PTRACE_ATTACH with integer arguments; on success the tracee is detached again.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_ATTACH,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    if ret == 0 {
        // SAFETY: wait for the attach stop, then detach.
        unsafe {
            libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL);
            libc::ptrace(
                libc::PTRACE_DETACH,
                pid,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            );
        }
    }
    report(ret)
}

fn chmod_suid(path: &str) -> String {
    if let Err(e) = std::fs::write(path, "#!/bin/sh\n") {
        return format!(
            "err {} (creating)",
            errno_name(e.raw_os_error().unwrap_or(0))
        );
    }
    let p = cstr(path);
    // SAFETY: NUL-terminated path that outlives the call.
    report(i64::from(unsafe { libc::chmod(p.as_ptr(), 0o4755) }))
}

fn create_suid(path: &str) -> String {
    let p = cstr(path);
    // SAFETY: NUL-terminated path; the descriptor, if any, is closed.
    let fd = unsafe {
        libc::open(
            p.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o4755 as libc::c_uint,
        )
    };
    if fd >= 0 {
        // SAFETY: closing the descriptor just opened.
        unsafe { libc::close(fd) };
    }
    report(i64::from(fd))
}

fn tiocsti() -> String {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return report(-1);
    }
    let byte = b'x';
    // SAFETY: TIOCSTI reads one byte from the pointer given; on a pipe the kernel answers
    // ENOTTY, unless seccomp answers first.
    let ret = unsafe { libc::ioctl(fds[0], libc::TIOCSTI, &raw const byte) };
    let saved = last_errno();
    // SAFETY: closing the pipe created above.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
        *libc::__errno_location() = saved;
    }
    report(i64::from(ret))
}

fn fionread() -> String {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return report(-1);
    }
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let ret = unsafe { libc::ioctl(fds[0], libc::FIONREAD, &raw mut n) };
    // SAFETY: closing the pipe created above.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    report(i64::from(ret))
}

fn kill(pid: i32, signal: i32) -> String {
    // SAFETY: integer arguments.
    report(i64::from(unsafe { libc::kill(pid, signal) }))
}

fn memfd() -> String {
    let name = cstr("probe");
    // SAFETY: NUL-terminated name; the descriptor, if any, is closed.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    if fd >= 0 {
        // SAFETY: closing the descriptor just created.
        unsafe { libc::close(fd) };
    }
    report(i64::from(fd))
}

fn setuid0() -> String {
    // SAFETY: integer argument.
    report(i64::from(unsafe { libc::setuid(0) }))
}

/// Descriptors above 2 that are open.
fn open_fds() -> String {
    let mut open = Vec::new();
    for fd in 3..4096 {
        // SAFETY: F_GETFD only queries the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            open.push(fd.to_string());
        }
    }
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

fn credentials() -> String {
    // SAFETY: the id getters take no arguments; getgroups with size 0 only counts.
    let (uid, gid, groups) = unsafe {
        (
            libc::getuid(),
            libc::getgid(),
            libc::getgroups(0, std::ptr::null_mut()),
        )
    };
    let caps = match rustix::thread::capabilities(None) {
        Ok(sets) => format!(
            "{:x}/{:x}/{:x}",
            sets.effective.bits(),
            sets.permitted.bits(),
            sets.inheritable.bits()
        ),
        Err(e) => format!("capget:{e}"),
    };
    let mut bounding = 0u64;
    for cap in 0..64 {
        // SAFETY: PR_CAPBSET_READ takes an integer and returns 1, 0 or -1 (past the last cap).
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) };
        if r < 0 {
            break;
        }
        if r == 1 {
            bounding |= 1 << cap;
        }
    }
    let mut ambient = 0u64;
    for cap in 0..64 {
        // SAFETY: as above.
        let r =
            unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_IS_SET, cap, 0, 0) };
        if r < 0 {
            break;
        }
        if r == 1 {
            ambient |= 1 << cap;
        }
    }
    // SAFETY: integer arguments, plain queries.
    let (nnp, seccomp) = unsafe {
        (
            libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0),
            libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0),
        )
    };
    format!(
        "ok uid={uid} gid={gid} groups={groups} caps={caps} bounding={bounding:x} ambient={ambient:x} nnp={nnp} seccomp={seccomp}"
    )
}

#[cfg(target_arch = "x86_64")]
fn int80() -> String {
    let ret: i64;
    // SAFETY: the i386 system call gate with eax = 20 (getpid on i386), which takes no
    // arguments and touches no memory. The kernel clobbers r8-r11 on this path.
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inlateout("rax") 20i64 => ret,
            lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
            options(nostack)
        );
    }
    if ret >= 0 {
        format!("ok pid {ret}")
    } else {
        format!("err {}", errno_name((-ret) as i32))
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn int80() -> String {
    "err not-x86_64".into()
}

fn exec(path: &str) -> String {
    use std::os::unix::process::CommandExt;
    let error = std::process::Command::new(path).exec();
    format!("err {}", errno_name(error.raw_os_error().unwrap_or(0)))
}

fn connect(addr: &str) -> String {
    let addr: SocketAddr = addr.parse().expect("HOST:PORT");
    io_report(TcpStream::connect_timeout(
        &addr,
        std::time::Duration::from_secs(3),
    ))
}

/// `socket(AF_INET, SOCK_STREAM, protocol)` then `connect` (MPTCP is protocol 262).
fn connect_proto(protocol: i32, addr: &str) -> String {
    let addr: std::net::SocketAddrV4 = addr.parse().expect("IPv4:PORT");
    on_tcp_socket(protocol, addr, |fd, addr, len| {
        // SAFETY: the address is valid for the length given.
        let ret = unsafe { libc::connect(fd, addr, len) };
        i64::from(ret)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let num = |i: usize| arg(i).parse::<i32>().expect("a number");
    let line = match arg(0) {
        "read-file" => io_report(std::fs::read(arg(1))),
        "read-dir" => io_report(std::fs::read_dir(arg(1))),
        "create-new" => create_new(arg(1)),
        "write-file" => io_report(std::fs::write(arg(1), "written by the probe\n")),
        "append-file" => io_report(
            std::fs::OpenOptions::new()
                .append(true)
                .open(arg(1))
                .and_then(|mut f| f.write_all(b"x")),
        ),
        "connect" => connect(arg(1)),
        "bind-tcp" => bind_tcp(num(1) as u16),
        "sendto-fastopen" => sendto_fastopen(num(1) as u16),
        "listen" => listen_unbound(),
        "socket" => socket(num(1), num(2), num(3)),
        "abstract-connect" => abstract_connect(arg(1)),
        "unshare" => unshare(num(1)),
        "mount" => mount_tmpfs(arg(1)),
        "clone-newuser" => clone_newuser(),
        "clone3" => clone3(),
        "io-uring" => io_uring_setup(),
        "ptrace" => ptrace_attach(num(1)),
        // SAFETY: getppid takes no arguments.
        "ptrace-parent" => ptrace_attach(unsafe { libc::getppid() }),
        "connect-proto" => connect_proto(num(1), arg(2)),
        "chmod-suid" => chmod_suid(arg(1)),
        "create-suid" => create_suid(arg(1)),
        "tiocsti" => tiocsti(),
        "fionread" => fionread(),
        "kill" => kill(num(1), num(2)),
        "memfd" => memfd(),
        "setuid0" => setuid0(),
        "fds" => open_fds(),
        "env" => environment(),
        "creds" => credentials(),
        "int80" => int80(),
        "exec" => exec(arg(1)),
        other => {
            eprintln!("unknown probe {other:?}");
            std::process::exit(2);
        }
    };
    println!("{line}");
}
