//! Verifying an existing mount: is something mounted on `merged`, and is it the mount the plan
//! asks for?
//!
//! Whether a mount is there is decided by mount ids (`statx(STATX_MNT_ID)` of `merged` against
//! that of `runtime/NAME`); what it is comes from `/proc/self/mountinfo` (see
//! [`crate::mountinfo`]). A mount matches when
//!
//! * it is an overlay with the plan's source (`left4me:NAME:FINGERPRINT`, see
//!   [`crate::plan::MountPlan::source`]) and the plan's `nosuid`/`nodev`;
//! * when mountinfo shows real paths (it does for layers given by descriptor), they are exactly
//!   the resolved layers, upper and work dirs. Linux records these strings at mount time: a layer
//!   renamed or replaced later still shows its old path, hence
//! * the stamp `runtime/NAME/mount.stamp` (root-owned, written after each mount) names this
//!   mount id and the device and inode of every layer, upper and work dir, and they are the ones
//!   the plan resolves to now. A layer rebuilt while mounted makes the mount stale.
//!
//! The errors are [`MountError`]'s: verifying is a step of mounting and unmounting.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::dirs::{OpenRuntimeDirs, caller, open_instance_dir};
use crate::mount::MountError;
use crate::mountinfo::{self, MountInfoEntry};
use crate::plan::{InstanceRuntime, Owner};
use crate::resolve::{ResolvedPlan, open_state_dir};
use crate::stage::{StagedFile, is_staged, read_beneath, stage_files};
use crate::sys::{MountSys, RESOLVE_STRICT, fd_path, openat2_retry};

/// The stamp file in `runtime/NAME` describing the current mount (see the module docs).
pub const STAMP_FILE: &str = "mount.stamp";

/// Whether the overlay is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountState {
    NotMounted,
    /// The topmost mount at `merged`.
    Mounted(MountInfoEntry),
}

/// Whether `merged` of the instance has something mounted on it, and what. Creates nothing.
pub fn mount_state<S: MountSys>(
    sys: &S,
    runtime: &InstanceRuntime,
) -> Result<MountState, MountError> {
    match open_instance_dir(runtime)? {
        None => Ok(MountState::NotMounted),
        Some(instance) => inspect(sys, instance.as_fd(), runtime),
    }
}

/// [`mount_state`] with `runtime/NAME` open already (`instance`).
pub(crate) fn inspect<S: MountSys>(
    sys: &S,
    instance: BorrowedFd<'_>,
    runtime: &InstanceRuntime,
) -> Result<MountState, MountError> {
    let failed = |e: std::io::Error| MountError::Inspect {
        target: runtime.dirs.merged.clone(),
        source: e,
    };
    let parent = sys.mount_id(instance, "").map_err(|e| failed(e.into()))?;
    let merged = match sys.mount_id(instance, "merged") {
        Ok(id) => id,
        Err(Errno::NOENT) => return Ok(MountState::NotMounted),
        Err(e) => return Err(failed(e.into())),
    };
    if merged == parent {
        return Ok(MountState::NotMounted);
    }
    let text = sys.mountinfo().map_err(|e| failed(e.into()))?;
    let entries = mountinfo::parse(&text)?;
    match mountinfo::find(&entries, merged) {
        Some(entry) => Ok(MountState::Mounted(entry.clone())),
        None => Err(failed(std::io::Error::other(format!(
            "mount id {merged} is not in /proc/self/mountinfo"
        )))),
    }
}

/// Why the existing mount `entry` must be replaced to get the mount `resolved` asks for: it is
/// another mount ([`mismatch`]), its stamp does not vouch for it, or the staged `files` changed.
/// `None` when it can be kept.
pub(crate) fn why_replace(
    entry: &MountInfoEntry,
    resolved: &ResolvedPlan<'_>,
    dirs: &OpenRuntimeDirs,
    files: &[StagedFile],
    game: Owner,
) -> Result<Option<String>, MountError> {
    if let Some(reason) = mismatch(entry, resolved, dirs) {
        return Ok(Some(reason));
    }
    if let Some(reason) = stamp_mismatch(entry, resolved, dirs)? {
        return Ok(Some(reason));
    }
    if !is_staged(&dirs.upper, files, game) {
        return Ok(Some("the staged files changed".to_owned()));
    }
    Ok(None)
}

