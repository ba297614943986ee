//! An overlay's content directories: `overlays/NAME` (what instances mount), the fresh
//! `overlays/.NAME.build-ID` a job fills, and `overlays/.NAME.old-ID`, content a publish
//! replaced ([`crate::publish`]).
//!
//! A job never writes `overlays/NAME`. Its output dir is seeded with a copy of the current
//! content, so a sync script sees what it synced last time. File work inside `overlays/`, which
//! the game user owns, is done with the game user's rights.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use left4me_contract::Ids;

use crate::PathIo;

/// Why a content dir could not be made or filled.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error(transparent)]
    Io(#[from] PathIo),
}

/// The directories of one overlay in `<state_dir>/overlays`.
#[derive(Debug, Clone)]
pub struct OverlayDirs {
    pub overlays: PathBuf,
    pub name: String,
}

impl OverlayDirs {
    pub fn new(overlays: &Path, name: &str) -> Self {
        OverlayDirs {
            overlays: overlays.to_path_buf(),
            name: name.to_owned(),
        }
    }
    /// `overlays/NAME`: what instances mount.
    pub fn current(&self) -> PathBuf {
        self.overlays.join(&self.name)
    }
    /// `overlays/.NAME.build-ID`: where build ID writes.
    pub fn build(&self, id: &str) -> PathBuf {
        self.overlays.join(format!(".{}.build-{id}", self.name))
    }
    /// `overlays/.NAME.old-ID`: content replaced by build ID, until no mount uses it.
    pub fn old(&self, id: &str) -> PathBuf {
        self.overlays.join(format!(".{}.old-{id}", self.name))
    }
    /// The hidden build and old dirs of this overlay that exist now.
    pub fn leftovers(&self) -> Result<(Vec<PathBuf>, Vec<PathBuf>), ContentError> {
        let build_prefix = format!(".{}.build-", self.name);
        let old_prefix = format!(".{}.old-", self.name);
        let (mut builds, mut olds) = (Vec::new(), Vec::new());
        let entries = match fs::read_dir(&self.overlays) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((builds, olds)),
            Err(e) => return Err(PathIo::at("read", &self.overlays)(e).into()),
        };
        for entry in entries {
            let entry = entry.map_err(PathIo::at("read", &self.overlays))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&build_prefix) {
                builds.push(entry.path());
            } else if name.starts_with(&old_prefix) {
                olds.push(entry.path());
            }
        }
        builds.sort();
        olds.sort();
        Ok((builds, olds))
    }
}

/// 8 hex digits from the kernel's random pool: a build's id.
pub fn new_build_id() -> Result<String, ContentError> {
    let mut bytes = [0u8; 4];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(PathIo::at("read", Path::new("/dev/urandom")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs `argv` as `owner` (its uid and gid, no supplementary groups). File work inside
/// `overlays/`, which the game user owns, is done with the game user's rights: a symlink it
/// planted there can then never redirect a write, chmod or chown made by root.
fn run_as(
    owner: Ids,
    path: &Path,
    action: &'static str,
    argv: &[&OsStr],
) -> Result<(), ContentError> {
    use std::os::unix::process::CommandExt as _;
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .uid(owner.uid)
        .gid(owner.gid)
        .stdin(Stdio::null())
        .output()
        .map_err(PathIo::at(action, path))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(ContentError::Io(PathIo {
        action,
        path: path.to_path_buf(),
        source: io::Error::other(format!("{} ({})", stderr.trim(), out.status)),
    }))
}

/// Creates directory `path` (mode 0755) as `owner`; the parent must exist.
pub fn create_owned_dir(path: &Path, owner: Ids) -> Result<(), ContentError> {
    let argv: [&OsStr; 5] = [
        "mkdir".as_ref(),
        "-m".as_ref(),
        "0755".as_ref(),
        "--".as_ref(),
        path.as_os_str(),
    ];
    run_as(owner, path, "create", &argv)
}

/// What [`seed`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub files: u64,
    pub bytes: u64,
}

/// Copies the tree `from` into the existing, empty dir `to`, as `owner` (`cp -R`): files,
/// directories and symlinks (as links, never followed), permission bits without set-id bits,
/// modification times. What is not overlay content (special files) is refused afterwards by
/// [`crate::check::check_output`].
pub fn seed(from: &Path, to: &Path, owner: Ids) -> Result<CopyStats, ContentError> {
    let (mut source, mut target) = (from.as_os_str().to_owned(), to.as_os_str().to_owned());
    source.push("/.");
    target.push("/");
    let argv: [&OsStr; 6] = [
        "cp".as_ref(),
        "-R".as_ref(),
        "--preserve=timestamps".as_ref(),
        "--".as_ref(),
        &source,
        &target,
    ];
    run_as(owner, from, "copy", &argv)?;
    let mut stats = CopyStats::default();
    count(to, &mut stats)?;
    Ok(stats)
}

/// Counts the regular files and their bytes under `dir`, following no symlink.
fn count(dir: &Path, stats: &mut CopyStats) -> Result<(), ContentError> {
    for entry in fs::read_dir(dir).map_err(PathIo::at("read", dir))? {
        let entry = entry.map_err(PathIo::at("read", dir))?;
        let meta = entry
            .metadata()
            .map_err(PathIo::at("stat", &entry.path()))?;
        if meta.is_dir() {
            count(&entry.path(), stats)?;
        } else if meta.is_file() {
            stats.files += 1;
            stats.bytes += meta.len();
        }
    }
    Ok(())
}

/// Size in bytes of the regular files beneath `dir` (symlinks not followed).
pub fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => tree_size(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TempDir, current_ids as me};
    use std::os::unix::fs::MetadataExt as _;
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::fs::symlink;

    #[test]
    fn names() {
        let dirs = OverlayDirs::new(Path::new("/s/overlays"), "maps");
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

    #[test]
    fn seed_copies_files_dirs_and_links() {
        let dir = TempDir::new("seed");
        let from = dir.path().join("from");
        fs::create_dir_all(from.join("left4dead2/addons")).unwrap();
        fs::write(from.join("left4dead2/addons/a.vpk"), "vpk").unwrap();
        fs::set_permissions(
            from.join("left4dead2/addons/a.vpk"),
            fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        symlink("addons/a.vpk", from.join("left4dead2/link")).unwrap();
        let to = dir.path().join("to");
        fs::create_dir(&to).unwrap();
        let stats = seed(&from, &to, me()).unwrap();
        assert_eq!(stats, CopyStats { files: 1, bytes: 3 });
        assert_eq!(
            fs::read_to_string(to.join("left4dead2/link")).unwrap(),
            "vpk"
        );
        assert_eq!(
            fs::read_link(to.join("left4dead2/link")).unwrap(),
            Path::new("addons/a.vpk")
        );
        let mode = fs::metadata(to.join("left4dead2/addons/a.vpk"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o7777, 0o640);
        assert_eq!(tree_size(&to), 3);
    }
}
