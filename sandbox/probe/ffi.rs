//! The C library functions and x86_64 constants the probe calls, declared here so the probe
//! needs no crate (the booted escape suite compiles it with plain `rustc`).

use std::ffi::{c_char, c_int, c_long, c_void};

unsafe extern "C" {
    pub fn syscall(number: c_long, ...) -> c_long;
    pub fn __errno_location() -> *mut c_int;
    pub fn fork() -> c_int;
    pub fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    pub fn _exit(status: c_int) -> !;
    pub fn kill(pid: c_int, sig: c_int) -> c_int;
    pub fn getppid() -> c_int;
    pub fn setsid() -> c_int;
    pub fn sleep(seconds: u32) -> u32;
    pub fn chmod(path: *const c_char, mode: u32) -> c_int;
    pub fn open(path: *const c_char, flags: c_int, ...) -> c_int;
    pub fn link(old: *const c_char, new: *const c_char) -> c_int;
    pub fn pipe(fds: *mut c_int) -> c_int;
    pub fn socket(domain: c_int, kind: c_int, protocol: c_int) -> c_int;
    pub fn connect(fd: c_int, addr: *const c_void, len: u32) -> c_int;
    pub fn listen(fd: c_int, backlog: c_int) -> c_int;
    pub fn sendto(
        fd: c_int,
        buf: *const c_void,
        len: usize,
        flags: c_int,
        addr: *const c_void,
        addr_len: u32,
    ) -> isize;
    pub fn close(fd: c_int) -> c_int;
    pub fn ptrace(request: c_int, pid: c_int, addr: *mut c_void, data: *mut c_void) -> c_long;
    pub fn mount(
        source: *const c_char,
        target: *const c_char,
        fstype: *const c_char,
        flags: u64,
        data: *const c_void,
    ) -> c_int;
    pub fn unshare(flags: c_int) -> c_int;
    pub fn setuid(uid: u32) -> c_int;
    pub fn prctl(option: c_int, ...) -> c_int;
    pub fn ioctl(fd: c_int, request: u64, ...) -> c_int;
    pub fn fcntl(fd: c_int, cmd: c_int, ...) -> c_int;
    pub fn getresuid(r: *mut u32, e: *mut u32, s: *mut u32) -> c_int;
    pub fn getresgid(r: *mut u32, e: *mut u32, s: *mut u32) -> c_int;
    pub fn getgroups(size: c_int, list: *mut u32) -> c_int;
}

pub const SYS_MMAP: c_long = 9;
pub const SYS_MPROTECT: c_long = 10;
pub const SYS_MUNMAP: c_long = 11;
pub const SYS_SHMGET: c_long = 29;
pub const SYS_SHMCTL: c_long = 31;
pub const SYS_UNAME: c_long = 63;
pub const SYS_SYSLOG: c_long = 103;
pub const SYS_PERSONALITY: c_long = 135;
pub const SYS_SCHED_SETSCHEDULER: c_long = 144;
pub const SYS_ADJTIMEX: c_long = 159;
pub const SYS_SETHOSTNAME: c_long = 170;
pub const SYS_IOPL: c_long = 172;
pub const SYS_CLOCK_SETTIME: c_long = 227;
pub const SYS_CLOCK_GETTIME: c_long = 228;
pub const SYS_SETNS: c_long = 308;
pub const SYS_FINIT_MODULE: c_long = 313;
pub const SYS_CLONE: c_long = 56;
pub const SYS_CAPGET: c_long = 125;
pub const SYS_KEYCTL: c_long = 250;
pub const SYS_PERF_EVENT_OPEN: c_long = 298;
pub const SYS_MEMFD_CREATE: c_long = 319;
pub const SYS_BPF: c_long = 321;
pub const SYS_IO_URING_SETUP: c_long = 425;
pub const SYS_OPEN_TREE: c_long = 428;
pub const SYS_CLONE3: c_long = 435;
pub const SIGCHLD: c_long = 17;
pub const AF_UNIX: c_int = 1;
pub const AF_INET: c_int = 2;
pub const SOCK_STREAM: c_int = 1;
pub const MSG_FASTOPEN: c_int = 0x2000_0000;
pub const PTRACE_ATTACH: c_int = 16;
pub const PTRACE_DETACH: c_int = 17;
pub const WALL: c_int = 0x4000_0000;
pub const PR_GET_SECCOMP: c_int = 21;
pub const PR_GET_MDWE: c_int = 66;
pub const PROT_RW: c_long = 0x1 | 0x2;
pub const PROT_RX: c_long = 0x1 | 0x4;
pub const PROT_RWX: c_long = 0x1 | 0x2 | 0x4;
pub const MAP_PRIVATE_ANONYMOUS: c_long = 0x02 | 0x20;
pub const READ_IMPLIES_EXEC: c_long = 0x0040_0000;
pub const SCHED_FIFO: c_long = 1;
pub const CLOCK_REALTIME: c_long = 0;
pub const SYSLOG_ACTION_SIZE_BUFFER: c_long = 10;
pub const IPC_CREAT: c_long = 0o1000;
pub const IPC_RMID: c_long = 0;
pub const O_RDONLY: c_int = 0;
pub const PR_CAPBSET_READ: c_int = 23;
pub const PR_GET_NO_NEW_PRIVS: c_int = 39;
pub const PR_CAP_AMBIENT: c_int = 47;
pub const PR_CAP_AMBIENT_IS_SET: u64 = 1;
pub const TIOCSTI: u64 = 0x5412;
pub const FIONREAD: u64 = 0x541B;
pub const F_GETFD: c_int = 1;
pub const O_WRONLY: c_int = 0o1;
pub const O_CREAT: c_int = 0o100;
pub const O_CLOEXEC: c_int = 0o2_000_000;

/// The calling thread's `errno`.
pub fn errno() -> i32 {
    // SAFETY: libc's thread-local errno, valid for the thread's lifetime.
    unsafe { *__errno_location() }
}

/// Sets `errno` (to keep a call's errno across the `close` after it).
pub fn set_errno(value: i32) {
    // SAFETY: as above.
    unsafe { *__errno_location() = value };
}

/// The symbolic name of an errno value.
pub fn errno_name(e: i32) -> String {
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
        75 => "EOVERFLOW",
        93 => "EPROTONOSUPPORT",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        101 => "ENETUNREACH",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        113 => "EHOSTUNREACH",
        _ => return format!("errno{e}"),
    };
    name.to_owned()
}
