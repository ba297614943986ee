//! Probes of the kernel interfaces systemd's hardening directives fence off (`LockPersonality=`,
//! `RestrictRealtime=`, `ProtectClock=`, `MemoryDenyWriteExecute=`, `ProtectKernelModules=`,
//! `ProtectKernelLogs=`, `ProtectHostname=`, `RestrictNamespaces=`, `PrivateDevices=`,
//! `PrivateIPC=`). Each makes the call with arguments that change nothing if it got through
//! (the current time, the current host name, a read-only query), so a broken sandbox shows
//! `ok` rather than harming the host.

use std::ffi::{c_int, c_long};

use crate::{close_keeping_errno, cstr, ffi, ret};

/// `personality(READ_IMPLIES_EXEC)`: every readable page executable (`LockPersonality=`).
pub fn personality() -> String {
    // SAFETY: an integer argument; it only changes this probe's execution domain.
    ret(unsafe { ffi::syscall(ffi::SYS_PERSONALITY, ffi::READ_IMPLIES_EXEC) })
}

/// `sched_setscheduler(0, SCHED_FIFO, 1)`: a real-time priority (`RestrictRealtime=`).
pub fn sched_fifo() -> String {
    let priority: c_int = 1;
    // SAFETY: `priority` is a valid `struct sched_param`; only this probe's policy changes.
    ret(unsafe {
        ffi::syscall(
            ffi::SYS_SCHED_SETSCHEDULER,
            0,
            ffi::SCHED_FIFO,
            &raw const priority,
        )
    })
}

/// `clock_settime(CLOCK_REALTIME, now)`: setting the clock to what it reads (`ProtectClock=`).
pub fn clock_settime() -> String {
    let mut now = [0i64; 2];
    // SAFETY: `now` is a `struct timespec`.
    if unsafe {
        ffi::syscall(
            ffi::SYS_CLOCK_GETTIME,
            ffi::CLOCK_REALTIME,
            now.as_mut_ptr(),
        )
    } != 0
    {
        return format!("{} (clock_gettime)", ret(-1));
    }
    // SAFETY: as above.
    ret(unsafe { ffi::syscall(ffi::SYS_CLOCK_SETTIME, ffi::CLOCK_REALTIME, now.as_ptr()) })
}

/// `adjtimex` with no modes: a read of the kernel clock's state, which systemd's `@clock` group
/// refuses along with the writes (`ProtectClock=`).
pub fn adjtimex() -> String {
    let mut timex = [0u8; 208]; // struct timex, modes = 0
    // SAFETY: a zeroed `struct timex` of the kernel's size.
    ret(unsafe { ffi::syscall(ffi::SYS_ADJTIMEX, timex.as_mut_ptr()) })
}

/// `mmap(PROT_READ|PROT_WRITE|PROT_EXEC)` of an anonymous page (`MemoryDenyWriteExecute=`).
pub fn mmap_write_exec() -> String {
    map_then(ffi::PROT_RWX, |_| 0)
}

/// A writable anonymous page made executable with `mprotect` (`MemoryDenyWriteExecute=`).
pub fn mprotect_exec() -> String {
    map_then(ffi::PROT_RW, |addr| {
        // SAFETY: `addr` is a page this probe just mapped.
        unsafe { ffi::syscall(ffi::SYS_MPROTECT, addr, 4096, ffi::PROT_RX) }
    })
}

/// Maps one anonymous page with `prot`, runs `then` on it, unmaps it.
fn map_then(prot: c_long, then: impl FnOnce(c_long) -> c_long) -> String {
    // SAFETY: an anonymous private mapping at a kernel-chosen address.
    let addr = unsafe {
        ffi::syscall(
            ffi::SYS_MMAP,
            0,
            4096,
            prot,
            ffi::MAP_PRIVATE_ANONYMOUS,
            -1,
            0,
        )
    };
    if addr == -1 {
        return ret(-1);
    }
    let r = then(addr);
    let saved = ffi::errno();
    // SAFETY: the page mapped above, used by nothing else.
    unsafe { ffi::syscall(ffi::SYS_MUNMAP, addr, 4096) };
    ffi::set_errno(saved);
    ret(r)
}

/// `PR_GET_MDWE`: 1 when writable+executable memory is refused.
pub fn mdwe() -> String {
    // SAFETY: a query with the unused arguments zero.
    let r = unsafe { ffi::prctl(ffi::PR_GET_MDWE, 0u64, 0u64, 0u64, 0u64) };
    if r < 0 { ret(-1) } else { format!("ok {r}") }
}

/// `finit_module(-1, "", 0)`: reaching the module loader at all (`ProtectKernelModules=`);
/// `EBADF` if the call got through.
pub fn init_module() -> String {
    let params = cstr("");
    // SAFETY: an invalid descriptor and an empty parameter string: nothing can be loaded.
    ret(unsafe { ffi::syscall(ffi::SYS_FINIT_MODULE, -1, params.as_ptr(), 0) })
}

/// `syslog(SYSLOG_ACTION_SIZE_BUFFER)`: the kernel log buffer (`ProtectKernelLogs=`).
pub fn syslog() -> String {
    // SAFETY: a query that writes nothing.
    ret(unsafe { ffi::syscall(ffi::SYS_SYSLOG, ffi::SYSLOG_ACTION_SIZE_BUFFER, 0, 0) })
}

/// `sethostname` to the current host name (`ProtectHostname=`).
pub fn sethostname() -> String {
    let mut uts = [0u8; 6 * 65]; // struct utsname; nodename is the second field
    // SAFETY: a buffer of the size of `struct utsname`.
    if unsafe { ffi::syscall(ffi::SYS_UNAME, uts.as_mut_ptr()) } != 0 {
        return format!("{} (uname)", ret(-1));
    }
    let name = &uts[65..130];
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    // SAFETY: `name` holds at least `len` bytes.
    ret(unsafe { ffi::syscall(ffi::SYS_SETHOSTNAME, name.as_ptr(), len) })
}

/// `setns` into the namespace file `path` (`RestrictNamespaces=`).
pub fn setns(path: &str) -> String {
    let p = cstr(path);
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { ffi::open(p.as_ptr(), ffi::O_RDONLY | ffi::O_CLOEXEC) };
    if fd < 0 {
        return format!("{} (open)", ret(-1));
    }
    // SAFETY: a descriptor of ours, any namespace type.
    let r = unsafe { ffi::syscall(ffi::SYS_SETNS, fd, 0) };
    close_keeping_errno(fd);
    ret(r)
}

/// `iopl(3)`: raw I/O port access (`PrivateDevices=`).
pub fn iopl() -> String {
    // SAFETY: an integer argument; only this probe's I/O privilege level.
    ret(unsafe { ffi::syscall(ffi::SYS_IOPL, 3) })
}

/// `shmget(IPC_PRIVATE, 4096, IPC_CREAT|0600)`, removed again (`PrivateIPC=`).
pub fn shmget() -> String {
    // SAFETY: integer arguments.
    let id = unsafe { ffi::syscall(ffi::SYS_SHMGET, 0, 4096, ffi::IPC_CREAT | 0o600) };
    if id >= 0 {
        // SAFETY: removing the segment just created; no buffer for IPC_RMID.
        unsafe { ffi::syscall(ffi::SYS_SHMCTL, id, ffi::IPC_RMID, 0) };
    }
    ret(id)
}
