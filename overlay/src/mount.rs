//! Applying a [`MountPlan`]: mount, keep, replace and unmount the overlay, idempotently.
//!
//! [`prepare`] is the supervisor's whole privileged start in one call (after
//! [`crate::ns::join_pid1_mount_namespace`]): resolve every layer, create the runtime dirs,
//! refuse a fuse-overlayfs upper dir, stage the cfg files into `upper`, mount. An existing mount
//! that matches the plan (and whose staged files are current) is kept; anything else mounted there
//! is unmounted first and the overlay mounted again (no lazy unmount: a busy tree is an error).
//! [`unmount`] is the cleanup: unmount if mounted, then remove overlayfs' root-owned `work/work`
//! (mode 0 after use) and `work/index`.
//!
//! Whether a mount is there is decided by mount ids (`statx(STATX_MNT_ID)` of `merged` against
//! that of `runtime/NAME`); what it is comes from `/proc/self/mountinfo` (see
//! [`crate::mountinfo`]). A mount matches when
//!
//! * it is an overlay with the plan's source (`left4me:NAME:FINGERPRINT`, see
//!   [`MountPlan::source`]) and the plan's `nosuid`/`nodev`;
//! * when mountinfo shows real paths (it does for layers given by descriptor), they are exactly
//!   the resolved layers, upper and work dirs. Linux records these strings at mount time: a layer
//!   renamed or replaced later still shows its old path, hence
//! * the stamp `runtime/NAME/mount.stamp` (root-owned, written after each mount) names this
//!   mount id and the device and inode of every layer, upper and work dir, and they are the ones
//!   the plan resolves to now. A layer rebuilt while mounted makes the mount stale.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use crate::dirs::{
    DirError, RuntimeDirs, caller, ensure_runtime_dirs, open_dir, open_instance_dir,
    open_mount_target, remove_tree,
};
use crate::fuse::{FuseTaintError, check_upper_not_fuse_tainted};
use crate::mountinfo::{self, MountInfoEntry, MountInfoError};
use crate::plan::{MountPlan, Owner};
use crate::resolve::{LayerError, ResolvedLayer, resolve_layers};
use crate::stage::{StageError, StagedFile, is_staged, read_beneath, stage_files};
use crate::sys::{MountMethod, MountSys, fd_path, proc_fd_path};

/// At most this many mounts stacked on `merged` are unmounted before giving up.
pub const MAX_STACKED_MOUNTS: usize = 16;

/// The stamp file in `runtime/NAME` describing the current mount (see the module docs).
pub const STAMP_FILE: &str = "mount.stamp";

/// What [`prepare`] / [`ensure_mounted`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    /// Nothing was mounted; the overlay is mounted now.
    Mounted,
    /// A mount matching the plan was there and was kept.
    AlreadyMounted,
    /// Something else was mounted there (the reason says what differed); it was unmounted and the
    /// overlay mounted.
    Replaced { reason: String },
}

/// The result of [`prepare`] / [`ensure_mounted`], printable as a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountReport {
    pub name: String,
    pub merged: PathBuf,
    pub outcome: MountOutcome,
    /// How the overlay was mounted; `None` when an existing mount was kept.
    pub method: Option<MountMethod>,
    pub layers: usize,
}

impl fmt::Display for MountReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, merged, layers) = (&self.name, self.merged.display(), self.layers);
        match &self.outcome {
            MountOutcome::AlreadyMounted => {
                write!(
                    f,
                    "{name}: kept the existing mount of {layers} layers at {merged}"
                )?;
            }
            MountOutcome::Mounted => write!(f, "{name}: mounted {layers} layers at {merged}")?,
            MountOutcome::Replaced { reason } => {
                write!(
                    f,
                    "{name}: replaced the mount at {merged} ({reason}) with {layers} layers"
                )?;
            }
        }
        if let Some(method) = self.method {
            write!(f, " via {method}")?;
        }
        Ok(())
    }
}

/// Whether the overlay is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountState {
    NotMounted,
    /// The topmost mount at `merged`.
    Mounted(MountInfoEntry),
}