/// Why `entry` is not the mount the plan asks for; `None` when it is.
pub(crate) fn mismatch(
    entry: &MountInfoEntry,
    resolved: &ResolvedPlan<'_>,
    dirs: &OpenRuntimeDirs,
) -> Option<String> {
    let plan = resolved.plan();
    if entry.fs_type != "overlay" {
        return Some(format!("a {} file system was mounted there", entry.fs_type));
    }
    let source = plan.source();
    if entry.source != source {
        return Some(format!(
            "it was made from another plan: source {}, expected {source}",
            entry.source
        ));
    }
    if entry.has_mount_option("nosuid") != plan.options.nosuid
        || entry.has_mount_option("nodev") != plan.options.nodev
    {
        return Some(format!(
            "its mount flags are {}, expected {}",
            entry.mount_options.join(","),
            plan.options
        ));
    }
    let shown = entry.overlay_layers();
    let by_path = shown
        .lowerdirs
        .iter()
        .all(|l| !l.starts_with("/proc/self/fd"));
    if !by_path {
        // Layers were given as /proc/self/fd/N strings (pre-6.13 fallbacks): only the source
        // fingerprint can be compared.
        return None;
    }
    let want: Vec<&Path> = resolved.layers().iter().map(|l| l.path.as_path()).collect();
    let have: Vec<&Path> = shown.lowerdirs.iter().map(PathBuf::as_path).collect();
    if have != want {
        let first = have.iter().zip(&want).position(|(h, w)| h != w);
        return Some(match first {
            Some(i) => format!(
                "lower layer {} is {}, the plan has {}",
                i + 1,
                have[i].display(),
                want[i].display()
            ),
            None => format!(
                "it has {} lower layers, the plan {}",
                have.len(),
                want.len()
            ),
        });
    }
    for (what, have, want) in [
        ("upper", &shown.upperdir, fd_path(dirs.upper.as_fd())),
        ("work", &shown.workdir, fd_path(dirs.work.as_fd())),
    ] {
        if have.as_deref() != Some(want.as_path()) {
            return Some(format!(
                "its {what} dir is {have:?}, the plan has {}",
                want.display()
            ));
        }
    }
    None
}

/// Writes the stamp of the mount `mount_id`, just made from `resolved`.
pub(crate) fn write_stamp(
    mount_id: u64,
    resolved: &ResolvedPlan<'_>,
    dirs: &OpenRuntimeDirs,
) -> Result<(), MountError> {
    let stamp = stamp_text(mount_id, resolved, dirs)?;
    stage_files(
        &dirs.instance,
        &[StagedFile::new(STAMP_FILE, stamp)],
        caller(),
    )?;
    Ok(())
}

/// The identity of everything the mount is made of, as the stamp records it.
fn stamp_text(
    mount_id: u64,
    resolved: &ResolvedPlan<'_>,
    dirs: &OpenRuntimeDirs,
) -> Result<String, MountError> {
    let plan = resolved.plan();
    let mut text = format!(
        "left4me mount stamp 1\nmount_id {mount_id}\nsource {}\n",
        plan.source()
    );
    for layer in resolved.layers() {
        text.push_str(&format!(
            "lower {}:{} {}\n",
            layer.dev,
            layer.ino,
            layer.rel.display()
        ));
    }
    for (what, fd, path) in [
        ("upper", &dirs.upper, &plan.dirs().upper),
        ("work", &dirs.work, &plan.dirs().work),
    ] {
        let stat = rustix::fs::fstat(fd).map_err(|e| MountError::Inspect {
            target: path.clone(),
            source: e.into(),
        })?;
        text.push_str(&format!("{what} {}:{}\n", stat.st_dev, stat.st_ino));
    }
    Ok(text)
}

/// The lower layers of the instance's mount, as its stamp recorded them, that are no longer the
/// directories at their paths: content published since the mount (a build exchanged
/// `overlays/X`), which a restart would mount. Empty when the instance has no stamp; the caller
/// asks only for a running instance (a stamp outlives its mount).
pub fn replaced_layers(runtime: &InstanceRuntime) -> Result<Vec<PathBuf>, MountError> {
    let Some(instance) = open_instance_dir(runtime)? else {
        return Ok(Vec::new());
    };
    let Some(stamp) = read_beneath(&instance, STAMP_FILE)? else {
        return Ok(Vec::new());
    };
    let state = open_state_dir(&runtime.state_dir)?;
    let mut replaced = Vec::new();
    for line in String::from_utf8_lossy(&stamp).lines() {
        let Some((identity, rel)) = line.strip_prefix("lower ").and_then(|l| l.split_once(' '))
        else {
            continue;
        };
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW;
        let now = openat2_retry(
            state.as_fd(),
            Path::new(rel),
            flags,
            Mode::empty(),
            RESOLVE_STRICT,
        )
        .and_then(|fd| rustix::fs::fstat(&fd))
        .map(|stat| format!("{}:{}", stat.st_dev, stat.st_ino));
        if now.as_deref() != Ok(identity) {
            replaced.push(PathBuf::from(rel));
        }
    }
    Ok(replaced)
}

