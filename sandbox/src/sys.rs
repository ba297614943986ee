//! The system calls rustix does not offer (or offers only as `unsafe`), each behind a safe
//! function. Every `unsafe` block of the runner is in this file.
//!
//! - `fork`, and `clone(CLONE_NEWUSER)` for the idmap namespace: rustix only has them for its
//!   own runtime. `fork` refuses to run in a multi-threaded process.
//! - `unshare(CLONE_NEWNS)`: rustix marks `unshare` unsafe because of `CLONE_FILES`.
//! - `mount_setattr` and `close_range`: not in rustix 1.x, so `libc::syscall`.
//! - signal masks, `sigwaitinfo` and `kill` with a raw signal number: the parent forwards
//!   whatever signal it receives.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use rustix::io::Errno;
use rustix::process::Pid;

use left4me_contract::passwd::Ids;

/// Which side of a [`fork`] we are on.
#[derive(Debug)]
pub enum Fork {
    /// The new process.
    Child,
    /// The calling process; the child's pid.
    Parent(Pid),
}

/// Number of threads of this process (`/proc/self/stat`, field 20).
fn thread_count() -> io::Result<usize> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    // Fields after the command name start at field 3 (state); num_threads is field 20.
    after_comm
        .split_whitespace()
        .nth(17)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::other("cannot parse num_threads in /proc/self/stat"))
}

fn ensure_single_threaded() -> io::Result<()> {
    match thread_count()? {
        1 => Ok(()),
        n => Err(io::Error::other(format!(
            "refusing to fork a process with {n} threads (the child could inherit held locks)"
        ))),
    }
}

/// `fork()`. Refuses when the process has more than one thread, so the child may allocate and
/// use the standard library freely.
pub fn fork() -> io::Result<Fork> {
    ensure_single_threaded()?;
    // SAFETY: the process is single-threaded (checked just above, and nothing here starts
    // threads in between), so the child starts with every lock released and may run arbitrary
    // code. The return value distinguishes child (0), parent (> 0) and failure (-1).
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(
            Pid::from_raw(pid).ok_or_else(|| io::Error::other("fork returned pid 0"))?,
        )),
    }
}

/// `unshare(CLONE_NEWNS)`: a private copy of the mount table for this process.
pub fn unshare_mount_namespace() -> Result<(), Errno> {
    // SAFETY: rustix marks `unshare` unsafe because `CLONE_FILES` would give this thread a file
    // descriptor table other threads do not see. Only `CLONE_NEWNS` (which implies `CLONE_FS`,
    // cwd and root) is passed, and the caller is the single-threaded sandbox child.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
}

/// Starts a child in a new user namespace (`clone(CLONE_NEWUSER)`) that waits in `pause()` (and
/// dies with the parent). While it lives, `/proc/PID/uid_map`, `gid_map` and `ns/user` work on
/// it, and nobody waits for it to run. It must not exit before the maps are written: a zombie
/// has no memory map, so the kernel shows its `/proc/PID` files as owned by root, and a runner
/// that is not root (a unit with `User=` and ambient capabilities) could not write them. The
/// caller kills and reaps it.
pub fn spawn_userns_child() -> io::Result<Pid> {
    let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: a raw `clone` without `CLONE_VM` and with a null stack behaves like `fork`: the
    // child gets a copy of the address space and continues on its own copy of this stack. It
    // only calls `prctl`, `pause` and `_exit` (async-signal-safe, no destructors, no atexit
    // handlers), so it is sound even if other threads held locks at the time of the clone.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if pid == 0 {
        // SAFETY: see above; the child waits until it is killed, and ends here.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            loop {
                libc::pause();
            }
        }
    }
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::other("clone returned an invalid pid"))
}

/// `struct mount_attr` of `<linux/mount.h>`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(dir, path, flags, {attr_set, attr_clr, 0, userns})`. `flags` takes
/// `AT_EMPTY_PATH`, `AT_RECURSIVE`, `AT_SYMLINK_NOFOLLOW`.
pub fn mount_setattr(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: u32,
    attr_set: u64,
    attr_clr: u64,
    userns: Option<BorrowedFd<'_>>,
) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation: 0,
        userns_fd: userns.map_or(0, |fd| fd.as_raw_fd() as u64),
    };
    // SAFETY: `path` is a NUL-terminated string and `attr` a properly laid out `mount_attr`
    // that both outlive the call; the size passed is the size of that struct. The kernel only
    // reads them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dir.as_raw_fd(),
            path.as_ptr(),
            flags,
            &raw const attr,
            size_of::<MountAttr>(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(Errno::from_io_error(&io::Error::last_os_error()).unwrap_or(Errno::INVAL))
    }
}

fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    if first > last {
        return Ok(());
    }
    // SAFETY: `close_range` only closes descriptors of this process. The caller (the sandbox
    // child, right before it drops privileges) owns no `OwnedFd` in the range other than the one
    // it asked to keep, so no Rust object is left holding a closed descriptor number.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if ret == 0 {
        Ok(())
    } else {
        Err(Errno::from_io_error(&io::Error::last_os_error()).unwrap_or(Errno::INVAL))
    }
}

