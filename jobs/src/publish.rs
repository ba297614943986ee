//! The atomic publish of a job's output and the retirement of the content it replaced.
//!
//! Only when a job succeeds and its output passes [`crate::check::check_output`] are
//! `overlays/NAME` and the output dir exchanged in one `renameat2(RENAME_EXCHANGE)`: there is
//! never a moment without `overlays/NAME`, and a failed job leaves it untouched.
//!
//! The previous content then moves to `overlays/.NAME.old-ID`. It may not be deleted while an
//! instance still has it mounted: overlayfs holds its lower layers by reference, so the mount
//! keeps working after the rename, but deleting files of a lower layer under a mounted overlay
//! is exactly the "change to an underlying file system" the kernel documents as undefined. So
//! [`retire`] deletes an old dir only when no overlay mount that was made before the swap lists
//! `overlays/NAME` as a lower layer; the others wait until their instances restart (the next
//! job or `overlay rm` looks again). A mount's age is the birth time of its `workdir/work`,
//! which overlayfs recreates at every mount; without birth times (old file systems) old dirs
//! are kept.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::{CWD, RenameFlags};
use rustix::io::Errno;

use crate::PathIo;
use crate::content::OverlayDirs;

/// Why the publish or the retirement failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Io(#[from] PathIo),
    #[error(transparent)]
    Content(#[from] crate::content::ContentError),
    #[error("cannot read the mount table: {0}")]
    MountTable(String),
}

/// Puts `fresh` in place of `current`. When `current` exists the two are exchanged atomically
/// and the previous content is returned at `fresh`'s path; otherwise `fresh` is renamed.
pub fn swap_in(current: &Path, fresh: &Path) -> Result<bool, PublishError> {
    match rustix::fs::renameat_with(CWD, fresh, CWD, current, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT) if !current.exists() => {
            fs::rename(fresh, current).map_err(PathIo::at("rename", fresh))?;
            Ok(false)
        }
        Err(e) => Err(PathIo::at("exchange", current)(e.into()).into()),
    }
}

/// An overlay mount that has a directory as a lower layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountUse {
    /// The instance, from the mount point `<state>/runtime/NAME/merged` (else the mount point).
    pub instance: String,
    /// When it was mounted (birth time of its `workdir/work`), if known.
    pub mounted_at: Option<SystemTime>,
}

/// The overlay mounts whose lower layers include `dir` or something beneath it, as this
/// process's mount table shows them. `runtime` is `<state_dir>/runtime`.
pub fn mounts_using(dir: &Path, runtime: &Path) -> Result<Vec<MountUse>, PublishError> {
    // The supervisor mounts in PID 1's namespace; ours may be another (nsenter, a unit).
    let text = fs::read("/proc/1/mountinfo")
        .map_err(PathIo::at("read", Path::new("/proc/1/mountinfo")))?;
    let entries = left4me_overlay::mountinfo::parse(&text)
        .map_err(|e| PublishError::MountTable(e.to_string()))?;
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let runtime = fs::canonicalize(runtime).unwrap_or_else(|_| runtime.to_path_buf());
    let mut uses = Vec::new();
    for entry in entries.iter().filter(|e| e.fs_type == "overlay") {
        let layers = entry.overlay_layers();
        // Layers shown as /proc/self/fd/N (pre-6.13 fallbacks) cannot be told apart: count a
        // mount of ours with such layers as a user.
        let opaque = layers
            .lowerdirs
            .iter()
            .any(|l| l.starts_with("/proc/self/fd"))
            && entry.mount_point.starts_with(&runtime);
        if !opaque && !layers.lowerdirs.iter().any(|l| l.starts_with(&dir)) {
            continue;
        }
        let instance = entry
            .mount_point
            .strip_prefix(&runtime)
            .ok()
            .and_then(|rel| rel.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_else(|| entry.mount_point.display().to_string());
        let mounted_at = layers
            .workdir
            .filter(|w| !w.starts_with("/proc/self/fd"))
            .and_then(|w| fs::symlink_metadata(w.join("work")).ok())
            .and_then(|m| m.created().ok());
        uses.push(MountUse {
            instance,
            mounted_at,
        });
    }
    Ok(uses)
}

/// What [`retire`] did with one old content dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retired {
    Removed(PathBuf),
    /// Still a lower layer of these instances' mounts.
    Kept {
        path: PathBuf,
        instances: Vec<String>,
    },
}

/// Deletes the old content dirs of overlay `dirs` that no mount made before their swap still
/// uses. `runtime` is `<state_dir>/runtime`.
pub fn retire(dirs: &OverlayDirs, runtime: &Path) -> Result<Vec<Retired>, PublishError> {
    let (_, olds) = dirs.leftovers()?;
    if olds.is_empty() {
        return Ok(Vec::new());
    }
    let uses = mounts_using(&dirs.current(), runtime)?;
    let mut done = Vec::new();
    for old in olds {
        // The rename that retired it set its ctime; mounts made later use the new content.
        let retired_at = ctime(&old);
        let mut instances: Vec<String> = uses
            .iter()
            .filter(|u| match (u.mounted_at, retired_at) {
                (Some(mounted), Some(retired)) => mounted <= retired,
                _ => true,
            })
            .map(|u| u.instance.clone())
            .collect();
        instances.sort();
        instances.dedup();
        if instances.is_empty() {
            fs::remove_dir_all(&old).map_err(PathIo::at("remove", &old))?;
            done.push(Retired::Removed(old));
        } else {
            done.push(Retired::Kept {
                path: old,
                instances,
            });
        }
    }
    Ok(done)
}

fn ctime(path: &Path) -> Option<SystemTime> {
    let meta = fs::symlink_metadata(path).ok()?;
    let secs = u64::try_from(meta.ctime()).ok()?;
    let nanos = u32::try_from(meta.ctime_nsec()).ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    #[test]
    fn swap_exchanges_or_renames() {
        let dir = TempDir::new("swap");
        let current = dir.path().join("maps");
        let fresh = dir.path().join(".maps.build-1");
        fs::create_dir(&fresh).unwrap();
        fs::write(fresh.join("v"), "1").unwrap();
        assert!(!swap_in(&current, &fresh).unwrap());
        assert!(!fresh.exists());
        fs::create_dir(&fresh).unwrap();
        fs::write(fresh.join("v"), "2").unwrap();
        assert!(swap_in(&current, &fresh).unwrap());
        assert_eq!(fs::read_to_string(current.join("v")).unwrap(), "2");
        assert_eq!(fs::read_to_string(fresh.join("v")).unwrap(), "1");
    }

    #[test]
    fn retire_removes_unused_old_dirs() {
        let dir = TempDir::new("retire");
        let dirs = OverlayDirs::new(dir.path(), "maps");
        fs::create_dir_all(dirs.old("1").join("x")).unwrap();
        fs::create_dir_all(dirs.build("2")).unwrap();
        let (builds, olds) = dirs.leftovers().unwrap();
        assert_eq!(builds, [dirs.build("2")]);
        assert_eq!(olds, [dirs.old("1")]);
        let done = retire(&dirs, &dir.path().join("runtime")).unwrap();
        assert_eq!(done, [Retired::Removed(dirs.old("1"))]);
        assert!(!dirs.old("1").exists());
    }
}
