//! Joining PID 1's mount namespace.
//!
//! `prepare` and `cleanup` mount and unmount in the *host* mount namespace, so the overlay is
//! visible to everything and nothing of a unit's private namespace pins it (the seed project lost
//! 25 s per stop to exactly that).
//!
//! Call [`join_pid1_mount_namespace`] first thing in `main`, before any thread is started:
//! the kernel refuses `setns(CLONE_NEWNS)` to a process whose threads share its file system
//! context. The function checks the thread count (`/proc/self/task`) and says so when it is not 1.
//! After joining, the root and working directories are those of PID 1's namespace root (the
//! kernel resets both), so relative paths must not be used across the call.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};
use rustix::thread::LinkNameSpaceType;

/// What [`join_pid1_mount_namespace`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceJoin {
    /// The process moved into PID 1's mount namespace.
    Joined,
    /// The process already was in it; nothing was done.
    AlreadyThere,
}

/// Why the namespace cannot be joined.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error(
        "join PID 1's mount namespace: the process has {threads} threads; call it first thing in \
         main, before any thread is started"
    )]
    MultiThreaded { threads: usize },
    #[error(
        "join PID 1's mount namespace: inspect {path}: {source} (run as root, not confined by a \
         container or an LSM that hides PID 1)"
    )]
    Inspect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "join PID 1's mount namespace: setns: {source}: this needs CAP_SYS_ADMIN (run the \
         supervisor's prepare and cleanup as root: the `+` prefix in the unit)"
    )]
    Setns { source: std::io::Error },
}

const PID1_MNT: &str = "/proc/1/ns/mnt";
const SELF_MNT: &str = "/proc/self/ns/mnt";

/// How many threads this process has.
pub fn thread_count() -> Result<usize, NsError> {
    let inspect = |source| NsError::Inspect {
        path: "/proc/self/task".into(),
        source,
    };
    std::fs::read_dir("/proc/self/task")
        .map_err(inspect)?
        .try_fold(0, |n, entry| {
            entry.map_err(inspect)?;
            Ok(n + 1)
        })
}

/// Moves this process into PID 1's mount namespace (`setns` on `/proc/1/ns/mnt`). Must be called
/// while the process is single-threaded; see the module documentation.
pub fn join_pid1_mount_namespace() -> Result<NamespaceJoin, NsError> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(NsError::MultiThreaded { threads });
    }
    let meta = |path: &str| {
        std::fs::metadata(path).map_err(|source| NsError::Inspect {
            path: path.into(),
            source,
        })
    };
    let (pid1, me) = (meta(PID1_MNT)?, meta(SELF_MNT)?);
    if (pid1.dev(), pid1.ino()) == (me.dev(), me.ino()) {
        return Ok(NamespaceJoin::AlreadyThere);
    }
    let fd = rustix::fs::open(PID1_MNT, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(
        |e| NsError::Inspect {
            path: PID1_MNT.into(),
            source: e.into(),
        },
    )?;
    rustix::thread::move_into_link_name_space(fd.as_fd(), Some(LinkNameSpaceType::Mount))
        .map_err(|e| NsError::Setns { source: e.into() })?;
    Ok(NamespaceJoin::Joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_when_threads_run() {
        // The test harness runs this test on a thread of its own: the check must fire, before
        // any privileged call.
        let _keep = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(1)));
        match join_pid1_mount_namespace() {
            Err(NsError::MultiThreaded { threads }) => assert!(threads >= 2),
            other => panic!("{other:?}"),
        }
    }
}