/// Closes every descriptor above 2 except `keep`.
pub fn close_fds_above_stderr(keep: Option<RawFd>) -> Result<(), Errno> {
    match keep {
        Some(fd) if fd > 2 => {
            let fd = fd as u32;
            close_range(3, fd - 1)?;
            close_range(fd + 1, u32::MAX)
        }
        _ => close_range(3, u32::MAX),
    }
}

/// A saved signal mask.
#[derive(Clone, Copy)]
pub struct SignalMask(libc::sigset_t);

impl std::fmt::Debug for SignalMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignalMask")
    }
}

fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: `sigset_t` is plain data; `sigemptyset` initialises it before `sigaddset` adds
    // valid signal numbers (the callers pass libc constants).
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&raw mut set);
        for &signal in signals {
            libc::sigaddset(&raw mut set, signal);
        }
        set
    }
}

/// Blocks `signals` for this thread; returns the previous mask.
pub fn block_signals(signals: &[i32]) -> io::Result<SignalMask> {
    let set = sigset(signals);
    // SAFETY: both pointers refer to valid, initialised `sigset_t` values on this stack.
    unsafe {
        let mut old = std::mem::zeroed::<libc::sigset_t>();
        match libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, &raw mut old) {
            0 => Ok(SignalMask(old)),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// Restores a mask saved by [`block_signals`].
pub fn restore_signal_mask(mask: &SignalMask) {
    // SAFETY: `mask.0` is a `sigset_t` filled in by `pthread_sigmask`.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const mask.0, std::ptr::null_mut());
    }
}

/// Waits for one of `signals` (which must be blocked) and returns its number.
pub fn wait_for_signal(signals: &[i32]) -> io::Result<i32> {
    let set = sigset(signals);
    loop {
        // SAFETY: `set` is initialised; a null `siginfo_t` pointer is allowed.
        let signal = unsafe { libc::sigwaitinfo(&raw const set, std::ptr::null_mut()) };
        if signal > 0 {
            return Ok(signal);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `PR_SET_MDWE` with `PR_MDWE_REFUSE_EXEC_GAIN`: from now on this process and its children
/// cannot map memory writable and executable, nor make memory executable that was not. It
/// cannot be undone (Linux 6.3+; older kernels answer `EINVAL`).
pub fn refuse_write_execute() -> Result<(), Errno> {
    const PR_SET_MDWE: libc::c_int = 65;
    const PR_MDWE_REFUSE_EXEC_GAIN: libc::c_ulong = 1;
    // SAFETY: a prctl with integer arguments that only restricts this process's future maps.
    let r = unsafe {
        libc::prctl(
            PR_SET_MDWE,
            PR_MDWE_REFUSE_EXEC_GAIN,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(
            io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    }
}

/// Runs `f` with the file system uid and gid of `ids` and every permitted capability effective,
/// then goes back to the previous file system ids. A change of the fsuid away from 0 drops the
/// file capabilities (`CAP_DAC_OVERRIDE`, `CAP_FOWNER`, …) from the effective set; they are
/// raised again from the permitted set, so `f` acts as `ids` with the runner's powers (what
/// overlayfs then keeps as its mounter's credentials). For the single-threaded sandbox child
/// (the ids are per thread).
pub fn with_fs_ids<T>(ids: Ids, f: impl FnOnce() -> T) -> Result<T, Errno> {
    use rustix::thread::{CapabilitySets, capabilities, set_capabilities};
    let set = |uid: u32, gid: u32| {
        // SAFETY: setfsuid/setfsgid take plain integers and only change this thread's file
        // system ids; `u32::MAX` (-1) changes nothing and returns the current id, which is how
        // success is checked (they report no error).
        unsafe {
            libc::setfsgid(gid);
            libc::setfsuid(uid);
        }
    };
    let current = || {
        // SAFETY: as above; -1 only reads the current ids.
        unsafe {
            (
                libc::setfsuid(u32::MAX) as u32,
                libc::setfsgid(u32::MAX) as u32,
            )
        }
    };
    let (old_uid, old_gid) = current();
    set(ids.uid, ids.gid);
    let result = if current() == (ids.uid, ids.gid) {
        capabilities(None)
            .and_then(|caps| {
                set_capabilities(
                    None,
                    CapabilitySets {
                        effective: caps.permitted,
                        ..caps
                    },
                )
            })
            .map(|()| f())
    } else {
        Err(Errno::PERM)
    };
    set(old_uid, old_gid);
    if current() != (old_uid, old_gid) {
        return Err(Errno::PERM);
    }
    result
}

/// `kill(pid, signal)` with a raw signal number.
pub fn kill(pid: Pid, signal: i32) -> io::Result<()> {
    // SAFETY: `kill` takes plain integers and has no memory effects in this process.
    match unsafe { libc::kill(pid.as_raw_nonzero().get(), signal) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_threads() {
        assert!(thread_count().unwrap() >= 1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert!(thread_count().unwrap() >= 2);
        assert!(fork().is_err(), "fork must refuse a multi-threaded process");
        tx.send(()).unwrap();
        t.join().unwrap().unwrap();
    }
}
