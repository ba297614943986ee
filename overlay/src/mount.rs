//! Applying a [`MountPlan`]: mount, keep, replace and unmount the overlay, idempotently.
//!
//! [`prepare`] is the supervisor's whole privileged start in one call (after
//! [`crate::ns::join_pid1_mount_namespace`] and [`crate::resolve::resolve_plan`], which opened
//! every layer): create the runtime dirs,
//! refuse a fuse-overlayfs upper dir, stage the cfg files into `upper`, mount. An existing mount
//! that matches the plan (and whose staged files are current) is kept; anything else mounted there
//! is unmounted first and the overlay mounted again (no lazy unmount: a busy tree is an error).
//! [`unmount`] is the cleanup: unmount if mounted, then remove overlayfs' root-owned `work/work`
//! (mode 0 after use) and `work/index`.
//!
//! Whether what is mounted there matches is decided in [`crate::verify`].

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use rustix::io::Errno;

use rustix::fs::ResolveFlags;

use crate::dirs::{
    DirError, OpenRuntimeDirs, ensure_runtime_dirs, open_dir, open_instance_dir, open_mount_target,
};
use crate::fuse::{FuseTaintError, check_upper_not_fuse_tainted};
use crate::mountinfo::MountInfoError;
use crate::plan::{InstanceRuntime, MountPlan, Owner};
use crate::resolve::{LayerError, ResolvedPlan, resolve_plan};
use crate::stage::{StageError, StagedFile, stage_files};
use crate::sys::{ClassicMount, MountMethod, MountSys, fd_path, proc_fd_path};
use crate::tagged::unmount_tagged;
use crate::verify::{MountState, STAMP_FILE, inspect, mismatch, why_replace, write_stamp};

/// At most this many mounts stacked on `merged` are unmounted before giving up.
pub const MAX_STACKED_MOUNTS: usize = 16;

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
    /// Mount points of the instance's overlays found by their tag away from `merged` (someone
    /// renamed a directory on the way), unmounted too.
    pub moved: Vec<PathBuf>,
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
    #[error(transparent)]
    Remove(#[from] left4me_statedir::RemoveError),
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
    #[error(
        "unmount {} (mount id {id}, tagged for this instance): cannot reach it: {why}; inspect it \
         with `findmnt {}`", target.display(), target.display()
    )]
    Unreachable {
        target: PathBuf,
        id: u64,
        why: String,
    },
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

fn unmount_all<S: MountSys>(
    sys: &S,
    instance: BorrowedFd<'_>,
    runtime: &InstanceRuntime,
) -> Result<usize, MountError> {
    let merged = &runtime.dirs.merged;
    for count in 0..MAX_STACKED_MOUNTS {
        if inspect(sys, instance, runtime)? == MountState::NotMounted {
            match rustix::fs::unlinkat(instance, STAMP_FILE, rustix::fs::AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => {
                    return Err(MountError::Cleanup {
                        path: runtime.dirs.dir.join(STAMP_FILE),
                        source: e.into(),
                    });
                }
            }
            return Ok(count);
        }
        sys.unmount(instance, "merged").map_err(|e| match e {
            Errno::BUSY => MountError::Busy {
                target: merged.clone(),
                name: runtime.name.clone(),
            },
            e => MountError::Unmount {
                target: merged.clone(),
                source: e.into(),
            },
        })?;
    }
    Err(MountError::StillMounted {
        target: merged.clone(),
        count: MAX_STACKED_MOUNTS,
    })
}

fn mount_with<S: MountSys>(
    sys: &S,
    method: MountMethod,
    resolved: &ResolvedPlan<'_>,
    dirs: &OpenRuntimeDirs,
) -> Result<(), MountError> {
    let plan = resolved.plan();
    let layers = resolved.layers();
    let paths = plan.dirs();
    let failed = |step: String, e: Errno, kernel_log: Vec<String>| MountError::Mount {
        target: paths.merged.clone(),
        step,
        source: e.into(),
        kernel_log,
        advice: mount_advice(e),
    };
    let target = open_mount_target(dirs.instance.as_fd(), &plan.runtime)?;
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
                target: paths.merged.clone(),
                layers: layers.len(),
                len: data.len() + 1,
                page,
            });
        }
        let mount = ClassicMount {
            source: &plan.source(),
            options: plan.options,
            data: &data,
        };
        return sys
            .mount_classic(&mount, target.as_fd())
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
        &|| format!("fsconfig upperdir {}", paths.upper.display()),
        set_dir("upperdir", dirs.upper.as_fd()),
    )?;
    step(
        &|| format!("fsconfig workdir {}", paths.work.display()),
        set_dir("workdir", dirs.work.as_fd()),
    )?;
    step(&|| "fsconfig create".into(), sys.fs_create(&fs))?;
    let mnt = sys
        .fs_mount(&fs, plan.options)
        .map_err(|e| failed("fsmount".into(), e, sys.fs_log(&fs)))?;
    sys.move_mount_onto(&mnt, target.as_fd())
        .map_err(|e| failed("move_mount".into(), e, Vec::new()))
}

