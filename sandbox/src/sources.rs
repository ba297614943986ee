//! The directories behind the sandbox's `/overlay` and home, opened once by the parent and
//! checked to belong to the owner (so mistakes surface before anything runs, and the child
//! clones exactly what was checked).

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use left4me_contract::game::{TREE, WORK};
use left4me_contract::passwd::Ids;
use left4me_contract::sandbox::ROOT_OWNER;

use crate::runner::{Invocation, RunError};

/// Opens `path` (an `O_PATH` directory: the output directory, a lower layer, the home; `what`
/// says which) and checks that `owner` owns it (else the sandbox user, which sees the owner's
/// files as its own through the idmap, could not use it). With `beneath` (a directory opened
/// before and the name of `path` in it), it is opened relative to that directory without
/// following a symlink or leaving it.
pub fn open_owned(
    what: &'static str,
    path: &Path,
    beneath: Option<(&OwnedFd, &str)>,
    owner: Ids,
) -> Result<OwnedFd, RunError> {
    let problem = |problem: String| RunError::Output {
        what,
        path: path.to_owned(),
        problem,
    };
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = match beneath {
        None => rustix::fs::open(path, flags, Mode::empty()),
        Some((dir, name)) => open_child(dir, name, flags),
    }
    .map_err(|e| problem(format!("cannot open it as a directory: {e}")))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| problem(format!("cannot stat it: {e}")))?;
    if stat.st_uid != owner.uid {
        return Err(problem(format!(
            "owned by uid {}, not by the owner uid {}: `chown {}:{} {}` (the sandbox writes \
             there as the owner)",
            stat.st_uid,
            owner.uid,
            owner.uid,
            owner.gid,
            path.display()
        )));
    }
    Ok(fd)
}

/// Opens the entry `name` of `dir` (one plain component: no `/`, not `.` or `..`) without
/// following a symlink and without crossing into another file system: what
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)` does for one component.
/// Not `openat2` itself: systemd's `RestrictSUIDSGID=`, which the job units set, answers it
/// with `ENOSYS` (it cannot inspect the flags behind its pointer).
pub fn open_child(dir: &OwnedFd, name: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Errno::INVAL);
    }
    let fd = rustix::fs::openat(dir, name, flags | OFlags::NOFOLLOW, Mode::empty())?;
    if rustix::fs::fstat(&fd)?.st_dev != rustix::fs::fstat(dir)?.st_dev {
        return Err(Errno::XDEV);
    }
    Ok(fd)
}

/// The directories behind the sandbox's `/overlay` and home, open.
#[derive(Debug)]
pub enum OpenSources {
    /// The output directory (or its `tree/`), idmapped at `/overlay`.
    Dir(OwnedFd),
    /// The lowers and the output directory holding `tree/` and `work/`.
    Layers {
        /// The lowers, topmost first.
        lowers: Vec<OwnedFd>,
        /// The output directory holding `tree/` and `work/`.
        staging: OwnedFd,
    },
}

/// Opens and checks what `/overlay` is made of: with lowers, the output directory and its
/// `tree/` and `work/` and every lower; with the owner `root` and no lowers (a first install),
/// the output's `tree/`; otherwise the output directory itself.
pub fn open_sources(invocation: &Invocation, owner: Ids) -> Result<OpenSources, RunError> {
    let output = open_owned("output directory", &invocation.output, None, owner)?;
    if !invocation.lowers.is_empty() {
        for name in [TREE, WORK] {
            let path = invocation.output.join(name);
            open_owned("output directory", &path, Some((&output, name)), owner)?;
        }
        let lowers = invocation
            .lowers
            .iter()
            .map(|lower| open_owned("lower layer", lower, None, owner))
            .collect::<Result<_, _>>()?;
        Ok(OpenSources::Layers {
            lowers,
            staging: output,
        })
    } else if invocation.owner_user == ROOT_OWNER {
        let path = invocation.output.join(TREE);
        let tree = open_owned("output directory", &path, Some((&output, TREE)), owner)?;
        Ok(OpenSources::Dir(tree))
    } else {
        Ok(OpenSources::Dir(output))
    }
}
