//! The build role's seccomp policy: an allow-list, one line of reason per system call.
//!
//! It was drawn from `strace -f -c` of bash, curl, wget, tar (gz/xz/bz2), unzip, 7z, md5sum,
//! sha256sum, coreutils, sed/grep/awk and python3 (urllib, zipfile, tarfile, shutil, subprocess)
//! doing a download-and-unpack build, then widened to the calls libc and those tools use on
//! other paths (legacy x86_64 variants, timers, polling). Anything not listed fails with
//! `EPERM`; a call from another architecture (the i386 `int 0x80` gate, x32) kills the process.
//!
//! `clone3` and `openat2` are answered with `ENOSYS`, so glibc and others fall back to `clone`
//! and `openat`, whose arguments the filter can inspect (in the newer calls they sit behind a
//! pointer).
//!
//! The argument rules are compiled by `seccompiler`; the dispatch on the system call number is
//! a balanced tree built here (seccompiler chains one comparison per system call, which made
//! installing the filter cost ~0.6 ms: the kernel emulates the filter for every system call
//! number to build its action cache). A lookup now takes about a dozen instructions.

use seccompiler::{
    BpfProgram, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule, sock_filter,
};

use crate::policy::Policy;

/// Errors compiling or installing the filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// This architecture is not one seccompiler knows.
    #[error("seccomp: unsupported architecture {0}")]
    Arch(&'static str),
    /// A rule could not be compiled.
    #[error("seccomp: compiling the filter for {name}")]
    Compile {
        /// The system call whose rule failed.
        name: &'static str,
        /// Why.
        #[source]
        source: seccompiler::BackendError,
    },
    /// The program does not fit the kernel's limit (4096 instructions).
    #[error("seccomp: the filter has {0} instructions, more than the kernel's 4096")]
    TooLong(usize),
    /// The kernel refused the filter.
    #[error("seccomp: installing the filter")]
    Install(#[source] seccompiler::Error),
}

/// One allowed system call.
#[derive(Debug, Clone)]
pub struct Allowed {
    /// Its name, as in `man 2`.
    pub name: &'static str,
    /// Its number on this architecture.
    pub nr: i64,
    /// Why a build needs it.
    pub reason: &'static str,
    /// When it is allowed: `None` always, else the argument rules (any one must match).
    pub condition: Option<&'static str>,
    rules: Vec<SeccompRule>,
}

/// System calls answered with `ENOSYS` (so callers fall back to an inspectable variant).
pub const ENOSYS: &[(&str, i64, &str)] = &[
    (
        "clone3",
        libc::SYS_clone3,
        "flags sit in a struct the filter cannot read; glibc falls back to clone",
    ),
    (
        "openat2",
        libc::SYS_openat2,
        "mode sits in a struct the filter cannot read; callers fall back to openat",
    ),
];

/// Refused with `EOPNOTSUPP` rather than `EPERM`: writing extended attributes could smuggle
/// `user.overlay.*` or `security.*` into the overlay, and "not supported" is the answer `cp -a`,
/// `cp -p`, `install` and `mv` quietly accept (with `EPERM` they report an error per file).
pub const EOPNOTSUPP: &[(&str, i64, &str)] = &[
    (
        "setxattr",
        libc::SYS_setxattr,
        "write an extended attribute",
    ),
    (
        "lsetxattr",
        libc::SYS_lsetxattr,
        "write an extended attribute of a symlink",
    ),
    (
        "fsetxattr",
        libc::SYS_fsetxattr,
        "write an extended attribute of an open file",
    ),
    (
        "removexattr",
        libc::SYS_removexattr,
        "remove an extended attribute",
    ),
    (
        "lremovexattr",
        libc::SYS_lremovexattr,
        "remove an extended attribute of a symlink",
    ),
    (
        "fremovexattr",
        libc::SYS_fremovexattr,
        "remove an extended attribute of an open file",
    ),
];

const SET_ID_BITS: u64 = (libc::S_ISUID | libc::S_ISGID) as u64;
/// `O_CREAT` and `__O_TMPFILE`: the open flags under which the mode argument is used.
const CREATING: u64 = (libc::O_CREAT | 0o20_000_000) as u64;
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;
/// `prctl` options a build may use; the others either need capabilities it lacks or loosen
/// what the sandbox set (dumpable, ptracer, …).
const PRCTL_OPTIONS: &[u64] = &[
    libc::PR_SET_PDEATHSIG as u64,
    libc::PR_GET_PDEATHSIG as u64,
    libc::PR_GET_DUMPABLE as u64,
    libc::PR_SET_NAME as u64,
    libc::PR_GET_NAME as u64,
    libc::PR_GET_SECCOMP as u64,
    libc::PR_CAPBSET_READ as u64,
    libc::PR_SET_NO_NEW_PRIVS as u64,
    libc::PR_GET_NO_NEW_PRIVS as u64,
    libc::PR_CAP_AMBIENT as u64,
    0x5356_4d41, // PR_SET_VMA: glibc names anonymous mappings
];

/// `MSG_FASTOPEN` in the flags of the send calls.
const MSG_FASTOPEN: u64 = 0x2000_0000;

/// One 32-bit argument comparison (every argument compared is an `int` or a mode: the kernel
/// ignores the upper half, so must the filter).
fn arg(
    name: &'static str,
    index: u8,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, SeccompError> {
    SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value)
        .map_err(|source| SeccompError::Compile { name, source })
}

fn rule(
    name: &'static str,
    conditions: Vec<SeccompCondition>,
) -> Result<SeccompRule, SeccompError> {
    SeccompRule::new(conditions).map_err(|source| SeccompError::Compile { name, source })
}

/// No set-id bits in the mode argument `index`.
fn no_set_id(name: &'static str, index: u8) -> Result<Vec<SeccompRule>, SeccompError> {
    Ok(vec![rule(
        name,
        vec![arg(name, index, SeccompCmpOp::MaskedEq(SET_ID_BITS), 0)?],
    )?])
}

/// Not creating (flags argument `flags`), or creating without set-id bits (mode argument `mode`).
fn open_rules(name: &'static str, flags: u8, mode: u8) -> Result<Vec<SeccompRule>, SeccompError> {
    Ok(vec![
        rule(
            name,
            vec![arg(name, flags, SeccompCmpOp::MaskedEq(CREATING), 0)?],
        )?,
        rule(
            name,
            vec![arg(name, mode, SeccompCmpOp::MaskedEq(SET_ID_BITS), 0)?],
        )?,
    ])
}

macro_rules! always {
    ($($sys:ident => $reason:literal,)*) => {
        vec![$(Allowed {
            name: stringify!($sys).trim_start_matches("SYS_"),
            nr: libc::$sys,
            reason: $reason,
            condition: None,
            rules: Vec::new(),
        },)*]
    };
}

fn when(
    nr: i64,
    name: &'static str,
    reason: &'static str,
    condition: &'static str,
    rules: Vec<SeccompRule>,
) -> Allowed {
    Allowed {
        name,
        nr,
        reason,
        condition: Some(condition),
        rules,
    }
}

/// The allow-list for `policy`, in the order of the README.
pub fn allowed(policy: &Policy) -> Result<Vec<Allowed>, SeccompError> {
    let mut list = always! {
        // descriptors and plain I/O
        SYS_read => "read open files and pipes",
        SYS_write => "write open files and pipes",
        SYS_readv => "vectored read (glibc stdio, python)",
        SYS_writev => "vectored write (glibc stdio, curl)",
        SYS_pread64 => "positioned read (unzip, 7z, python zipfile)",
        SYS_pwrite64 => "positioned write (7z, unzip)",
        SYS_preadv => "positioned vectored read",
        SYS_pwritev => "positioned vectored write",
        SYS_preadv2 => "positioned vectored read with flags (python)",
        SYS_pwritev2 => "positioned vectored write with flags",
        SYS_lseek => "seek in files (tar, unzip, 7z)",
        SYS_close => "close descriptors",
        SYS_close_range => "close many descriptors (python subprocess)",
        SYS_dup => "duplicate descriptors (bash redirections)",
        SYS_dup3 => "duplicate descriptors with flags",
        SYS_fcntl => "descriptor flags and record locks; F_SETOWN signals are scoped by Landlock",
        SYS_flock => "advisory file locks",
        SYS_fsync => "flush a file",
        SYS_fdatasync => "flush a file's data",
        SYS_ftruncate => "truncate an open file (Landlock checks the right at open)",
        SYS_truncate => "truncate by path (Landlock Truncate right)",
        SYS_fallocate => "preallocate output (7z, cp)",
        SYS_fadvise64 => "access-pattern hints (cp, tar)",
        SYS_sendfile => "in-kernel copy (cp, python shutil)",
        SYS_copy_file_range => "in-kernel copy (cp, python shutil)",
        SYS_splice => "in-kernel pipe copy",
        SYS_tee => "in-kernel pipe duplication",
        SYS_pipe2 => "pipes between commands (bash |)",
        SYS_ppoll => "wait on descriptors",
        SYS_pselect6 => "wait on descriptors (bash read -t, wget)",
        SYS_epoll_create1 => "event loops (python selectors, wget)",
        SYS_epoll_ctl => "event loops",
        SYS_epoll_pwait => "event loops",
        SYS_epoll_pwait2 => "event loops",
        SYS_eventfd2 => "event notification descriptors",
        SYS_signalfd4 => "signals as descriptors",
        SYS_timerfd_create => "timers as descriptors",
        SYS_timerfd_settime => "timers as descriptors",
        SYS_timerfd_gettime => "timers as descriptors",
        SYS_inotify_init1 => "watch files (tail -f)",
        SYS_inotify_add_watch => "watch files",
        SYS_inotify_rm_watch => "watch files",
        // paths and metadata (Landlock decides what may be opened, created or removed)
        SYS_newfstatat => "stat by path",
        SYS_fstat => "stat an open file",
        SYS_statx => "extended stat (coreutils)",
        SYS_statfs => "file system info (df, cp)",
        SYS_fstatfs => "file system info of an open file",
        SYS_faccessat => "permission checks (bash test -x)",
        SYS_faccessat2 => "permission checks (bash, coreutils)",
        SYS_readlinkat => "read symlinks",
        SYS_getdents64 => "list directories",
        SYS_getcwd => "current directory",
        SYS_chdir => "change directory (bash cd)",
        SYS_fchdir => "change directory by descriptor (find, rm -r)",
        SYS_mkdirat => "create directories (tar, unzip, mkdir)",
        SYS_unlinkat => "remove files and directories (rm)",
        SYS_renameat => "rename (mv)",
        SYS_renameat2 => "rename (mv, python os.replace)",
        SYS_linkat => "hard links (tar, ln)",
        SYS_symlinkat => "symlinks (tar, ln -s)",
        SYS_fchown => "chown to the ids the caller already has (tar, cp -p); others need CAP_CHOWN",
        SYS_fchownat => "likewise by path",
        SYS_utimensat => "set file times (tar, touch, unzip)",
        SYS_umask => "file creation mask",
        SYS_getxattr => "read extended attributes (cp -a, ls); writing them is refused",
        SYS_lgetxattr => "read extended attributes of symlinks",
        SYS_fgetxattr => "read extended attributes of open files",
        SYS_listxattr => "list extended attributes",
        SYS_llistxattr => "list extended attributes of symlinks",
        SYS_flistxattr => "list extended attributes of open files",
        // memory
        SYS_brk => "heap",
        SYS_mmap => "memory maps, shared libraries (exec needs Landlock's Execute right)",
        SYS_munmap => "memory maps",
        SYS_mremap => "grow memory maps (realloc)",
        SYS_mprotect => "memory protection (ld.so relocation)",
        SYS_madvise => "memory hints (malloc)",
        SYS_msync => "flush file maps",
        // processes
        SYS_execve => "run programs (Landlock's Execute right decides which)",
        SYS_exit => "end a thread",
        SYS_exit_group => "end the process",
        SYS_wait4 => "reap children (bash)",
        SYS_waitid => "reap children (python)",
        SYS_getpid => "own pid",
        SYS_getppid => "parent pid",
        SYS_gettid => "thread id",
        SYS_getuid => "own ids",
        SYS_geteuid => "own ids",
        SYS_getgid => "own ids",
        SYS_getegid => "own ids",
        SYS_getresuid => "own ids",
        SYS_getresgid => "own ids",
        SYS_getgroups => "own groups (none)",
        SYS_getpgid => "process groups (bash job control)",
        SYS_setpgid => "process groups (bash job control)",
        SYS_getsid => "session id",
        SYS_setsid => "new session (setsid, daemonising tools)",
        SYS_set_tid_address => "thread start-up (glibc)",
        SYS_set_robust_list => "thread start-up (glibc)",
        SYS_rseq => "restartable sequences (glibc)",
        SYS_getrlimit => "read resource limits",
        SYS_setrlimit => "lower own resource limits (raising needs CAP_SYS_RESOURCE)",
        SYS_getrusage => "resource usage (time, python resource)",
        SYS_times => "process times (bash times)",
        SYS_sched_yield => "yield the CPU",
        SYS_sched_getaffinity => "CPU count (nproc, 7z, python os.cpu_count)",
        SYS_capget => "read own capabilities (all empty)",
        SYS_uname => "kernel name (uname, python platform)",
        SYS_sysinfo => "memory size (sort, 7z)",
        SYS_getrandom => "randomness (python, TLS)",
        SYS_getcpu => "current CPU (glibc malloc)",
        // signals
        SYS_rt_sigaction => "signal handlers",
        SYS_rt_sigprocmask => "signal masks",
        SYS_rt_sigreturn => "return from a signal handler",
        SYS_rt_sigsuspend => "wait for a signal (bash wait)",
        SYS_rt_sigtimedwait => "wait for a signal",
        SYS_rt_sigpending => "pending signals",
        SYS_sigaltstack => "alternate signal stack (Rust, python)",
        SYS_kill => "signal own processes; Landlock's signal scope refuses everything outside",
        SYS_tkill => "signal own threads",
        SYS_tgkill => "signal own threads (raise, abort)",
        SYS_restart_syscall => "restart an interrupted sleep",
        SYS_getitimer => "interval timers",
        SYS_setitimer => "interval timers (timeout, python signal.setitimer)",
        // time
        SYS_clock_gettime => "clocks (vDSO fallback)",
        SYS_clock_getres => "clock resolution",
        SYS_clock_nanosleep => "sleep",
        SYS_nanosleep => "sleep",
        SYS_gettimeofday => "wall clock (vDSO fallback)",
        SYS_timer_create => "POSIX timers (timeout)",
        SYS_timer_settime => "POSIX timers",
        SYS_timer_gettime => "POSIX timers",
        SYS_timer_getoverrun => "POSIX timers",
        SYS_timer_delete => "POSIX timers",
        SYS_futex => "locks and thread joins",
        // sockets (created only as allowed below; Landlock decides TCP connect and bind)
        SYS_connect => "connect; TCP only to the allowed ports (Landlock)",
        SYS_getsockname => "socket addresses (curl, resolver)",
        SYS_getpeername => "socket addresses (curl)",
        SYS_setsockopt => "socket options (TCP_NODELAY, timeouts)",
        SYS_getsockopt => "socket options (connect result)",
        SYS_recvfrom => "receive (DNS, HTTP)",
        SYS_recvmsg => "receive with ancillary data",
        SYS_recvmmsg => "batched receive",
        SYS_shutdown => "half-close connections",
        // self-sandboxing tools may only restrict themselves further
        SYS_landlock_create_ruleset => "tools that sandbox themselves (xz 5.4+); a nested domain only narrows",
        SYS_landlock_add_rule => "tools that sandbox themselves",
        SYS_landlock_restrict_self => "tools that sandbox themselves",
        SYS_seccomp => "tools that add their own filter (file); filters only narrow",
    };
    #[cfg(target_arch = "x86_64")]
    list.extend(always! {
        // the pre-*at variants static or older binaries still call (x86_64 only)
        SYS_arch_prctl => "thread-local storage set-up (glibc)",
        SYS_stat => "stat (legacy)",
        SYS_lstat => "lstat (legacy)",
        SYS_access => "access (legacy)",
        SYS_readlink => "readlink (legacy)",
        SYS_getdents => "list directories (legacy)",
        SYS_mkdir => "mkdir (legacy)",
        SYS_rmdir => "rmdir (legacy)",
        SYS_unlink => "unlink (legacy)",
        SYS_rename => "rename (legacy)",
        SYS_link => "link (legacy)",
        SYS_symlink => "symlink (legacy)",
        SYS_chown => "chown (legacy; as fchownat)",
        SYS_lchown => "lchown (legacy; as fchownat)",
        SYS_utime => "utime (legacy)",
        SYS_utimes => "utimes (legacy)",
        SYS_futimesat => "futimesat (legacy)",
        SYS_dup2 => "dup2 (bash redirections)",
        SYS_pipe => "pipe (legacy)",
        SYS_poll => "poll (curl, python)",
        SYS_select => "select (legacy)",
        SYS_epoll_create => "epoll_create (legacy)",
        SYS_epoll_wait => "epoll_wait (legacy)",
        SYS_eventfd => "eventfd (legacy)",
        SYS_signalfd => "signalfd (legacy)",
        SYS_inotify_init => "inotify_init (legacy)",
        SYS_fork => "fork (legacy; no namespace flags possible)",
        SYS_vfork => "vfork (posix_spawn in older libcs)",
        SYS_getpgrp => "getpgrp (bash)",
        SYS_pause => "pause (legacy)",
        SYS_alarm => "alarm (legacy)",
        SYS_time => "time (vDSO fallback)",
    });

    // Conditional rules.
    // MSG_FASTOPEN connects a TCP socket inside sendto/sendmsg, past Landlock's connect check
    // (landlock-lsm/linux#41): refused, so TCP reaches only the allowed ports.
    for (nr, name, reason, flags) in [
        (libc::SYS_sendto, "sendto", "send (DNS, HTTP)", 3),
        (libc::SYS_sendmsg, "sendmsg", "send with ancillary data", 2),
        (
            libc::SYS_sendmmsg,
            "sendmmsg",
            "glibc resolver sends A and AAAA queries together",
            3,
        ),
    ] {
        list.push(when(
            nr,
            name,
            reason,
            "no `MSG_FASTOPEN` (a connect Landlock does not see)",
            vec![rule(
                name,
                vec![arg(name, flags, SeccompCmpOp::MaskedEq(MSG_FASTOPEN), 0)?],
            )?],
        ));
    }
    list.push(when(
        libc::SYS_clone,
        "clone",
        "fork and threads (glibc)",
        "no CLONE_NEW* namespace flag",
        vec![rule(
            "clone",
            vec![arg("clone", 0, SeccompCmpOp::MaskedEq(NAMESPACE_FLAGS), 0)?],
        )?],
    ));
    list.push(when(
        libc::SYS_openat,
        "openat",
        "open files (Landlock decides which)",
        "no S_ISUID/S_ISGID in the mode when creating",
        open_rules("openat", 2, 3)?,
    ));
    for (nr, name, index) in [
        (libc::SYS_fchmod, "fchmod", 1),
        (libc::SYS_fchmodat, "fchmodat", 2),
        (libc::SYS_fchmodat2, "fchmodat2", 2),
    ] {
        list.push(when(
            nr,
            name,
            "set modes (tar, unzip, chmod)",
            "no S_ISUID/S_ISGID: set-id files would run as the game user on the host",
            no_set_id(name, index)?,
        ));
    }
    list.push(when(
        libc::SYS_mknodat,
        "mknodat",
        "FIFOs (mkfifo); device nodes need CAP_MKNOD",
        "no S_ISUID/S_ISGID",
        no_set_id("mknodat", 2)?,
    ));
    #[cfg(target_arch = "x86_64")]
    {
        list.push(when(
            libc::SYS_open,
            "open",
            "open (legacy)",
            "as openat",
            open_rules("open", 1, 2)?,
        ));
        list.push(when(
            libc::SYS_creat,
            "creat",
            "creat (legacy)",
            "no S_ISUID/S_ISGID",
            no_set_id("creat", 1)?,
        ));
        list.push(when(
            libc::SYS_chmod,
            "chmod",
            "chmod (legacy)",
            "no S_ISUID/S_ISGID",
            no_set_id("chmod", 1)?,
        ));
        list.push(when(
            libc::SYS_mknod,
            "mknod",
            "mknod (legacy)",
            "no S_ISUID/S_ISGID",
            no_set_id("mknod", 1)?,
        ));
    }
    list.push(when(
        libc::SYS_ioctl,
        "ioctl",
        "terminal and file ioctls (isatty, FIONREAD)",
        "not TIOCSTI (type into the terminal) nor TIOCLINUX",
        vec![rule(
            "ioctl",
            vec![
                arg("ioctl", 1, SeccompCmpOp::Ne, TIOCSTI)?,
                arg("ioctl", 1, SeccompCmpOp::Ne, TIOCLINUX)?,
            ],
        )?],
    ));
    let mut prctl = Vec::new();
    for &option in PRCTL_OPTIONS {
        prctl.push(rule(
            "prctl",
            vec![arg("prctl", 0, SeccompCmpOp::Eq, option)?],
        )?);
    }
    list.push(when(
        libc::SYS_prctl,
        "prctl",
        "process name, death signal, reading capabilities and no_new_privs",
        "only PR_{SET,GET}_PDEATHSIG, PR_GET_DUMPABLE, PR_{SET,GET}_NAME, PR_GET_SECCOMP, PR_CAPBSET_READ, PR_{SET,GET}_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_SET_VMA",
        prctl,
    ));
    list.push(when(
        libc::SYS_prlimit64,
        "prlimit64",
        "resource limits (bash ulimit, python resource)",
        "own process only (pid 0)",
        vec![rule(
            "prlimit64",
            vec![arg("prlimit64", 0, SeccompCmpOp::Eq, 0)?],
        )?],
    ));
    list.push(when(
        libc::SYS_socketpair,
        "socketpair",
        "connected pairs for in-process wake-ups (curl)",
        "AF_UNIX only (a pair cannot reach anything outside)",
        vec![rule(
            "socketpair",
            vec![arg(
                "socketpair",
                0,
                SeccompCmpOp::Eq,
                libc::AF_UNIX as u64,
            )?],
        )?],
    ));
    if policy.network_enabled() {
        let mut socket = Vec::new();
        for domain in [libc::AF_INET, libc::AF_INET6] {
            for (kind, protocol) in [
                (libc::SOCK_STREAM, 0),
                (libc::SOCK_STREAM, libc::IPPROTO_TCP),
                (libc::SOCK_DGRAM, 0),
                (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
            ] {
                socket.push(rule(
                    "socket",
                    vec![
                        arg("socket", 0, SeccompCmpOp::Eq, domain as u64)?,
                        arg("socket", 1, SeccompCmpOp::MaskedEq(0xf), kind as u64)?,
                        arg("socket", 2, SeccompCmpOp::Eq, protocol as u64)?,
                    ],
                )?);
            }
        }
        list.push(when(
            libc::SYS_socket,
            "socket",
            "TCP and UDP clients (curl, wget, DNS)",
            "AF_INET/AF_INET6 with SOCK_STREAM + protocol 0/IPPROTO_TCP or SOCK_DGRAM + 0/IPPROTO_UDP; no AF_UNIX, AF_NETLINK, AF_PACKET, raw, MPTCP or SCTP",
            socket,
        ));
    }
    Ok(list)
}

/// The `AUDIT_ARCH_*` value of this architecture.
fn audit_arch() -> Result<u32, SeccompError> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(0xc000_003e),
        "aarch64" => Ok(0xc000_00b7),
        "riscv64" => Ok(0xc000_00f3),
        other => Err(SeccompError::Arch(other)),
    }
}

