//! Finding an instance's overlay by its mount source tag, never by path (DESIGN.md §2).
//!
//! Whoever can rename a directory on the way to `runtime/NAME/merged` can move a live mount away
//! from the path root would look at. The mount source `left4me:NAME:FINGERPRINT` stays with the
//! mount wherever it goes, so the cleanup also reads the mount table for it: each tagged mount is
//! reached through a descriptor of its mount point's parent directory, checked with `statx`
//! `STATX_MNT_ID` to be that very mount, and unmounted through the descriptor
//! (`umount2("/proc/self/fd/PARENT/NAME", UMOUNT_NOFOLLOW)`). A mount point cannot be renamed or
//! replaced while mounted, so the name checked is the name unmounted.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::mount::{MAX_STACKED_MOUNTS, MountError};
use crate::mountinfo::{self, MountInfoEntry};
use crate::sys::MountSys;

/// The mount source prefix of every overlay of instance `name`.
pub fn source_prefix(name: &str) -> String {
    format!("left4me:{name}:")
}

/// Whether `entry` is an overlay left4me mounted for instance `name`.
pub fn is_instance_mount(entry: &MountInfoEntry, name: &str) -> bool {
    entry.fs_type == "overlay" && entry.source.starts_with(&source_prefix(name))
}

/// The instance's tagged mounts that nothing is stacked on, latest first.
fn uncovered<'a>(entries: &'a [MountInfoEntry], name: &str) -> Vec<&'a MountInfoEntry> {
    entries
        .iter()
        .rev()
        .filter(|e| is_instance_mount(e, name))
        .filter(|e| {
            !entries
                .iter()
                .any(|o| o.parent_id == e.mount_id && o.mount_point == e.mount_point)
        })
        .collect()
}

/// Unmounts every overlay tagged `left4me:NAME:` wherever it is mounted; returns their mount
/// points. A tagged mount that cannot be reached or unmounted is an error, never "nothing
/// mounted".
pub fn unmount_tagged<S: MountSys>(sys: &S, name: &str) -> Result<Vec<PathBuf>, MountError> {
    let inspect_failed = |e: Errno| MountError::Inspect {
        target: "/proc/self/mountinfo".into(),
        source: e.into(),
    };
    let mut unmounted = Vec::new();
    // Bounded: a mount table that keeps growing tagged mounts is not chased forever.
    for _ in 0..MAX_STACKED_MOUNTS * 4 {
        let text = sys.mountinfo().map_err(inspect_failed)?;
        let entries = mountinfo::parse(&text)?;
        let Some(entry) = uncovered(&entries, name).first().copied().cloned() else {
            if let Some(covered) = entries.iter().find(|e| is_instance_mount(e, name)) {
                return Err(MountError::Unreachable {
                    target: covered.mount_point.clone(),
                    id: covered.mount_id,
                    why: "another mount is stacked on it".into(),
                });
            }
            return Ok(unmounted);
        };
        unmount_entry(sys, &entry, name)?;
        unmounted.push(entry.mount_point);
    }
    Err(MountError::StillMounted {
        target: format!("left4me:{name}:* mounts").into(),
        count: unmounted.len(),
    })
}

/// Unmounts the one mount `entry` describes, through a descriptor of its parent directory,
/// after checking that the name there is that mount.
fn unmount_entry<S: MountSys>(
    sys: &S,
    entry: &MountInfoEntry,
    name: &str,
) -> Result<(), MountError> {
    let target = &entry.mount_point;
    let unreachable = |why: String| MountError::Unreachable {
        target: target.clone(),
        id: entry.mount_id,
        why,
    };
    let (Some(parent), Some(base)) = (target.parent(), target.file_name()) else {
        return Err(unreachable("it has no parent directory".into()));
    };
    let base = base
        .to_str()
        .ok_or_else(|| unreachable("its name is not UTF-8".into()))?;
    let parent_fd = open_path_dir(parent).map_err(|e| unreachable(format!("open parent: {e}")))?;
    match sys.mount_id(parent_fd.as_fd(), base) {
        Ok(id) if id == entry.mount_id => {}
        Ok(id) => {
            return Err(unreachable(format!(
                "its path now leads to mount id {id} (moved, or covered by another mount)"
            )));
        }
        Err(e) => return Err(unreachable(format!("statx: {e}"))),
    }
    sys.unmount(parent_fd.as_fd(), base).map_err(|e| match e {
        Errno::BUSY => MountError::Busy {
            target: target.clone(),
            name: name.to_owned(),
        },
        e => MountError::Unmount {
            target: target.clone(),
            source: e.into(),
        },
    })
}

/// `open(path, O_PATH | O_DIRECTORY)`: a handle on the directory, checked through it afterwards.
fn open_path_dir(path: &Path) -> Result<std::os::fd::OwnedFd, Errno> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[u8] = b"1 0 254:0 / / rw - ext4 /dev/vda rw\n\
40 1 0:40 / /s/runtime.moved/x/merged rw - overlay left4me:x:00ff rw\n\
41 40 0:41 / /s/runtime.moved/x/merged rw - overlay left4me:x:00aa rw\n\
42 1 0:42 / /s/runtime/xy/merged rw - overlay left4me:xy:00ff rw\n\
43 1 0:43 / /elsewhere rw - tmpfs left4me:x:00ff rw\n";

    #[test]
    fn finds_the_instance_by_tag_topmost_first() {
        let entries = mountinfo::parse(TABLE).unwrap();
        let found: Vec<u64> = uncovered(&entries, "x")
            .iter()
            .map(|e| e.mount_id)
            .collect();
        // 40 is covered by 41; `xy` is another instance; 43 is not an overlay.
        assert_eq!(found, [41]);
        assert_eq!(source_prefix("x"), "left4me:x:");
        assert!(!is_instance_mount(&entries[3], "x"));
        assert!(is_instance_mount(&entries[3], "xy"));
    }
}