/// The supervisor's privileged start, from the layers [`resolve_plan`] opened: create the
/// runtime dirs (upper/work/merged owned by `game`), refuse a fuse-overlayfs upper dir, stage
/// `files` into `upper` (owned by `game`) and mount — or keep a matching mount whose staged files
/// are current. Call [`crate::ns::join_pid1_mount_namespace`] before.
pub fn prepare<S: MountSys>(
    sys: &S,
    resolved: &ResolvedPlan<'_>,
    game: Owner,
    files: &[StagedFile],
) -> Result<MountReport, MountError> {
    let plan = resolved.plan();
    let runtime = &plan.runtime;
    let dirs = ensure_runtime_dirs(runtime, game)?;
    check_upper_not_fuse_tainted(dirs.upper.as_fd(), &runtime.dirs.upper, &runtime.name)?;
    let report = |outcome, method| MountReport {
        name: runtime.name.clone(),
        merged: runtime.dirs.merged.clone(),
        outcome,
        method,
        layers: resolved.layers().len(),
    };

    let mut outcome = MountOutcome::Mounted;
    if let MountState::Mounted(entry) = inspect(sys, dirs.instance.as_fd(), runtime)? {
        let Some(reason) = why_replace(&entry, resolved, &dirs, files, game)? else {
            return Ok(report(MountOutcome::AlreadyMounted, None));
        };
        unmount_all(sys, dirs.instance.as_fd(), runtime)?;
        outcome = MountOutcome::Replaced { reason };
    }

    stage_files(&dirs.upper, files, game)?;
    let method = mount_method(sys, resolved.layers()[0].fd.as_fd())?;
    mount_with(sys, method, resolved, &dirs)?;

    let verify = |reason: String| MountError::Verify {
        target: runtime.dirs.merged.clone(),
        reason,
    };
    let entry = match inspect(sys, dirs.instance.as_fd(), runtime)? {
        MountState::NotMounted => return Err(verify("nothing is mounted there".into())),
        MountState::Mounted(entry) => entry,
    };
    if let Some(reason) = mismatch(&entry, resolved, &dirs) {
        return Err(verify(reason));
    }
    write_stamp(entry.mount_id, resolved, &dirs)?;
    Ok(report(outcome, Some(method)))
}

/// Resolves the plan's layers and [`prepare`]s without files to stage: keeps a matching mount,
/// replaces a different one, mounts when nothing is there.
pub fn ensure_mounted<S: MountSys>(
    sys: &S,
    plan: &MountPlan,
    game: Owner,
) -> Result<MountReport, MountError> {
    prepare(sys, &resolve_plan(plan)?, game, &[])
}

/// The cleanup: unmounts whatever is mounted at `merged` (all stacked mounts; nothing when
/// nothing is), then removes overlayfs' root-owned `work/work` and `work/index`. Idempotent.
/// Needs no layers: the runtime paths are enough. Call
/// [`crate::ns::join_pid1_mount_namespace`] before.
pub fn unmount<S: MountSys>(
    sys: &S,
    runtime: &InstanceRuntime,
) -> Result<UnmountReport, MountError> {
    // The path first (it also unmounts anything untagged stacked on `merged`), then every mount
    // tagged for the instance wherever it is now: a renamed `runtime` cannot hide one.
    let instance = match open_instance_dir(runtime) {
        Ok(instance) => instance,
        Err(e) => {
            unmount_tagged(sys, &runtime.name)?;
            return Err(e.into());
        }
    };
    let mut mounts = match &instance {
        Some(instance) => unmount_all(sys, instance.as_fd(), runtime)?,
        None => 0,
    };
    let tagged = unmount_tagged(sys, &runtime.name)?;
    mounts += tagged.len();
    let moved: Vec<PathBuf> = tagged
        .into_iter()
        .filter(|point| point != &runtime.dirs.merged)
        .collect();
    let Some(instance) = instance else {
        return Ok(UnmountReport {
            outcome: outcome(mounts),
            removed: Vec::new(),
            moved,
        });
    };
    let work_path = &runtime.dirs.work;
    let mut removed = Vec::new();
    let work = open_dir(
        instance.as_fd(),
        "work".as_ref(),
        work_path,
        ResolveFlags::empty(),
    )?;
    if let Some(work) = work {
        let work = left4me_statedir::Dir::from_fd(work, work_path.clone());
        for name in ["work", "index"] {
            let path = work_path.join(name);
            if work.remove_tree(name)? {
                removed.push(path);
            }
        }
    }
    Ok(UnmountReport {
        outcome: outcome(mounts),
        removed,
        moved,
    })
}

fn outcome(mounts: usize) -> UnmountOutcome {
    match mounts {
        0 => UnmountOutcome::NotMounted,
        mounts => UnmountOutcome::Unmounted { mounts },
    }
}

#[cfg(test)]
mod tests;
