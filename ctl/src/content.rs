//! An overlay's content directory and the swap that replaces it after a build.
//!
//! A build never writes `overlays/NAME`. It fills a fresh `overlays/.NAME.build-ID` (seeded with
//! a copy of the current content, so a sync script sees what it synced last time), and only
//! when the build succeeds and its output passes [`check_output`] the two directories are
//! exchanged in one `renameat2(RENAME_EXCHANGE)`: there is never a moment without
//! `overlays/NAME`, and a failed build leaves it untouched.
//!
//! The previous content then moves to `overlays/.NAME.old-ID`. It may not be deleted while an
//! instance still has it mounted: overlayfs holds its lower layers by reference, so the mount
//! keeps working after the rename, but deleting files of a lower layer under a mounted overlay
//! is exactly the "change to an underlying file system" the kernel documents as undefined. So
//! [`retire`] deletes an old dir only when no overlay mount that was made before the swap lists
//! `overlays/NAME` as a lower layer; the others wait until their instances restart (the next
//! `overlay build` or `overlay rm` looks again). A mount's age is the birth time of its
//! `workdir/work`, which overlayfs recreates at every mount; without birth times (old file
//! systems) old dirs are kept.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use rustix::fs::{CWD, Mode, OFlags, RenameFlags, ResolveFlags};
use rustix::io::Errno;

use crate::passwd::Ids;

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "cannot copy {}: a {kind} is not overlay content; remove it from the overlay",
        path.display()
    )]
    Special { path: PathBuf, kind: &'static str },
    #[error("cannot read the mount table: {0}")]
    MountTable(String),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ContentError {
    let path = path.to_path_buf();
    move |source| ContentError::Io {
        action,
        path,
        source,
    }
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
            Err(e) => return Err(io_err("read", &self.overlays)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("read", &self.overlays))?;
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
        .map_err(io_err("read", Path::new("/dev/urandom")))?;
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
        .map_err(io_err(action, path))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(ContentError::Io {
        action,
        path: path.to_path_buf(),
        source: io::Error::other(format!("{} ({})", stderr.trim(), out.status)),
    })
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

fn kind_of(file_type: fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt as _;
    if file_type.is_fifo() {
        Some("FIFO")
    } else if file_type.is_socket() {
        Some("socket")
    } else if file_type.is_char_device() || file_type.is_block_device() {
        Some("device node")
    } else {
        None
    }
}

/// Copies the tree `from` into the existing, empty dir `to`, as `owner` (`cp -R`): files,
/// directories and symlinks (as links, never followed), permission bits without set-id bits,
/// modification times. What is not overlay content (special files) is refused afterwards by
/// [`check_output`].
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
    for entry in fs::read_dir(dir).map_err(io_err("read", dir))? {
        let entry = entry.map_err(io_err("read", dir))?;
        let meta = entry.metadata().map_err(io_err("stat", &entry.path()))?;
        if meta.is_dir() {
            count(&entry.path(), stats)?;
        } else if meta.is_file() {
            stats.files += 1;
            stats.bytes += meta.len();
        }
    }
    Ok(())
}

/// Why a build's output is refused, one line per problem (at most [`MAX_PROBLEMS`]).
pub const MAX_PROBLEMS: usize = 10;

/// Checks a finished build's output before it may become a lower layer of instances: no
/// special files (a FIFO would hang the game), no set-id bits, everything owned by the game
/// user, and no symlink that leaves the overlay (absolute, or `..` past its top, checked both
/// by its text and by resolving it beneath the output dir). Returns the problems found.
pub fn check_output(root: &Path, owner: Ids) -> Result<Vec<String>, ContentError> {
    let root_fd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
        .map_err(|e| io_err("open", root)(e.into()))?;
    let mut problems = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .map_err(io_err("read", &dir))?
            .collect::<Result<_, _>>()
            .map_err(io_err("read", &dir))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let rel_path = rel.join(entry.file_name());
            let meta = fs::symlink_metadata(entry.path()).map_err(io_err("stat", &entry.path()))?;
            let shown = rel_path.display();
            let file_type = meta.file_type();
            if meta.uid() != owner.uid {
                problems.push(format!(
                    "{shown} is owned by uid {}, not the game user",
                    meta.uid()
                ));
            }
            if meta.mode() & 0o6000 != 0 && !file_type.is_symlink() {
                problems.push(format!("{shown} has a set-uid or set-gid bit"));
            }
            if let Some(kind) = kind_of(file_type) {
                problems.push(format!("{shown} is a {kind}"));
            } else if file_type.is_symlink() {
                let target = fs::read_link(entry.path()).map_err(io_err("read", &entry.path()))?;
                if let Some(why) = symlink_escape(&root_fd, &rel_path, &target) {
                    problems.push(format!(
                        "symlink {shown} -> {} {why}; an overlay may only link within itself",
                        target.display()
                    ));
                }
            } else if file_type.is_dir() {
                stack.push(rel_path);
            }
            if problems.len() >= MAX_PROBLEMS {
                return Ok(problems);
            }
        }
    }
    Ok(problems)
}

