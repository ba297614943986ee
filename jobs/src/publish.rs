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
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::AtFlags;

use crate::PathIo;
use crate::content::{ContentError, Overlays};
use crate::progress::{Event, Progress, Warning};

/// Why the publish or the retirement failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Io(#[from] PathIo),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Dir(#[from] left4me_statedir::DirError),
    #[error("cannot read the mount table: {0}")]
    MountTable(String),
}

/// Puts the build dir of run `id` in place of `overlays/NAME`. When that exists the two are
/// exchanged atomically (`RENAME_EXCHANGE`, through the descriptor of `overlays/`) and the
/// previous content is left at the build dir's name; otherwise the build dir is renamed.
pub fn swap_in(overlays: &Overlays, id: &str) -> Result<bool, PublishError> {
    let names = overlays.names();
    let (current, fresh) = (names.name.as_str(), names.build_name(id));
    if overlays.dir().contains(current)? {
        overlays.dir().exchange(&fresh, current)?;
        Ok(true)
    } else {
        overlays.dir().rename(&fresh, current)?;
        Ok(false)
    }
}

/// Publishes the build dir of run `id` ([`swap_in`]); after an exchange the previous content
/// is renamed `.NAME.old-ID`; then old content no mount uses is retired ([`retire`]). Only the
/// swap can fail (the build dir is then still where it was, the caller's to remove); what
/// goes wrong after it is a warning to `progress`, since the new content is live by then.
/// `runtime` is `<state_dir>/runtime`.
pub fn publish_build(
    overlays: &Overlays,
    id: &str,
    runtime: &Path,
    progress: &mut dyn Progress,
) -> Result<Vec<Retired>, PublishError> {
    if swap_in(overlays, id)? {
        let names = overlays.names();
        let (build, old) = (names.build_name(id), names.old_name(id));
        if let Err(error) = overlays.dir().rename(&build, &old) {
            progress.event(Event::Warning(&Warning::OldContentStays {
                at: overlays.path(&build),
                error,
            }));
        }
    }
    Ok(match retire(overlays, runtime) {
        Ok(retired) => retired,
        Err(err) => {
            progress.event(Event::Warning(&Warning::RetireFailed(err)));
            Vec::new()
        }
    })
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

/// Deletes the old content dirs of the overlay that no mount made before their swap still
/// uses. `runtime` is `<state_dir>/runtime`.
pub fn retire(overlays: &Overlays, runtime: &Path) -> Result<Vec<Retired>, PublishError> {
    judge_retirement(overlays, runtime, true)
}

/// What [`retire`] would do, doing nothing: the entries of `overlays/` it would remove.
pub fn retirable(overlays: &Overlays, runtime: &Path) -> Result<Vec<String>, PublishError> {
    Ok(judge_retirement(overlays, runtime, false)?
        .into_iter()
        .filter_map(|r| match r {
            Retired::Removed(path) => Some(path.file_name()?.to_string_lossy().into_owned()),
            Retired::Kept { .. } => None,
        })
        .collect())
}

/// Each old content dir of the overlay, judged: removed (when `remove`; else only said) when
/// no mount made before its swap uses it, kept otherwise.
fn judge_retirement(
    overlays: &Overlays,
    runtime: &Path,
    remove: bool,
) -> Result<Vec<Retired>, PublishError> {
    let (_, olds) = overlays.leftovers()?;
    if olds.is_empty() {
        return Ok(Vec::new());
    }
    let uses = mounts_using(&overlays.names().current(), runtime)?;
    let mut done = Vec::new();
    for old in olds {
        // The rename that retired it set its ctime; mounts made later use the new content.
        let retired_at = ctime(overlays, &old);
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
        let path = overlays.path(&old);
        if instances.is_empty() {
            if remove {
                overlays.remove(&old)?;
            }
            done.push(Retired::Removed(path));
        } else {
            done.push(Retired::Kept { path, instances });
        }
    }
    Ok(done)
}

/// The ctime of the entry `name` of `overlays/` (not followed).
fn ctime(overlays: &Overlays, name: &str) -> Option<SystemTime> {
    let stat = rustix::fs::statat(overlays.dir().fd(), name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    let secs = u64::try_from(stat.st_ctime).ok()?;
    let nanos = u32::try_from(stat.st_ctime_nsec).ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, nanos))
}