/// What [`unmount`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnmountOutcome {
    /// `mounts` mounts were unmounted (more than 1 when several were stacked).
    Unmounted {
        mounts: usize,
    },
    NotMounted,
}

/// The result of [`unmount`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmountReport {
    pub outcome: UnmountOutcome,
    /// The leftovers of overlayfs that were removed (`work/work`, `work/index`).
    pub removed: Vec<PathBuf>,
}

/// Why the overlay cannot be mounted or unmounted.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error(transparent)]
    FuseTaint(#[from] FuseTaintError),
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    MountInfo(#[from] MountInfoError),
    #[error("mount the overlay at {}: {step}: {source}{}{advice}", target.display(), kernel_log_suffix(.kernel_log))]
    Mount {
        target: PathBuf,
        step: String,
        source: std::io::Error,
        kernel_log: Vec<String>,
        advice: &'static str,
    },
    #[error("the kernel has no overlay file system: load it (`modprobe overlay`)")]
    NoOverlay,
    #[error(
        "mount the overlay at {}: {layers} layers need {len} bytes of mount(2) options, more than \
         one page ({page} bytes), and this kernel lacks fsconfig lowerdir+ (Linux 6.8+): upgrade \
         the kernel or use fewer overlays", target.display()
    )]
    OptionsTooLong {
        target: PathBuf,
        layers: usize,
        len: usize,
        page: usize,
    },
    #[error(
        "unmount {}: busy: a process still uses the game tree; stop the instance \
         (`systemctl stop left4me-server@{name}`) and look for stragglers with `fuser -vm {}`",
        target.display(), target.display()
    )]
    Busy { target: PathBuf, name: String },
    #[error("unmount {}: {source}", target.display())]
    Unmount {
        target: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "unmount {}: still mounted after {count} unmounts: inspect it with `findmnt {}`",
        target.display(), target.display()
    )]
    StillMounted { target: PathBuf, count: usize },
    #[error("remove {}: {source}", path.display())]
    Cleanup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("inspect the mount at {}: {source}", target.display())]
    Inspect {
        target: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "mounted {} but the mount table does not show the planned overlay ({reason}): this is a \
         bug in left4me; unmount it with `umount {}`",
        target.display(), target.display()
    )]
    Verify { target: PathBuf, reason: String },
}

fn kernel_log_suffix(log: &[String]) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(" (kernel: {})", log.join("; "))
    }
}

fn mount_advice(errno: Errno) -> &'static str {
    match errno {
        Errno::PERM => ": mounting needs root (CAP_SYS_ADMIN)",
        Errno::BUSY => {
            ": the upper or work dir is in use by another overlay mount (one held by another mount \
             namespace?); find it with `grep runtime /proc/*/mountinfo`"
        }
        Errno::INVAL => {
            ": overlayfs refused the layers; the kernel message says why (an upper dir on \
             overlayfs itself is refused: put the state dir on a real file system)"
        }
        _ => "",
    }
}

/// Finds out, once per `sys`, how this kernel mounts overlays. `probe_dir` is any directory (a
/// layer); it is offered to a configuration context that is then thrown away.
pub fn mount_method<S: MountSys>(
    sys: &S,
    probe_dir: BorrowedFd<'_>,
) -> Result<MountMethod, MountError> {
    if let Some(method) = sys.method_slot().get() {
        return Ok(*method);
    }
    let probe_failed = |step: &str, e: Errno| MountError::Mount {
        target: fd_path(probe_dir),
        step: format!("probe: {step}"),
        source: e.into(),
        kernel_log: Vec::new(),
        advice: mount_advice(e),
    };
    let method = match sys.fs_open() {
        Err(Errno::NOSYS) => MountMethod::Classic,
        Err(Errno::NODEV) => return Err(MountError::NoOverlay),
        Err(e) => return Err(probe_failed("fsopen", e)),
        Ok(fs) => match sys.fs_set_fd(&fs, "lowerdir+", probe_dir) {
            Ok(()) => MountMethod::LayerFds,
            // EINVAL: no fd-valued `lowerdir+`; EBADF: a kernel that takes layer fds but not
            // O_PATH ones (before "fs: support O_PATH fds with FSCONFIG_SET_FD").
            Err(Errno::INVAL | Errno::BADF) => {
                let fs = sys.fs_open().map_err(|e| probe_failed("fsopen", e))?;
                match sys.fs_set_string(&fs, "lowerdir+", &proc_fd_path(probe_dir)) {
                    Ok(()) => MountMethod::LayerPaths,
                    Err(Errno::INVAL) => MountMethod::Classic,
                    Err(e) => return Err(probe_failed("fsconfig lowerdir+", e)),
                }
            }
            Err(e) => return Err(probe_failed("fsconfig lowerdir+ by fd", e)),
        },
    };
    Ok(*sys.method_slot().get_or_init(|| method))
}