/// `BPF_LD | BPF_W | BPF_ABS`.
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_RET | BPF_K`.
const BPF_RET_K: u16 = 0x06;
/// `BPF_JMP | BPF_JA`.
const BPF_JA: u16 = 0x05;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
const BPF_JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JGE | BPF_K`.
const BPF_JGE_K: u16 = 0x35;
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;
/// System calls compared linearly at a leaf of the dispatch tree.
const LEAF: usize = 8;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

fn ret(action: u32) -> sock_filter {
    stmt(BPF_RET_K, action)
}

fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA)
}

/// What the filter does once the number matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaf {
    /// Return this action.
    Ret(u32),
    /// Jump to the argument checks at this (reversed) index.
    Chain(usize),
}

/// A BPF program assembled back to front, so every jump goes to code already placed (BPF jumps
/// only forward). Index `i` of `rev` is instruction `len - 1 - i` of the program.
#[derive(Default)]
struct Assembler {
    rev: Vec<sock_filter>,
}

impl Assembler {
    /// Places `instruction` before everything placed so far; returns its reversed index.
    fn push(&mut self, instruction: sock_filter) -> usize {
        self.rev.push(instruction);
        self.rev.len() - 1
    }

    /// Places a forward-ordered block; returns the reversed index of its first instruction.
    fn block(&mut self, block: &[sock_filter]) -> usize {
        self.rev.extend(block.iter().rev().cloned());
        self.rev.len() - 1
    }