/// Why the symlink at `rel` (relative to the output root) with `target` leaves the output, if
/// it does.
fn symlink_escape(root: &impl rustix::fd::AsFd, rel: &Path, target: &Path) -> Option<&'static str> {
    if target.is_absolute() {
        return Some("is absolute");
    }
    let mut depth = rel.components().count() as i64 - 1;
    for component in target.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Some("climbs above the overlay");
        }
    }
    // Through other symlinks (`s -> .` then `l -> s/..`) only a real walk tells.
    match rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH,
    ) {
        Err(Errno::XDEV) => Some("resolves outside the overlay"),
        Err(Errno::LOOP) => Some("is part of a symlink loop"),
        _ => None,
    }
}

/// Puts `fresh` in place of `current`. When `current` exists the two are exchanged atomically
/// and the previous content is returned at `fresh`'s path; otherwise `fresh` is renamed.
pub fn swap_in(current: &Path, fresh: &Path) -> Result<bool, ContentError> {
    match rustix::fs::renameat_with(CWD, fresh, CWD, current, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT) if !current.exists() => {
            fs::rename(fresh, current).map_err(io_err("rename", fresh))?;
            Ok(false)
        }
        Err(e) => Err(io_err("exchange", current)(e.into())),
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
pub fn mounts_using(dir: &Path, runtime: &Path) -> Result<Vec<MountUse>, ContentError> {
    // The supervisor mounts in PID 1's namespace; ours may be another (nsenter, a unit).
    let text =
        fs::read("/proc/1/mountinfo").map_err(io_err("read", Path::new("/proc/1/mountinfo")))?;
    let entries = left4me_overlay::mountinfo::parse(&text)
        .map_err(|e| ContentError::MountTable(e.to_string()))?;
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
pub fn retire(dirs: &OverlayDirs, runtime: &Path) -> Result<Vec<Retired>, ContentError> {
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
            fs::remove_dir_all(&old).map_err(io_err("remove", &old))?;
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
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::fs::symlink;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn temp_dir(tag: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("left4mectl-content-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn me() -> Ids {
        Ids {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
        }
    }

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
        let dir = temp_dir("seed");
        let from = dir.0.join("from");
        fs::create_dir_all(from.join("left4dead2/addons")).unwrap();
        fs::write(from.join("left4dead2/addons/a.vpk"), "vpk").unwrap();
        fs::set_permissions(
            from.join("left4dead2/addons/a.vpk"),
            fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        symlink("addons/a.vpk", from.join("left4dead2/link")).unwrap();
        let to = dir.0.join("to");
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

    #[test]
    fn output_check_finds_escaping_links() {
        let dir = temp_dir("check");
        let root = dir.0.join("out");
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/file"), "x").unwrap();
        symlink("b/file", root.join("a/ok")).unwrap();
        symlink("../a/b/file", root.join("a/ok2")).unwrap();
        symlink("missing/x", root.join("a/dangling")).unwrap();
        assert!(check_output(&root, me()).unwrap().is_empty());

        symlink("/etc/shadow", root.join("a/abs")).unwrap();
        symlink("../../etc", root.join("a/up")).unwrap();
        symlink(".", root.join("self")).unwrap();
        symlink("self/..", root.join("sneaky")).unwrap();
        let problems = check_output(&root, me()).unwrap();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0].starts_with("symlink sneaky -> self/.. resolves outside"),
            "{problems:#?}"
        );
        assert!(problems[1].starts_with("symlink a/abs -> /etc/shadow is absolute"));
        assert!(problems[2].starts_with("symlink a/up -> ../../etc climbs above"));
    }

    #[test]
    fn swap_exchanges_or_renames() {
        let dir = temp_dir("swap");
        let current = dir.0.join("maps");
        let fresh = dir.0.join(".maps.build-1");
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
        let dir = temp_dir("retire");
        let dirs = OverlayDirs::new(&dir.0, "maps");
        fs::create_dir_all(dirs.old("1").join("x")).unwrap();
        fs::create_dir_all(dirs.build("2")).unwrap();
        let (builds, olds) = dirs.leftovers().unwrap();
        assert_eq!(builds, [dirs.build("2")]);
        assert_eq!(olds, [dirs.old("1")]);
        let done = retire(&dirs, &dir.0.join("runtime")).unwrap();
        assert_eq!(done, [Retired::Removed(dirs.old("1"))]);
        assert!(!dirs.old("1").exists());
    }
}