/// Whether `merged` of the plan has something mounted on it, and what. Creates nothing.
pub fn mount_state<S: MountSys>(sys: &S, plan: &MountPlan) -> Result<MountState, MountError> {
    match open_instance_dir(plan)? {
        None => Ok(MountState::NotMounted),
        Some(instance) => inspect(sys, instance.as_fd(), plan),
    }
}

fn inspect<S: MountSys>(
    sys: &S,
    instance: BorrowedFd<'_>,
    plan: &MountPlan,
) -> Result<MountState, MountError> {
    let failed = |e: std::io::Error| MountError::Inspect {
        target: plan.merged.clone(),
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

/// Why `entry` is not the mount the plan asks for; `None` when it is.
fn mismatch(
    entry: &MountInfoEntry,
    plan: &MountPlan,
    layers: &[ResolvedLayer],
    dirs: &RuntimeDirs,
) -> Option<String> {
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
    let want: Vec<&Path> = layers.iter().map(|l| l.path.as_path()).collect();
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

/// The identity of everything the mount is made of, as the stamp records it.
fn stamp_text(
    mount_id: u64,
    plan: &MountPlan,
    layers: &[ResolvedLayer],
    dirs: &RuntimeDirs,
) -> Result<String, MountError> {
    let mut text = format!(
        "left4me mount stamp 1\nmount_id {mount_id}\nsource {}\n",
        plan.source()
    );
    for layer in layers {
        text.push_str(&format!(
            "lower {}:{} {}\n",
            layer.dev,
            layer.ino,
            layer.rel.display()
        ));
    }
    for (what, fd, path) in [
        ("upper", &dirs.upper, &plan.upper),
        ("work", &dirs.work, &plan.work),
    ] {
        let stat = rustix::fs::fstat(fd).map_err(|e| MountError::Inspect {
            target: path.clone(),
            source: e.into(),
        })?;
        text.push_str(&format!("{what} {}:{}\n", stat.st_dev, stat.st_ino));
    }
    Ok(text)
}

/// Why the stamp does not vouch for the mount `entry`; `None` when it does.
fn stamp_mismatch(
    entry: &MountInfoEntry,
    plan: &MountPlan,
    layers: &[ResolvedLayer],
    dirs: &RuntimeDirs,
) -> Result<Option<String>, MountError> {
    let Some(stamp) = read_beneath(&dirs.instance, STAMP_FILE)? else {
        return Ok(Some(format!(
            "it has no {STAMP_FILE}: it was not mounted by left4me"
        )));
    };
    let want = stamp_text(entry.mount_id, plan, layers, dirs)?;
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

fn unmount_all<S: MountSys>(
    sys: &S,
    instance: BorrowedFd<'_>,
    plan: &MountPlan,
) -> Result<usize, MountError> {
    for count in 0..MAX_STACKED_MOUNTS {
        if inspect(sys, instance, plan)? == MountState::NotMounted {
            match rustix::fs::unlinkat(instance, STAMP_FILE, rustix::fs::AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => {
                    return Err(MountError::Cleanup {
                        path: plan.runtime_dir.join(STAMP_FILE),
                        source: e.into(),
                    });
                }
            }
            return Ok(count);
        }
        sys.unmount(instance, "merged").map_err(|e| match e {
            Errno::BUSY => MountError::Busy {
                target: plan.merged.clone(),
                name: plan.name.clone(),
            },
            e => MountError::Unmount {
                target: plan.merged.clone(),
                source: e.into(),
            },
        })?;
    }
    Err(MountError::StillMounted {
        target: plan.merged.clone(),
        count: MAX_STACKED_MOUNTS,
    })
}

fn mount_with<S: MountSys>(
    sys: &S,
    method: MountMethod,
    plan: &MountPlan,
    layers: &[ResolvedLayer],
    dirs: &RuntimeDirs,
) -> Result<(), MountError> {
    let failed = |step: String, e: Errno, kernel_log: Vec<String>| MountError::Mount {
        target: plan.merged.clone(),
        step,
        source: e.into(),
        kernel_log,
        advice: mount_advice(e),
    };
    let target = open_mount_target(dirs.instance.as_fd(), plan)?;
    if method == MountMethod::Classic {
        let lower: Vec<String> = layers.iter().map(|l| proc_fd_path(l.fd.as_fd())).collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            proc_fd_path(dirs.upper.as_fd()),
            proc_fd_path(dirs.work.as_fd())
        );
        let page = rustix::param::page_size();
        if data.len() + 1 > page {
            return Err(MountError::OptionsTooLong {
                target: plan.merged.clone(),
                layers: layers.len(),
                len: data.len() + 1,
                page,
            });
        }
        return sys
            .mount_classic(&plan.source(), target.as_fd(), plan.options, &data)
            .map_err(|e| failed("mount(2)".into(), e, Vec::new()));
    }

    let fs = sys
        .fs_open()
        .map_err(|e| failed("fsopen".into(), e, Vec::new()))?;
    let step = |step: &dyn Fn() -> String, result: Result<(), Errno>| {
        result.map_err(|e| failed(step(), e, sys.fs_log(&fs)))
    };
    let set_dir = |key: &str, fd: BorrowedFd<'_>| match method {
        MountMethod::LayerFds => sys.fs_set_fd(&fs, key, fd),
        _ => sys.fs_set_string(&fs, key, &proc_fd_path(fd)),
    };
    step(
        &|| "fsconfig source".into(),
        sys.fs_set_string(&fs, "source", &plan.source()),
    )?;
    for layer in layers {
        step(
            &|| format!("fsconfig lowerdir+ {}", layer.path.display()),
            set_dir("lowerdir+", layer.fd.as_fd()),
        )?;
    }
    step(
        &|| format!("fsconfig upperdir {}", plan.upper.display()),
        set_dir("upperdir", dirs.upper.as_fd()),
    )?;
    step(
        &|| format!("fsconfig workdir {}", plan.work.display()),
        set_dir("workdir", dirs.work.as_fd()),
    )?;
    step(&|| "fsconfig create".into(), sys.fs_create(&fs))?;
    let mnt = sys
        .fs_mount(&fs, plan.options)
        .map_err(|e| failed("fsmount".into(), e, sys.fs_log(&fs)))?;
    sys.move_mount_onto(&mnt, target.as_fd())
        .map_err(|e| failed("move_mount".into(), e, Vec::new()))
}

/// The supervisor's privileged start: resolve and check every layer, create the runtime dirs
/// (upper/work/merged owned by `game`), refuse a fuse-overlayfs upper dir, stage `files` into
/// `upper` (owned by `game`) and mount — or keep a matching mount whose staged files are current.
/// Call [`crate::ns::join_pid1_mount_namespace`] before.
pub fn prepare<S: MountSys>(
    sys: &S,
    plan: &MountPlan,
    game: Owner,
    files: &[StagedFile],
) -> Result<MountReport, MountError> {
    let layers = resolve_layers(plan)?;
    let dirs = ensure_runtime_dirs(plan, game)?;
    check_upper_not_fuse_tainted(dirs.upper.as_fd(), &plan.upper, &plan.name)?;
    let report = |outcome, method| MountReport {
        name: plan.name.clone(),
        merged: plan.merged.clone(),
        outcome,
        method,
        layers: layers.len(),
    };

    let mut outcome = MountOutcome::Mounted;
    if let MountState::Mounted(entry) = inspect(sys, dirs.instance.as_fd(), plan)? {
        let mut reason = mismatch(&entry, plan, &layers, &dirs);
        if reason.is_none() {
            reason = stamp_mismatch(&entry, plan, &layers, &dirs)?;
        }
        if reason.is_none() && !is_staged(&dirs.upper, files, game) {
            reason = Some("the staged files changed".to_owned());
        }
        let Some(reason) = reason else {
            return Ok(report(MountOutcome::AlreadyMounted, None));
        };
        unmount_all(sys, dirs.instance.as_fd(), plan)?;
        outcome = MountOutcome::Replaced { reason };
    }

    stage_files(&dirs.upper, files, game)?;
    let method = mount_method(sys, layers[0].fd.as_fd())?;
    mount_with(sys, method, plan, &layers, &dirs)?;

    let verify = |reason: String| MountError::Verify {
        target: plan.merged.clone(),
        reason,
    };
    let entry = match inspect(sys, dirs.instance.as_fd(), plan)? {
        MountState::NotMounted => return Err(verify("nothing is mounted there".into())),
        MountState::Mounted(entry) => entry,
    };
    if let Some(reason) = mismatch(&entry, plan, &layers, &dirs) {
        return Err(verify(reason));
    }
    let stamp = stamp_text(entry.mount_id, plan, &layers, &dirs)?;
    stage_files(
        &dirs.instance,
        &[StagedFile::new(STAMP_FILE, stamp)],
        caller(),
    )?;
    Ok(report(outcome, Some(method)))
}

/// [`prepare`] without files to stage: keeps a matching mount, replaces a different one, mounts
/// when nothing is there.
pub fn ensure_mounted<S: MountSys>(
    sys: &S,
    plan: &MountPlan,
    game: Owner,
) -> Result<MountReport, MountError> {
    prepare(sys, plan, game, &[])
}

/// The cleanup: unmounts whatever is mounted at `merged` (all stacked mounts; nothing when
/// nothing is), then removes overlayfs' root-owned `work/work` and `work/index`. Idempotent.
/// Call [`crate::ns::join_pid1_mount_namespace`] before.
pub fn unmount<S: MountSys>(sys: &S, plan: &MountPlan) -> Result<UnmountReport, MountError> {
    let Some(instance) = open_instance_dir(plan)? else {
        return Ok(UnmountReport {
            outcome: UnmountOutcome::NotMounted,
            removed: Vec::new(),
        });
    };
    let mounts = unmount_all(sys, instance.as_fd(), plan)?;
    let mut removed = Vec::new();
    if let Some(work) = open_dir(instance.as_fd(), "work", &plan.work)? {
        for name in ["work", "index"] {
            let path = plan.work.join(name);
            if remove_tree(work.as_fd(), name, &path)? {
                removed.push(path);
            }
        }
    }
    let outcome = match mounts {
        0 => UnmountOutcome::NotMounted,
        mounts => UnmountOutcome::Unmounted { mounts },
    };
    Ok(UnmountReport { outcome, removed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::RecordingSys;
    use crate::testutil::TempDir;

    fn state() -> TempDir {
        let t = TempDir::new("mount");
        for d in ["installation", "overlays/a", "overlays/b"] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        t
    }

    fn plan(t: &TempDir, layers: &[&str]) -> MountPlan {
        MountPlan::new(t.path(), "coop1", layers).unwrap()
    }

    /// The calls that mount `plan` by descriptor (without the probe).
    fn fd_mount_calls(plan: &MountPlan) -> Vec<String> {
        let mut calls = vec![
            "fsopen overlay".to_owned(),
            format!("fsconfig source={}", plan.source()),
        ];
        for dir in &plan.lowerdirs {
            calls.push(format!("fsconfig lowerdir+=fd:{}", dir.display()));
        }
        calls.push(format!("fsconfig upperdir=fd:{}", plan.upper.display()));
        calls.push(format!("fsconfig workdir=fd:{}", plan.work.display()));
        calls.push("fsconfig create".into());
        calls.push("fsmount nosuid,nodev".into());
        calls.push(format!("move_mount {}", plan.merged.display()));
        calls
    }

    #[test]
    fn mount_keep_replace_unmount() {
        let t = state();
        let sys = RecordingSys::new();
        let p = plan(&t, &["overlays/b", "overlays/a", "installation"]);

        let report = ensure_mounted(&sys, &p, caller()).unwrap();
        assert_eq!(report.outcome, MountOutcome::Mounted);
        assert_eq!(report.method, Some(MountMethod::LayerFds));
        assert_eq!(report.layers, 3);
        let mut want = vec![
            "fsopen overlay".to_owned(),
            format!("fsconfig lowerdir+=fd:{}", p.lowerdirs[0].display()),
        ];
        want.extend(fd_mount_calls(&p));
        assert_eq!(sys.calls(), want);
        assert_eq!(
            report.to_string(),
            format!(
                "coop1: mounted 3 layers at {} via fsconfig lowerdir+ by file descriptor (Linux 6.13+)",
                p.merged.display()
            )
        );
        assert!(matches!(
            mount_state(&sys, &p).unwrap(),
            MountState::Mounted(_)
        ));

        // Second call keeps it, without a single mount call.
        sys.clear_calls();
        let report = ensure_mounted(&sys, &p, caller()).unwrap();
        assert_eq!(report.outcome, MountOutcome::AlreadyMounted);
        assert_eq!(report.method, None);
        assert_eq!(sys.calls(), Vec::<String>::new());

        // A different plan replaces it: unmount, then mount (the probe is not repeated).
        sys.clear_calls();
        let q = plan(&t, &["overlays/a", "installation"]);
        let report = ensure_mounted(&sys, &q, caller()).unwrap();
        match &report.outcome {
            MountOutcome::Replaced { reason } => {
                assert!(
                    reason.starts_with("it was made from another plan: source left4me:coop1:"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        let mut want = vec![format!("umount {}", p.merged.display())];
        want.extend(fd_mount_calls(&q));
        assert_eq!(sys.calls(), want);
        assert_eq!(sys.mount_targets(), std::slice::from_ref(&q.merged));

        // Unmount: once, then nothing to do; overlayfs' leftovers are removed.
        std::fs::create_dir_all(q.work.join("work")).unwrap();
        std::fs::create_dir_all(q.work.join("index/00")).unwrap();
        sys.clear_calls();
        let report = unmount(&sys, &q).unwrap();
        assert_eq!(report.outcome, UnmountOutcome::Unmounted { mounts: 1 });
        assert_eq!(report.removed, [q.work.join("work"), q.work.join("index")]);
        assert_eq!(sys.calls(), [format!("umount {}", q.merged.display())]);
        assert!(sys.mount_targets().is_empty());
        sys.clear_calls();
        let report = unmount(&sys, &q).unwrap();
        assert_eq!(
            report,
            UnmountReport {
                outcome: UnmountOutcome::NotMounted,
                removed: vec![]
            }
        );
        assert_eq!(sys.calls(), Vec::<String>::new());
    }

    #[test]
    fn unmount_without_runtime_dir() {
        let t = state();
        let sys = RecordingSys::new();
        let report = unmount(&sys, &plan(&t, &["installation"])).unwrap();
        assert_eq!(report.outcome, UnmountOutcome::NotMounted);
        assert!(!t.path().join("runtime").exists());
        assert_eq!(
            mount_state(&sys, &plan(&t, &["installation"])).unwrap(),
            MountState::NotMounted
        );
    }

    #[test]
    fn staged_files_change_replaces() {
        let t = state();
        let sys = RecordingSys::new();
        let p = plan(&t, &["installation"]);
        let cfg = |text: &str| [StagedFile::new("left4dead2/cfg/server.cfg", text)];
        prepare(&sys, &p, caller(), &cfg("hostname a\n")).unwrap();
        assert_eq!(
            std::fs::read_to_string(p.upper.join("left4dead2/cfg/server.cfg")).unwrap(),
            "hostname a\n"
        );
        let report = prepare(&sys, &p, caller(), &cfg("hostname a\n")).unwrap();
        assert_eq!(report.outcome, MountOutcome::AlreadyMounted);
        sys.clear_calls();
        let report = prepare(&sys, &p, caller(), &cfg("hostname b\n")).unwrap();
        assert_eq!(
            report.outcome,
            MountOutcome::Replaced {
                reason: "the staged files changed".into()
            }
        );
        // The file is staged between the unmount and the mount.
        assert_eq!(sys.calls()[0], format!("umount {}", p.merged.display()));
        assert_eq!(
            std::fs::read_to_string(p.upper.join("left4dead2/cfg/server.cfg")).unwrap(),
            "hostname b\n"
        );
    }

    #[test]
    fn stacked_and_foreign_mounts_are_all_replaced() {
        let t = state();
        let sys = RecordingSys::new();
        let p = plan(&t, &["installation"]);
        ensure_mounted(&sys, &p, caller()).unwrap();
        let dirs = ensure_runtime_dirs(&p, caller()).unwrap();
        let target = rustix::fs::open(
            &p.merged,
            rustix::fs::OFlags::PATH,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        drop(dirs);
        sys.mount_classic("other", target.as_fd(), p.options, "lowerdir=/x")
            .unwrap();
        assert_eq!(sys.mount_targets().len(), 2);
        sys.clear_calls();
        let report = ensure_mounted(&sys, &p, caller()).unwrap();
        assert_eq!(
            report.outcome,
            MountOutcome::Replaced {
                reason: format!(
                    "it was made from another plan: source other, expected {}",
                    p.source()
                )
            }
        );
        let umount = format!("umount {}", p.merged.display());
        assert_eq!(sys.calls()[..2], [umount.clone(), umount]);
        assert_eq!(sys.mount_targets(), std::slice::from_ref(&p.merged));
    }

    #[test]
    fn busy_unmount_says_what_to_do() {
        let t = state();
        let sys = RecordingSys::new();
        let p = plan(&t, &["installation"]);
        ensure_mounted(&sys, &p, caller()).unwrap();
        sys.set_busy(true);
        let e = unmount(&sys, &p).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "unmount {0}: busy: a process still uses the game tree; stop the instance \
                 (`systemctl stop left4me-server@coop1`) and look for stragglers with `fuser -vm {0}`",
                p.merged.display()
            )
        );
        sys.set_busy(false);
        assert_eq!(
            unmount(&sys, &p).unwrap().outcome,
            UnmountOutcome::Unmounted { mounts: 1 }
        );
    }

    #[test]
    fn falls_back_to_layer_paths() {
        let t = state();
        let sys = RecordingSys::emulating(MountMethod::LayerPaths);
        let p = plan(&t, &["overlays/a", "installation"]);
        let report = ensure_mounted(&sys, &p, caller()).unwrap();
        assert_eq!(report.method, Some(MountMethod::LayerPaths));
        let calls = sys.calls();
        assert_eq!(calls[0], "fsopen overlay");
        assert_eq!(
            calls[1],
            format!("fsconfig lowerdir+=fd:{}", p.lowerdirs[0].display())
        );
        assert_eq!(calls[2], "fsopen overlay");
        assert!(
            calls[3].starts_with("fsconfig lowerdir+=/proc/self/fd/"),
            "{}",
            calls[3]
        );
        assert_eq!(calls[4], "fsopen overlay");
        assert_eq!(calls[5], format!("fsconfig source={}", p.source()));
        for (i, key) in ["lowerdir+", "lowerdir+", "upperdir", "workdir"]
            .iter()
            .enumerate()
        {
            assert!(
                calls[6 + i].starts_with(&format!("fsconfig {key}=/proc/self/fd/")),
                "{calls:?}"
            );
        }
        assert_eq!(
            calls[10..],
            [
                "fsconfig create".to_owned(),
                "fsmount nosuid,nodev".into(),
                format!("move_mount {}", p.merged.display())
            ]
        );
        // Matched by its source fingerprint.
        assert_eq!(
            ensure_mounted(&sys, &p, caller()).unwrap().outcome,
            MountOutcome::AlreadyMounted
        );
    }

    #[test]
    fn falls_back_to_classic_mount() {
        let t = state();
        let sys = RecordingSys::emulating(MountMethod::Classic);
        let p = plan(&t, &["overlays/b", "overlays/a", "installation"]);
        let report = ensure_mounted(&sys, &p, caller()).unwrap();
        assert_eq!(report.method, Some(MountMethod::Classic));
        let calls = sys.calls();
        assert_eq!(calls.len(), 5, "{calls:?}");
        let mount = &calls[4];
        let prefix = format!(
            "mount {} {} nosuid,nodev lowerdir=/proc/self/fd/",
            p.source(),
            p.merged.display()
        );
        assert!(mount.starts_with(&prefix), "{mount}");
        assert_eq!(mount.matches(":/proc/self/fd/").count(), 2, "{mount}");
        assert!(
            mount.contains(",upperdir=/proc/self/fd/") && mount.contains(",workdir=/proc/self/fd/")
        );
        assert_eq!(
            ensure_mounted(&sys, &p, caller()).unwrap().outcome,
            MountOutcome::AlreadyMounted
        );
    }

    #[test]
    fn classic_mount_refuses_more_than_a_page() {
        let t = state();
        let layers: Vec<String> = (0..300).map(|i| format!("overlays/{i}")).collect();
        for l in &layers {
            std::fs::create_dir_all(t.path().join(l)).unwrap();
        }
        let p = MountPlan::new(t.path(), "coop1", &layers).unwrap();
        let sys = RecordingSys::emulating(MountMethod::Classic);
        let e = ensure_mounted(&sys, &p, caller()).unwrap_err();
        assert!(
            matches!(e, MountError::OptionsTooLong { layers: 300, .. }),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("upgrade the kernel or use fewer overlays"),
            "{e}"
        );
        assert!(sys.mount_targets().is_empty());
        // The new mount API takes them.
        let sys = RecordingSys::new();
        ensure_mounted(&sys, &p, caller()).unwrap();
    }

    #[test]
    fn refusals_happen_before_any_mount_call() {
        let t = state();
        std::os::unix::fs::symlink("/etc", t.path().join("overlays/evil")).unwrap();
        let sys = RecordingSys::new();
        let e = ensure_mounted(
            &sys,
            &plan(&t, &["overlays/evil", "installation"]),
            caller(),
        )
        .unwrap_err();
        assert!(
            matches!(e, MountError::Layer(LayerError::Layer { .. })),
            "{e}"
        );
        assert!(
            e.to_string().contains("overlays/evil: escapes overlays/"),
            "{e}"
        );
        assert_eq!(sys.calls(), Vec::<String>::new());
    }

    #[test]
    fn fuse_tainted_upper_refused() {
        let t = state();
        let p = plan(&t, &["installation"]);
        let dirs = ensure_runtime_dirs(&p, caller()).unwrap();
        std::fs::create_dir_all(p.upper.join("left4dead2/addons")).unwrap();
        let deep = rustix::fs::open(
            p.upper.join("left4dead2/addons"),
            rustix::fs::OFlags::RDONLY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        rustix::fs::fsetxattr(
            &deep,
            "user.fuseoverlayfs.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        drop(dirs);
        let sys = RecordingSys::new();
        let e = ensure_mounted(&sys, &p, caller()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} carries the xattr user.fuseoverlayfs.opaque: the upper dir is left over from \
                 fuse-overlayfs; wipe it with `left4mectl reset coop1`",
                p.upper.join("left4dead2/addons").display()
            )
        );
        assert_eq!(sys.calls(), Vec::<String>::new());
    }

    #[test]
    fn mismatch_reasons() {
        let t = state();
        let sys = RecordingSys::new();
        let p = plan(&t, &["overlays/a", "installation"]);
        ensure_mounted(&sys, &p, caller()).unwrap();
        let layers = resolve_layers(&p).unwrap();
        let dirs = ensure_runtime_dirs(&p, caller()).unwrap();
        let MountState::Mounted(entry) = mount_state(&sys, &p).unwrap() else {
            panic!()
        };
        assert_eq!(mismatch(&entry, &p, &layers, &dirs), None);

        let mut other = entry.clone();
        other.fs_type = "tmpfs".into();
        assert_eq!(
            mismatch(&other, &p, &layers, &dirs).unwrap(),
            "a tmpfs file system was mounted there"
        );
        let mut other = entry.clone();
        other.mount_options.retain(|o| o != "nodev");
        assert!(
            mismatch(&other, &p, &layers, &dirs)
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
            mismatch(&other, &p, &layers, &dirs).unwrap(),
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
            mismatch(&other, &p, &layers, &dirs)
                .unwrap()
                .starts_with("its work dir is None")
        );
    }
}