    /// The jump offset from the next instruction placed to `target`.
    fn offset(&self, target: usize) -> usize {
        self.rev.len() - target - 1
    }

    /// A jump-always to `target`; returns its index.
    fn jump_to(&mut self, target: usize) -> usize {
        let offset = self.offset(target) as u32;
        self.push(stmt(BPF_JA, offset))
    }

    fn finish(self) -> Vec<sock_filter> {
        self.rev.into_iter().rev().collect()
    }
}

/// Dispatch on the system call number (in the accumulator) over `entries`, sorted by number.
/// Returns the reversed index of the subtree's first instruction (the last one placed).
fn dispatch(asm: &mut Assembler, entries: &[(u32, Leaf)]) -> usize {
    if entries.len() > LEAF {
        // [JGE pivot, jt 0, jf 1] [JA right] [left …]
        let mid = entries.len() / 2;
        let right = dispatch(asm, &entries[mid..]);
        dispatch(asm, &entries[..mid]);
        asm.jump_to(right);
        return asm.push(jump(BPF_JGE_K, entries[mid].0, 0, 1));
    }
    // [JEQ nr1 → t1] … [JEQ nrN → tN] [RET EPERM] [targets: shared RETs and JAs to chains]
    let mut targets: Vec<(Leaf, usize)> = Vec::new();
    for &(_, leaf) in entries {
        if !targets.iter().any(|(l, _)| *l == leaf) {
            let at = match leaf {
                Leaf::Ret(action) => asm.push(ret(action)),
                Leaf::Chain(chain) => asm.jump_to(chain),
            };
            targets.push((leaf, at));
        }
    }
    asm.push(ret(errno(libc::EPERM)));
    for &(nr, leaf) in entries.iter().rev() {
        let target = targets.iter().find(|(l, _)| *l == leaf).map(|(_, at)| *at);
        let offset = asm.offset(target.expect("every leaf has a target"));
        let offset = u8::try_from(offset).expect("a leaf spans fewer than 256 instructions");
        asm.push(jump(BPF_JEQ_K, nr, offset, 0));
    }
    asm.rev.len() - 1
}

