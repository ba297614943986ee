//! Signals: SIGINT and SIGTERM through a signalfd, SIGPIPE back to its default, and a real crash.
//!
//! Nothing else is handled: every other signal keeps its default action, as in srcds.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

fn stop_set() -> libc::sigset_t {
    // SAFETY: sigemptyset fully initialises the zeroed set; sigaddset with valid signal numbers
    // cannot fail.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// SIGINT and SIGTERM, blocked and delivered through a signalfd (non-blocking, close-on-exec).
#[derive(Debug)]
pub struct StopSignals {
    fd: OwnedFd,
}

impl StopSignals {
    /// Block SIGINT and SIGTERM for this (single-threaded) process and open the signalfd. A
    /// signal sent while nobody reads the fd stays pending: the process neither dies nor quits.
    pub fn open() -> io::Result<Self> {
        let set = stop_set();
        // SAFETY: `set` is a valid, initialised sigset; no old mask is requested.
        if unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: -1 asks for a new fd; `set` is valid; the flags are valid signalfd flags.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: signalfd returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// The name of a pending SIGINT or SIGTERM, taking it; `None` when none is pending.
    pub fn take(&self) -> io::Result<Option<&'static str>> {
        // SAFETY: signalfd_siginfo is plain old data; all zeroes is a valid value.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is a writable buffer of exactly `size` bytes; the fd is open.
        let n = unsafe {
            libc::read(
                std::os::fd::AsRawFd::as_raw_fd(&self.fd),
                (&raw mut info).cast(),
                size,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            return Err(err);
        }
        Ok(match info.ssi_signo as i32 {
            libc::SIGINT => Some("SIGINT"),
            libc::SIGTERM => Some("SIGTERM"),
            _ => None,
        })
    }
}

impl AsFd for StopSignals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Give SIGPIPE back its default action (the Rust runtime ignores it before `main`), so a write
/// to a closed pipe ends the process as it would end srcds.
pub fn default_sigpipe() {
    // SAFETY: setting a standard signal to SIG_DFL has no memory-safety preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// Die by SIGSEGV with its default action, like a crashing srcds. Never returns.
pub fn crash() -> ! {
    // SAFETY: SIG_DFL replaces the Rust runtime's stack-overflow handler, so the raised signal
    // takes its default action (terminate, maybe dump core); raise has no preconditions.
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::raise(libc::SIGSEGV);
    }
    // Unreachable unless SIGSEGV is blocked by whoever started us; die abnormally anyway.
    std::process::abort()
}

/// Die by `name` (`"SIGINT"` or `"SIGTERM"`) with its default action, like a game that does not
/// catch the stop signal. Never returns.
pub fn die_by(name: &str) -> ! {
    let signal = if name == "SIGINT" {
        libc::SIGINT
    } else {
        libc::SIGTERM
    };
    // SAFETY: plain libc calls on a local, initialized signal set; SIG_DFL makes the raised
    // signal terminate the process once it is unblocked.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::raise(signal);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    std::process::abort()
}
