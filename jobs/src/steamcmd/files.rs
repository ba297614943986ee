//! Root's hands in the game's dirs during a SteamCMD job, through descriptors beneath the
//! state dir (`left4me-statedir`): SteamCMD writes as root on disk (`--owner root`), so what
//! it leaves in its home and in the new layer is untrusted content in root-owned dirs; root
//! never follows a link in them nor acts on them by path.

use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use left4me_game::steamcmd::manifest;
use left4me_statedir::{Dir, DirError, RESOLVE_STRICT, StateDir, openat2_retry};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{GameJob, GameJobError};
use crate::PathIo;
use crate::content::ContentError;

/// The most of an appmanifest root reads (real ones are a few KiB).
const MAX_MANIFEST: u64 = 1 << 20;

/// `path` relative to `state_dir`, or why not.
pub(super) fn beneath<'a>(state_dir: &Path, path: &'a Path) -> Result<&'a Path, GameJobError> {
    path.strip_prefix(state_dir)
        .ok()
        .filter(|rel| !rel.as_os_str().is_empty())
        .ok_or_else(|| GameJobError::NotBeneath {
            path: path.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
        })
}

fn io(action: &'static str, path: PathBuf) -> impl FnOnce(Errno) -> GameJobError {
    move |errno| {
        GameJobError::Io(PathIo {
            action,
            path,
            source: errno.into(),
        })
    }
}

/// The dirs of one job, opened.
#[derive(Debug)]
pub(super) struct GameDirs {
    /// `output/tree`: the new layer (the overlay's upper).
    pub tree: Dir,
    /// SteamCMD's home.
    pub home: Dir,
    /// The layers below, topmost first.
    lowers: Vec<Dir>,
}

/// What one layer says about a file.
enum Found {
    Text(String),
    /// A whiteout (character device 0/0): deleted in this layer.
    Whiteout,
    Missing,
}

impl GameDirs {
    /// Opens the job's dirs beneath its state dir; SteamCMD's home must hold `steamcmd.sh`.
    pub fn open(job: &GameJob) -> Result<Self, GameJobError> {
        let state = StateDir::open(&job.state_dir)?;
        let output = state.open_dir(beneath(&job.state_dir, &job.output)?)?;
        let tree = output.open_dir("tree")?;
        let home = state.open_dir(beneath(&job.state_dir, &job.home)?)?;
        if !home.contains("steamcmd.sh")? {
            return Err(GameJobError::NoSteamcmd {
                home: job.home.clone(),
            });
        }
        let lowers = job
            .lowers
            .iter()
            .map(|lower| Ok(state.open_dir(beneath(&job.state_dir, lower)?)?))
            .collect::<Result<Vec<_>, GameJobError>>()?;
        Ok(GameDirs { tree, home, lowers })
    }

    /// Creates `tree/steamapps` (root, 0755) unless the merged view has it already.
    pub fn create_steamapps(&self) -> Result<(), GameJobError> {
        if self.tree.contains(manifest::STEAMAPPS)? {
            return Ok(());
        }
        for lower in &self.lowers {
            if lower.open_dir_if_exists(manifest::STEAMAPPS)?.is_some() {
                return Ok(());
            }
        }
        self.tree.create_dir(manifest::STEAMAPPS, (0, 0), 0o755)?;
        Ok(())
    }

    /// Removes SteamCMD's cached `appcache/appinfo.vdf` (a stale one makes `app_info_print`
    /// answer from the cache); whether there was one.
    pub fn forget_appinfo(&self) -> Result<bool, GameJobError> {
        let Some(cache) = self.home.open_dir_if_exists("appcache")? else {
            return Ok(false);
        };
        cache
            .remove_tree("appinfo.vdf")
            .map_err(|e| GameJobError::Content(ContentError::Remove(e)))
    }

    /// Writes `text` to a new file `name` of the home (root, 0600: inside the sandbox only
    /// SteamCMD's user reads it); removed when the guard drops.
    pub fn write_private(&self, name: &str, text: &str) -> Result<PrivateFile<'_>, GameJobError> {
        let path = self.home.path().join(name);
        let _ = rustix::fs::unlinkat(self.home.fd(), name, AtFlags::empty());
        let fd: OwnedFd = rustix::fs::openat(
            self.home.fd(),
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(io("create", path.clone()))?;
        let guard = PrivateFile {
            dir: &self.home,
            name: name.to_owned(),
        };
        std::fs::File::from(fd)
            .write_all(text.as_bytes())
            .map_err(PathIo::at("write", &path))?;
        Ok(guard)
    }

    /// The appmanifest's text as the merged view has it: the new layer first, then each lower
    /// (a whiteout hides the ones below); `None` when there is none.
    pub fn read_manifest(&self) -> Result<Option<String>, GameJobError> {
        for layer in std::iter::once(&self.tree).chain(&self.lowers) {
            match read_in(layer)? {
                Found::Text(text) => return Ok(Some(text)),
                Found::Whiteout => return Ok(None),
                Found::Missing => {}
            }
        }
        Ok(None)
    }

    /// Bytes in regular files of the new layer.
    pub fn tree_bytes(&self) -> u64 {
        self.tree.usage().map_or(0, |usage| usage.bytes)
    }
}

/// `steamapps/appmanifest_222860.acf` in one layer.
fn read_in(layer: &Dir) -> Result<Found, GameJobError> {
    let steamapps = match layer.open_dir_if_exists(manifest::STEAMAPPS) {
        Ok(Some(dir)) => dir,
        Ok(None) => return Ok(Found::Missing),
        // Not a directory (a whiteout, or something planted): nothing to read here.
        Err(DirError::Io { source, .. }) if source.raw_os_error() == Some(libc_enotdir()) => {
            return Ok(Found::Whiteout);
        }
        Err(err) => return Err(err.into()),
    };
    let name = manifest::file_name();
    let path = steamapps.path().join(&name);
    let stat = match rustix::fs::statat(steamapps.fd(), &name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::NOENT) => return Ok(Found::Missing),
        Err(errno) => return Err(io("stat", path)(errno)),
    };
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => {}
        FileType::CharacterDevice if stat.st_rdev == 0 => return Ok(Found::Whiteout),
        _ => return Ok(Found::Missing),
    }
    let fd = openat2_retry(
        steamapps.fd(),
        Path::new(&name),
        OFlags::RDONLY | OFlags::NOFOLLOW,
        Mode::empty(),
        RESOLVE_STRICT,
    )
    .map_err(io("open", path.clone()))?;
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(MAX_MANIFEST)
        .read_to_string(&mut text)
        .map_err(PathIo::at("read", &path))?;
    Ok(Found::Text(text))
}

fn libc_enotdir() -> i32 {
    Errno::NOTDIR.raw_os_error()
}

/// A file of root's in SteamCMD's home, removed when dropped.
#[derive(Debug)]
pub(super) struct PrivateFile<'a> {
    dir: &'a Dir,
    name: String,
}

impl Drop for PrivateFile<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::unlinkat(self.dir.fd(), self.name.as_str(), AtFlags::empty());
    }
}