/// The filter for `policy`: architecture check (anything else is killed), dispatch on the
/// number, argument checks; `EPERM` for everything not allowed.
pub fn program(policy: &Policy) -> Result<BpfProgram, SeccompError> {
    build(policy).map(|(program, _)| program)
}

/// The program and the number of allowed system calls.
fn build(policy: &Policy) -> Result<(BpfProgram, usize), SeccompError> {
    let arch = audit_arch()?;
    let allowed = allowed(policy)?;
    let count = allowed.len();
    let mut asm = Assembler::default();
    let mut entries: Vec<(u32, Leaf)> = ENOSYS
        .iter()
        .map(|&(_, nr, _)| (nr as u32, Leaf::Ret(errno(libc::ENOSYS))))
        .chain(
            EOPNOTSUPP
                .iter()
                .map(|&(_, nr, _)| (nr as u32, Leaf::Ret(errno(libc::EOPNOTSUPP)))),
        )
        .collect();
    for allowed in allowed {
        let leaf = if allowed.rules.is_empty() {
            Leaf::Ret(libc::SECCOMP_RET_ALLOW)
        } else {
            // A failed condition in seccompiler's rule code jumps one past the instruction that
            // follows the rule, which is the "allow": to the next rule, or after the last to the
            // "deny". Each rule also starts with a jump that is never taken (it jumps over it)
            // aimed one further still, so the kernel's bounds check needs a second "deny".
            let mut chain = Vec::new();
            for rule in allowed.rules {
                chain.extend(BpfProgram::from(rule));
                chain.push(ret(libc::SECCOMP_RET_ALLOW));
            }
            chain.push(ret(errno(libc::EPERM)));
            chain.push(ret(errno(libc::EPERM)));
            Leaf::Chain(asm.block(&chain))
        };
        entries.push((allowed.nr as u32, leaf));
    }
    entries.sort_by_key(|&(nr, _)| nr);
    dispatch(&mut asm, &entries);
    asm.push(stmt(BPF_LD_W_ABS, SECCOMP_DATA_NR));
    asm.push(ret(libc::SECCOMP_RET_KILL_PROCESS));
    asm.push(jump(BPF_JEQ_K, arch, 1, 0));
    asm.push(stmt(BPF_LD_W_ABS, SECCOMP_DATA_ARCH));
    let program = asm.finish();
    if program.len() > 4096 {
        return Err(SeccompError::TooLong(program.len()));
    }
    Ok((program, count))
}