/// Why the stamp does not vouch for the mount `entry`; `None` when it does.
fn stamp_mismatch(
    entry: &MountInfoEntry,
    resolved: &ResolvedPlan<'_>,
    dirs: &OpenRuntimeDirs,
) -> Result<Option<String>, MountError> {
    let Some(stamp) = read_beneath(&dirs.instance, STAMP_FILE)? else {
        return Ok(Some(format!(
            "it has no {STAMP_FILE}: it was not mounted by left4me"
        )));
    };
    let want = stamp_text(entry.mount_id, resolved, dirs)?;
    if stamp == want.as_bytes() {
        return Ok(None);
    }
    let stamp = String::from_utf8_lossy(&stamp);
    if !stamp.contains(&format!("\nmount_id {}\n", entry.mount_id)) {
        return Ok(Some(format!("its {STAMP_FILE} describes another mount")));
    }
    let changed = want
        .lines()
        .find(|line| !stamp.lines().any(|l| l == *line))
        .unwrap_or("");
    let what = changed.split_once(' ').map_or(changed, |(_, rest)| rest);
    let what = what.split_once(' ').map_or(what, |(_, rel)| rel);
    Ok(Some(format!("{what} was replaced since it was mounted")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dirs::ensure_runtime_dirs;
    use crate::mount::ensure_mounted;
    use crate::plan::MountPlan;
    use crate::recording::RecordingSys;
    use crate::resolve::resolve_plan;
    use crate::testutil::TempDir;

    #[test]
    fn replaced_layers_are_the_ones_swapped_since_the_mount() {
        let t = TempDir::new("replaced");
        for d in [
            "installation",
            "overlays/a",
            "overlays/b",
            "overlays/.b.new",
        ] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        let sys = RecordingSys::new();
        let p = MountPlan::new(
            t.path(),
            "coop1",
            &["overlays/b", "overlays/a", "installation"],
        )
        .unwrap();
        assert_eq!(replaced_layers(&p.runtime).unwrap(), Vec::<PathBuf>::new());
        ensure_mounted(&sys, &p, caller()).unwrap();
        assert_eq!(replaced_layers(&p.runtime).unwrap(), Vec::<PathBuf>::new());
        // A publish exchanges the content dir with a fresh one.
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            t.path().join("overlays/.b.new"),
            rustix::fs::CWD,
            t.path().join("overlays/b"),
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .unwrap();
        assert_eq!(
            replaced_layers(&p.runtime).unwrap(),
            [PathBuf::from("overlays/b")]
        );
        std::fs::remove_dir(t.path().join("overlays/a")).unwrap();
        assert_eq!(replaced_layers(&p.runtime).unwrap().len(), 2);
    }

    #[test]
    fn mismatch_reasons() {
        let t = TempDir::new("verify");
        for d in ["installation", "overlays/a"] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        let sys = RecordingSys::new();
        let p = MountPlan::new(t.path(), "coop1", &["overlays/a", "installation"]).unwrap();
        ensure_mounted(&sys, &p, caller()).unwrap();
        let layers = resolve_plan(&p).unwrap();
        let dirs = ensure_runtime_dirs(&p.runtime, caller()).unwrap();
        let MountState::Mounted(entry) = mount_state(&sys, &p.runtime).unwrap() else {
            panic!()
        };
        assert_eq!(
            why_replace(&entry, &layers, &dirs, &[], caller()).unwrap(),
            None
        );
        assert_eq!(mismatch(&entry, &layers, &dirs), None);

        let mut other = entry.clone();
        other.fs_type = "tmpfs".into();
        assert_eq!(
            mismatch(&other, &layers, &dirs).unwrap(),
            "a tmpfs file system was mounted there"
        );
        let mut other = entry.clone();
        other.mount_options.retain(|o| o != "nodev");
        assert!(
            mismatch(&other, &layers, &dirs)
                .unwrap()
                .starts_with("its mount flags are rw,nosuid,relatime")
        );
        // Same source, but a layer directory was swapped since (what mountinfo shows differs).
        let mut other = entry.clone();
        let first = other
            .super_options
            .iter()
            .position(|o| o.to_string_lossy().starts_with("lowerdir+="))
            .unwrap();
        other.super_options[first] = "lowerdir+=/elsewhere".into();
        assert_eq!(
            mismatch(&other, &layers, &dirs).unwrap(),
            format!(
                "lower layer 1 is /elsewhere, the plan has {}",
                p.lowerdirs[0].display()
            )
        );
        let mut other = entry.clone();
        other
            .super_options
            .retain(|o| !o.to_string_lossy().starts_with("workdir="));
        assert!(
            mismatch(&other, &layers, &dirs)
                .unwrap()
                .starts_with("its work dir is None")
        );
    }
}
