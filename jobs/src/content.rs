//! An overlay's content directories: `overlays/NAME` (what instances mount), the fresh
//! `overlays/.NAME.build-ID` a job fills, and `overlays/.NAME.old-ID`, content a publish
//! replaced ([`crate::publish`]).
//!
//! `overlays/` is root's (DESIGN.md §2): only the content and build dirs in it are the game
//! user's. Root acts in it only through a descriptor of it opened beneath the state dir
//! ([`OverlayDirs::open`]) and on entry names relative to that descriptor: it creates a build
//! dir and hands it to the game user, exchanges, renames and removes entries, and counts what
//! they hold, never by a path that passes through a directory the game user owns. Every verb
//! that touches an overlay's content holds its lock ([`OverlayDirs::lock`]).
//!
//! A job never writes `overlays/NAME`. Its output dir is seeded with a copy of the current
//! content, so a sync script sees what it synced last time; the copy runs with the game user's
//! rights (root never writes inside a game user's directory).

use std::ffi::OsStr;
use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use left4me_contract::Ids;
use left4me_statedir::{Dir, DirError, Lock, LockError, RemoveError, StateDir, Subject};

use crate::PathIo;

pub use left4me_statedir::Usage as CopyStats;

/// Why a content dir could not be made, filled or removed.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error(transparent)]
    Io(#[from] PathIo),
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error(transparent)]
    Remove(#[from] RemoveError),
    #[error(transparent)]
    Lock(#[from] LockError),
}

impl ContentError {
    /// Whether another left4me process holds the overlay (the operator's to wait for).
    pub fn is_busy(&self) -> bool {
        matches!(self, ContentError::Lock(LockError::Busy { .. }))
    }
}

/// The directories of one overlay in `<state_dir>/overlays`, by name: plain data, nothing is
/// opened until [`OverlayDirs::open`].
#[derive(Debug, Clone)]
pub struct OverlayDirs {
    pub state_dir: PathBuf,
    pub name: String,
}

impl OverlayDirs {
    pub fn new(state_dir: &Path, name: &str) -> Self {
        OverlayDirs {
            state_dir: state_dir.to_path_buf(),
            name: name.to_owned(),
        }
    }
    /// `<state_dir>/overlays`.
    pub fn overlays(&self) -> PathBuf {
        self.state_dir.join("overlays")
    }
    /// `overlays/NAME`: what instances mount.
    pub fn current(&self) -> PathBuf {
        self.overlays().join(&self.name)
    }
    /// `.NAME.build-ID`: the entry build ID writes.
    pub fn build_name(&self, id: &str) -> String {
        format!(".{}.build-{id}", self.name)
    }
    /// `.NAME.old-ID`: the entry of content replaced by build ID, until no mount uses it.
    pub fn old_name(&self, id: &str) -> String {
        format!(".{}.old-{id}", self.name)
    }
    /// `overlays/.NAME.build-ID`.
    pub fn build(&self, id: &str) -> PathBuf {
        self.overlays().join(self.build_name(id))
    }
    /// `overlays/.NAME.old-ID`.
    pub fn old(&self, id: &str) -> PathBuf {
        self.overlays().join(self.old_name(id))
    }

    /// Takes the overlay's lock in root's `locks_dir`, without waiting: every verb that
    /// touches the overlay's content (build, rm, create) holds it.
    pub fn lock(&self, locks_dir: &Path) -> Result<Lock, ContentError> {
        Ok(Lock::take(locks_dir, Subject::Overlay(&self.name), false)?)
    }

    /// Opens `overlays/` beneath the state dir and checks it is root's, creating it (root,
    /// 0755) when missing and `create` is set; `None` when it is missing otherwise. A
    /// game-user-owned `overlays/` (an install from before the ownership rule) is refused with
    /// the `systemd-tmpfiles` command that fixes it.
    pub fn open(&self, create: bool) -> Result<Option<Overlays>, ContentError> {
        let state = StateDir::open(&self.state_dir)?;
        let dir = match state.dir().open_dir_if_exists("overlays")? {
            Some(dir) => dir,
            None if create => match state.dir().create_dir("overlays", (0, 0), 0o755) {
                Ok(dir) => dir,
                // Made by another process meanwhile.
                Err(DirError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    state.open_dir("overlays")?
                }
                Err(err) => return Err(err.into()),
            },
            None => return Ok(None),
        };
        dir.check_root_owned()?;
        Ok(Some(Overlays {
            dir,
            names: self.clone(),
        }))
    }

    /// What `overlays/NAME` holds, counted through descriptors; `None` when it is missing.
    pub fn content_usage(&self) -> Result<Option<CopyStats>, ContentError> {
        let Some(overlays) = self.open(false)? else {
            return Ok(None);
        };
        match overlays.current()? {
            Some(current) => Ok(Some(current.usage()?)),
            None => Ok(None),
        }
    }
}

/// `overlays/`, opened: every action on one overlay's entries goes through it.
#[derive(Debug)]
pub struct Overlays {
    dir: Dir,
    names: OverlayDirs,
}

impl Overlays {
    /// The descriptor of `overlays/`.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }
    /// The overlay's names.
    pub fn names(&self) -> &OverlayDirs {
        &self.names
    }
    /// `overlays/ENTRY`, for messages.
    pub fn path(&self, entry: &str) -> PathBuf {
        self.dir.path().join(entry)
    }

    /// The hidden build and old entries of this overlay that exist now, sorted.
    pub fn leftovers(&self) -> Result<(Vec<String>, Vec<String>), ContentError> {
        let build_prefix = format!(".{}.build-", self.names.name);
        let old_prefix = format!(".{}.old-", self.names.name);
        let (mut builds, mut olds) = (Vec::new(), Vec::new());
        for entry in self.dir.entries()? {
            // Our own names are UTF-8; anything else is not ours.
            let Some(name) = entry.to_str() else { continue };
            if name.starts_with(&build_prefix) {
                builds.push(name.to_owned());
            } else if name.starts_with(&old_prefix) {
                olds.push(name.to_owned());
            }
        }
        builds.sort();
        olds.sort();
        Ok((builds, olds))
    }

    /// `overlays/NAME`, opened, when it exists.
    pub fn current(&self) -> Result<Option<Dir>, ContentError> {
        Ok(self.dir.open_dir_if_exists(&self.names.name)?)
    }

    /// Creates `overlays/NAME` (0755) for `owner` when it is missing; whether it did.
    pub fn create_content(&self, owner: Ids) -> Result<bool, ContentError> {
        if self.dir.contains(&self.names.name)? {
            return Ok(false);
        }
        self.dir
            .create_dir(&self.names.name, (owner.uid, owner.gid), 0o755)?;
        Ok(true)
    }

    /// Creates the build dir of run `id` (0755), handed to `owner`.
    pub fn create_build(&self, id: &str, owner: Ids) -> Result<Dir, ContentError> {
        Ok(self
            .dir
            .create_dir(&self.names.build_name(id), (owner.uid, owner.gid), 0o755)?)
    }

    /// Removes the entry `entry` of `overlays/` and everything in it, following no link and
    /// entering no mount; whether there was one.
    pub fn remove(&self, entry: &str) -> Result<bool, ContentError> {
        Ok(self.dir.remove_tree(entry)?)
    }
}

/// 8 hex digits from the kernel's random pool: a build's id.
pub fn new_build_id() -> Result<String, ContentError> {
    let mut bytes = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(PathIo::at("read", Path::new("/dev/urandom")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Copies the tree of the open dir `from` into the open, empty dir `to`, as `owner` (`cp -R`):
/// files, directories and symlinks (as links, never followed), permission bits without set-id
/// bits, modification times. The copy runs with the game user's rights and reaches both dirs
/// through its own inherited descriptors (`/proc/self/fd/N`), so no path through `overlays/`
/// is walked and whatever the game user planted in them can never redirect a write of root's.
/// What is not overlay content (special files) is refused afterwards by
/// [`crate::check::check_output`].
pub fn seed(from: &Dir, to: &Dir, owner: Ids) -> Result<CopyStats, ContentError> {
    use std::os::unix::process::CommandExt as _;
    // dup() clears close-on-exec: the copy inherits these two, and only these two.
    let from_fd =
        rustix::io::dup(from.fd()).map_err(|e| PathIo::at("dup", from.path())(e.into()))?;
    let to_fd = rustix::io::dup(to.fd()).map_err(|e| PathIo::at("dup", to.path())(e.into()))?;
    let source = format!("/proc/self/fd/{}/.", from_fd.as_raw_fd());
    let target = format!("/proc/self/fd/{}/", to_fd.as_raw_fd());
    let argv: [&OsStr; 6] = [
        "cp".as_ref(),
        "-R".as_ref(),
        "--preserve=timestamps".as_ref(),
        "--".as_ref(),
        source.as_ref(),
        target.as_ref(),
    ];
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .uid(owner.uid)
        .gid(owner.gid)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .map_err(PathIo::at("copy", from.path()))?;
    drop((from_fd, to_fd));
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(ContentError::Io(PathIo {
            action: "copy",
            path: from.path().to_path_buf(),
            source: std::io::Error::other(format!(
                "into {}: {} ({})",
                to.path().display(),
                stderr.trim(),
                out.status
            )),
        }));
    }
    Ok(to.usage()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let dirs = OverlayDirs::new(Path::new("/s"), "maps");
        assert_eq!(dirs.current(), Path::new("/s/overlays/maps"));
        assert_eq!(
            dirs.build("ab12"),
            Path::new("/s/overlays/.maps.build-ab12")
        );
        assert_eq!(dirs.old("ab12"), Path::new("/s/overlays/.maps.old-ab12"));
        let id = new_build_id().unwrap();
        assert_eq!(id.len(), 8);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