/// Installs the filter on the calling thread (`seccompiler` sets `no_new_privs` first).
/// Returns how many system calls are allowed.
pub fn install(policy: &Policy) -> Result<usize, SeccompError> {
    let (program, count) = build(policy)?;
    seccompiler::apply_filter(&program).map_err(SeccompError::Install)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Network;

    #[test]
    fn compiles_with_and_without_network() {
        let on = allowed(&Policy::default()).unwrap();
        let off = allowed(&Policy::with_network(Network::Off)).unwrap();
        assert!(on.iter().any(|a| a.name == "socket"));
        assert!(!off.iter().any(|a| a.name == "socket"));
        program(&Policy::default()).unwrap();
        program(&Policy::with_network(Network::Off)).unwrap();
    }

    /// A classic-BPF interpreter for the instructions the filter uses, run on a
    /// `seccomp_data` of this architecture.
    fn eval(program: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, arg) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_le_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        for _ in 0..program.len() + 1 {
            let i = &program[pc];
            pc += 1;
            match i.code {
                0x20 => {
                    let k = i.k as usize;
                    acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                }
                0x54 => acc &= i.k,
                0x06 => return i.k,
                0x05 => pc += i.k as usize,
                0x15 => pc += usize::from(if acc == i.k { i.jt } else { i.jf }),
                0x35 => pc += usize::from(if acc >= i.k { i.jt } else { i.jf }),
                0x25 => pc += usize::from(if acc > i.k { i.jt } else { i.jf }),
                other => panic!("unexpected BPF opcode {other:#x}"),
            }
        }
        panic!("the program did not return")
    }

    /// The kernel's checks of a classic BPF program (`bpf_check_classic`): every jump, taken or
    /// not, lands inside the program, and it ends with a return.
    fn assert_valid(program: &[sock_filter]) {
        let n = program.len();
        assert!(n <= 4096);
        for (pc, i) in program.iter().enumerate() {
            match i.code {
                0x05 => assert!((i.k as usize) < n - pc - 1, "JA out of range at {pc}"),
                0x15 | 0x25 | 0x35 => assert!(
                    pc + usize::from(i.jt) + 1 < n && pc + usize::from(i.jf) + 1 < n,
                    "conditional jump out of range at {pc}"
                ),
                _ => {}
            }
        }
        assert_eq!(program[n - 1].code, 0x06, "must end with a return");
    }

    #[test]
    fn filter_is_valid_bpf() {
        assert_valid(&program(&Policy::default()).unwrap());
        assert_valid(&program(&Policy::with_network(Network::Off)).unwrap());
    }

    #[test]
    fn filter_behaviour() {
        let program = program(&Policy::default()).unwrap();
        let arch = audit_arch().unwrap();
        let run = |nr: i64, args: [u64; 6]| eval(&program, arch, nr as u32, args);
        let allow = libc::SECCOMP_RET_ALLOW;
        let eperm = errno(libc::EPERM);
        // Every unconditional entry is allowed, with any arguments.
        for a in allowed(&Policy::default()).unwrap() {
            if a.condition.is_none() {
                assert_eq!(run(a.nr, [u64::MAX; 6]), allow, "{}", a.name);
            }
        }
        for nr in [
            libc::SYS_ptrace,
            libc::SYS_mount,
            libc::SYS_unshare,
            libc::SYS_io_uring_setup,
            libc::SYS_bpf,
            libc::SYS_listen,
            libc::SYS_memfd_create,
            libc::SYS_setuid,
        ] {
            assert_eq!(run(nr, [0; 6]), eperm, "{nr}");
        }
        assert_eq!(run(libc::SYS_clone3, [0; 6]), errno(libc::ENOSYS));
        assert_eq!(run(libc::SYS_openat2, [0; 6]), errno(libc::ENOSYS));
        assert_eq!(run(libc::SYS_setxattr, [0; 6]), errno(libc::EOPNOTSUPP));
        assert_eq!(run(libc::SYS_fremovexattr, [0; 6]), errno(libc::EOPNOTSUPP));
        // Numbers past every table entry, and the x32 bit.
        assert_eq!(run(1000, [0; 6]), eperm);
        assert_eq!(run(0x4000_0000, [0; 6]), eperm);
        assert_eq!(run(-1, [0; 6]), eperm);
        // Another architecture is killed whatever the call.
        assert_eq!(
            eval(&program, 0x4000_0003, 20, [0; 6]),
            libc::SECCOMP_RET_KILL_PROCESS
        );

        let sigchld = libc::SIGCHLD as u64;
        assert_eq!(run(libc::SYS_clone, [sigchld, 0, 0, 0, 0, 0]), allow);
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
        assert_eq!(run(libc::SYS_clone, [thread, 0, 0, 0, 0, 0]), allow);
        let newuser = libc::CLONE_NEWUSER as u64 | sigchld;
        assert_eq!(run(libc::SYS_clone, [newuser, 0, 0, 0, 0, 0]), eperm);
        // The upper half of a 32-bit argument is ignored by the kernel and by the filter.
        assert_eq!(
            run(libc::SYS_clone, [newuser | 1 << 40, 0, 0, 0, 0, 0]),
            eperm
        );

        let (inet, inet6, unix) = (
            libc::AF_INET as u64,
            libc::AF_INET6 as u64,
            libc::AF_UNIX as u64,
        );
        let (stream, dgram, raw) = (
            libc::SOCK_STREAM as u64,
            libc::SOCK_DGRAM as u64,
            libc::SOCK_RAW as u64,
        );
        let flags = (libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) as u64;
        assert_eq!(
            run(libc::SYS_socket, [inet, stream | flags, 0, 0, 0, 0]),
            allow
        );
        assert_eq!(run(libc::SYS_socket, [inet6, stream, 6, 0, 0, 0]), allow);
        assert_eq!(
            run(libc::SYS_socket, [inet, dgram | flags, 17, 0, 0, 0]),
            allow
        );
        assert_eq!(
            run(libc::SYS_socket, [inet, stream, 262, 0, 0, 0]),
            eperm,
            "MPTCP"
        );
        assert_eq!(
            run(libc::SYS_socket, [inet, stream, 132, 0, 0, 0]),
            eperm,
            "SCTP"
        );
        assert_eq!(run(libc::SYS_socket, [inet, raw, 1, 0, 0, 0]), eperm, "raw");
        assert_eq!(
            run(libc::SYS_socket, [unix, stream, 0, 0, 0, 0]),
            eperm,
            "unix"
        );
        assert_eq!(
            run(libc::SYS_socket, [16, raw, 0, 0, 0, 0]),
            eperm,
            "netlink"
        );
        assert_eq!(
            run(libc::SYS_socket, [17, raw, 0, 0, 0, 0]),
            eperm,
            "packet"
        );
        assert_eq!(run(libc::SYS_socketpair, [unix, stream, 0, 0, 0, 0]), allow);
        assert_eq!(run(libc::SYS_socketpair, [inet, stream, 0, 0, 0, 0]), eperm);

        let creat = (libc::O_CREAT | libc::O_WRONLY) as u64;
        let at = libc::AT_FDCWD as u64;
        assert_eq!(run(libc::SYS_openat, [at, 0, creat, 0o644, 0, 0]), allow);
        assert_eq!(run(libc::SYS_openat, [at, 0, creat, 0o4755, 0, 0]), eperm);
        assert_eq!(run(libc::SYS_openat, [at, 0, creat, 0o2755, 0, 0]), eperm);
        // Without O_CREAT the mode is ignored, whatever garbage it holds.
        assert_eq!(
            run(
                libc::SYS_openat,
                [at, 0, libc::O_RDONLY as u64, 0o7777, 0, 0]
            ),
            allow
        );
        let tmpfile = (libc::O_TMPFILE | libc::O_WRONLY) as u64;
        assert_eq!(run(libc::SYS_openat, [at, 0, tmpfile, 0o4700, 0, 0]), eperm);
        assert_eq!(run(libc::SYS_fchmodat, [at, 0, 0o755, 0, 0, 0]), allow);
        assert_eq!(run(libc::SYS_fchmodat, [at, 0, 0o4755, 0, 0, 0]), eperm);
        assert_eq!(run(libc::SYS_fchmod, [3, 0o6755, 0, 0, 0, 0]), eperm);
        assert_eq!(run(libc::SYS_fchmodat2, [at, 0, 0o1777, 0, 0, 0]), allow);

        assert_eq!(run(libc::SYS_ioctl, [0, libc::TCGETS, 0, 0, 0, 0]), allow);
        assert_eq!(run(libc::SYS_ioctl, [0, libc::TIOCSTI, 0, 0, 0, 0]), eperm);
        assert_eq!(
            run(libc::SYS_ioctl, [0, libc::TIOCSTI | 1 << 32, 0, 0, 0, 0]),
            eperm
        );
        assert_eq!(
            run(libc::SYS_ioctl, [0, libc::TIOCLINUX, 0, 0, 0, 0]),
            eperm
        );

        let prctl = |option: i32| run(libc::SYS_prctl, [option as u64, 0, 0, 0, 0, 0]);
        assert_eq!(prctl(libc::PR_SET_NAME), allow);
        assert_eq!(prctl(libc::PR_SET_DUMPABLE), eperm);
        assert_eq!(prctl(libc::PR_SET_PTRACER), eperm);
        assert_eq!(prctl(libc::PR_SET_MM), eperm);
        assert_eq!(run(libc::SYS_prlimit64, [0, 7, 0, 0, 0, 0]), allow);
        assert_eq!(run(libc::SYS_prlimit64, [1, 7, 0, 0, 0, 0]), eperm);
    }

    #[test]
    fn without_network_no_ip_sockets() {
        let program = program(&Policy::with_network(Network::Off)).unwrap();
        let arch = audit_arch().unwrap();
        let socket = |domain: i32| {
            eval(
                &program,
                arch,
                libc::SYS_socket as u32,
                [domain as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0],
            )
        };
        assert_eq!(socket(libc::AF_INET), errno(libc::EPERM));
        assert_eq!(socket(libc::AF_INET6), errno(libc::EPERM));
    }

    #[test]
    fn dangerous_calls_are_not_listed() {
        let names: Vec<&str> = allowed(&Policy::default())
            .unwrap()
            .iter()
            .map(|a| a.name)
            .collect();
        for denied in [
            "ptrace",
            "mount",
            "umount2",
            "unshare",
            "setns",
            "io_uring_setup",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "init_module",
            "finit_module",
            "kexec_load",
            "open_tree",
            "move_mount",
            "fsopen",
            "mount_setattr",
            "listen",
            "accept4",
            "memfd_create",
            "execveat",
            "setuid",
            "setresuid",
            "setgroups",
            "setxattr",
            "userfaultfd",
            "process_vm_readv",
            "chroot",
            "pivot_root",
            "personality",
            "modify_ldt",
            "shmget",
            "msgget",
            "semget",
            "pidfd_getfd",
        ] {
            assert!(!names.contains(&denied), "{denied} must not be allowed");
        }
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "a system call is listed twice");
    }

    #[test]
    fn every_allowed_call_has_a_reason_and_is_in_the_readme() {
        let readme = include_str!("../README.md");
        for (name, _, _) in ENOSYS.iter().chain(EOPNOTSUPP) {
            assert!(
                readme.contains(&format!("`{name}`")),
                "README.md does not mention `{name}`"
            );
        }
        for a in allowed(&Policy::default()).unwrap() {
            assert!(!a.reason.is_empty(), "{} has no reason", a.name);
            assert!(
                readme.contains(&format!("`{}`", a.name)),
                "README.md does not mention `{}`",
                a.name
            );
        }
    }
}
