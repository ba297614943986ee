//! The build role's seccomp allow-list: which system calls a command may make, one line of
//! reason per call, and the argument rules of those allowed only with certain arguments. Data
//! only; [`super::bpf`] compiles it into a filter.
//!
//! It was drawn from `strace -f -c` of bash, curl, wget, tar (gz/xz/bz2), unzip, 7z, md5sum,
//! sha256sum, coreutils, sed/grep/awk and python3 (urllib, zipfile, tarfile, shutil, subprocess)
//! doing a download-and-unpack build, then widened to the calls libc and those tools use on
//! other paths (legacy x86_64 variants, timers, polling). Anything not listed fails with
//! `EPERM`.
//!
//! `clone3` and `openat2` are answered with `ENOSYS`, so glibc and others fall back to `clone`
//! and `openat`, whose arguments the filter can inspect (in the newer calls they sit behind a
//! pointer).
//!
//! The names are the x86_64 ones; [`super::i386`] says which i386 call stands for which entry.

use left4me_contract::sandbox::Network;
use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

use super::SeccompError;

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
    pub(super) rules: Vec<SeccompRule>,
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
    66,          // PR_GET_MDWE: whether W+X memory is refused (a query)
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

/// The allow-list of the `script` and `steamcmd` profiles (by x86_64 name and number), with
/// `socket` only when `network` allows IP sockets; in the order of the README.
pub fn build_tools(network: &Network) -> Result<Vec<Allowed>, SeccompError> {
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
        "only PR_{SET,GET}_PDEATHSIG, PR_GET_DUMPABLE, PR_{SET,GET}_NAME, PR_GET_SECCOMP, PR_CAPBSET_READ, PR_{SET,GET}_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_SET_VMA, PR_GET_MDWE",
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
    if matches!(network, Network::Tcp { .. }) {
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

/// i386's `socketcall` (102): one call for every socket operation, the operation in its first
/// argument and the operation's own arguments behind a pointer in the second. glibc on i386
/// makes its socket calls through it unless it was built for Linux 4.3 or later, and the
/// distributions build it for 3.2 (Debian 12's glibc 2.36 does: `strace -n` of a `gcc -m32`
/// program shows `[102] socket(...)`), so SteamCMD, which uses the host's i386 glibc, has no
/// network without it. Allowed for the sub-calls whose direct call is on `list` (so never
/// `bind`, `listen`, `accept`, `accept4`; no `socket` without network), matched on the first
/// argument. What is lost against the direct calls: their argument rules (the domain, type and
/// protocol of `socket`, `AF_UNIX` of `socketpair`, no `MSG_FASTOPEN`), which the filter cannot
/// read behind the pointer. `None` when no sub-call is allowed.
pub fn socketcall(list: &[Allowed]) -> Result<Option<Allowed>, SeccompError> {
    let mut rules = Vec::new();
    for &(sub, _, stands_for) in super::i386::SOCKETCALL_SUBCALLS {
        if list.iter().any(|a| a.name == stands_for) {
            rules.push(rule(
                "socketcall",
                vec![arg("socketcall", 0, SeccompCmpOp::Eq, u64::from(sub))?],
            )?);
        }
    }
    if rules.is_empty() {
        return Ok(None);
    }
    Ok(Some(when(
        SOCKETCALL_NATIVE,
        "socketcall",
        "i386 glibc's socket calls (SteamCMD): see `socketcall` in README.md",
        "i386 only; the sub-calls whose direct call is allowed (never bind, listen, accept, \
         accept4; socket only with network); their own argument rules cannot be checked",
        rules,
    )))
}

/// The number [`socketcall`]'s entry carries for the native ABI: none (x86_64 has no such
/// call; the native table leaves negative numbers out).
pub const SOCKETCALL_NATIVE: i64 = -1;
