//! Squashing a chain: copying the merged view of a stack of overlayfs layers into one full tree,
//! without mounting anything, the way overlayfs itself merges them:
//!
//! - layers are read newest first; the first layer holding a name decides what it is;
//! - a whiteout (a character device 0:0) hides the name in every older layer;
//! - a directory merges with the directories of that name in older layers, down to the first
//!   layer where the name is not a directory, or including the first *opaque* one
//!   (`trusted.overlay.opaque` = `y`), which hides everything older;
//! - regular files, symbolic links and directories are copied with owner, mode and times;
//!   anything else (devices, FIFOs, sockets) is not part of a game and is left out; hard links
//!   become separate copies.
//!
//! Everything is reached through descriptors opened with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` and `O_NOFOLLOW`: a symbolic link in a layer is copied as a link,
//! never followed, and a directory swapped for a link while the copy runs is skipped, so the
//! copy never reads or writes outside the layers and the destination.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use left4me_statedir::{Dir, RESOLVE_STRICT, openat2_retry};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps};
use rustix::io::Errno;

use super::StoreError;

/// The name of the full tree being built beside a staging dir's `tree`.
pub(crate) const SQUASHED: &str = "squashed";

/// How deep a game tree may nest: deeper is not a game (and would hold a descriptor per level
/// and layer).
const MAX_DEPTH: usize = 128;

/// The xattr overlayfs marks an opaque directory with (the mounts are made by root, without
/// `userxattr`).
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// One directory of one layer, opened.
struct Source {
    fd: OwnedFd,
    path: PathBuf,
}

/// Makes `parent/name` (which must not exist) a full tree equal to the merged view of
/// `layers` (newest first).
pub(crate) fn squash_into(parent: &Dir, layers: &[Dir], name: &str) -> Result<(), StoreError> {
    let dest_path = parent.path().join(name);
    let mut sources = Vec::new();
    for layer in layers {
        let source = open_dir(layer.fd(), OsStr::new("."), layer.path())?.ok_or_else(|| {
            StoreError::Squash {
                path: dest_path.clone(),
                reason: format!("{} is not a directory", layer.path().display()),
            }
        })?;
        let opaque = is_opaque(&source)?;
        sources.push(source);
        if opaque {
            break;
        }
    }
    let top = rustix::fs::fstat(&sources[0].fd).map_err(io("stat", &sources[0].path))?;
    rustix::fs::mkdirat(parent.fd(), name, Mode::from_raw_mode(0o700))
        .map_err(io("create", &dest_path))?;
    let dest =
        open_dir(parent.fd(), OsStr::new(name), &dest_path)?.ok_or_else(|| StoreError::Squash {
            path: dest_path.clone(),
            reason: "vanished while it was made".into(),
        })?;
    merge_dir(&sources, &dest, 0)?;
    set_meta(dest.fd.as_fd(), &top, &dest.path)
}

/// Copies the merged entries of `sources` (one directory, newest layer first, already cut at
/// the first opaque one) into `dest`.
fn merge_dir(sources: &[Source], dest: &Source, depth: usize) -> Result<(), StoreError> {
    if depth > MAX_DEPTH {
        return Err(StoreError::Squash {
            path: dest.path.clone(),
            reason: format!("nests deeper than {MAX_DEPTH} directories: not a game tree"),
        });
    }
    let mut seen = BTreeSet::new();
    for (i, source) in sources.iter().enumerate() {
        for name in list(source)? {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(stat) = stat_at(source, &name)? else {
                continue;
            };
            let target = dest.path.join(&name);
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::CharacterDevice if stat.st_rdev == 0 => {} // a whiteout
                FileType::Directory => {
                    let Some(children) = directory_stack(&sources[i..], &name)? else {
                        continue;
                    };
                    rustix::fs::mkdirat(
                        dest.fd.as_fd(),
                        name.as_os_str(),
                        Mode::from_raw_mode(0o700),
                    )
                    .map_err(io("create", &target))?;
                    let Some(child) = open_dir(dest.fd.as_fd(), &name, &target)? else {
                        return Err(StoreError::Squash {
                            path: target,
                            reason: "vanished while it was made".into(),
                        });
                    };
                    merge_dir(&children, &child, depth + 1)?;
                    set_meta(child.fd.as_fd(), &stat, &target)?;
                }
                FileType::RegularFile => copy_file(source, &name, &stat, dest, &target)?,
                FileType::Symlink => copy_link(source, &name, &stat, dest, &target)?,
                _ => {}
            }
        }
    }
    Ok(())
}

/// The directories `name` of `sources` (newest first) that merge: from the first, down to the
/// first layer where `name` is no directory (excluded) or an opaque one (included). `None`
/// when the first is no directory any more (replaced meanwhile).
fn directory_stack(sources: &[Source], name: &OsStr) -> Result<Option<Vec<Source>>, StoreError> {
    let mut stack = Vec::new();
    for source in sources {
        let Some(stat) = stat_at(source, name)? else {
            continue; // not in this layer: an older one may have it
        };
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            break;
        }
        let Some(dir) = open_dir(source.fd.as_fd(), name, &source.path.join(name))? else {
            break;
        };
        let opaque = is_opaque(&dir)?;
        stack.push(dir);
        if opaque {
            break;
        }
    }
    Ok((!stack.is_empty()).then_some(stack))
}

fn copy_file(
    source: &Source,
    name: &OsStr,
    stat: &Stat,
    dest: &Source,
    target: &Path,
) -> Result<(), StoreError> {
    let from_path = source.path.join(name);
    let from = match openat2_retry(
        source.fd.as_fd(),
        Path::new(name),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK,
        Mode::empty(),
        RESOLVE_STRICT,
    ) {
        Ok(fd) => fd,
        // Replaced by a link or removed meanwhile: not part of the tree any more.
        Err(Errno::NOENT | Errno::LOOP | Errno::XDEV) => return Ok(()),
        Err(errno) => return Err(io("open", &from_path)(errno)),
    };
    let now = rustix::fs::fstat(&from).map_err(io("stat", &from_path))?;
    if FileType::from_raw_mode(now.st_mode) != FileType::RegularFile || now.st_ino != stat.st_ino {
        return Ok(()); // swapped meanwhile: what was there is gone
    }
    let to = openat2_retry(
        dest.fd.as_fd(),
        Path::new(name),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o600),
        RESOLVE_STRICT,
    )
    .map_err(io("create", target))?;
    let mut from = std::fs::File::from(from);
    let mut to = std::fs::File::from(to);
    std::io::copy(&mut from, &mut to).map_err(|source| StoreError::Io {
        action: "copy into",
        path: target.to_owned(),
        source,
    })?;
    set_meta(to.as_fd(), &now, target)
}

fn copy_link(
    source: &Source,
    name: &OsStr,
    stat: &Stat,
    dest: &Source,
    target: &Path,
) -> Result<(), StoreError> {
    let link = match rustix::fs::readlinkat(source.fd.as_fd(), name, Vec::new()) {
        Ok(link) => link,
        Err(Errno::NOENT | Errno::INVAL) => return Ok(()), // replaced meanwhile
        Err(errno) => return Err(io("read the link", &source.path.join(name))(errno)),
    };
    rustix::fs::symlinkat(link.as_c_str(), dest.fd.as_fd(), name).map_err(io("create", target))?;
    if rustix::process::geteuid().is_root() {
        rustix::fs::chownat(
            dest.fd.as_fd(),
            name,
            Some(rustix::fs::Uid::from_raw(stat.st_uid)),
            Some(rustix::fs::Gid::from_raw(stat.st_gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io("chown", target))?;
    }
    rustix::fs::utimensat(
        dest.fd.as_fd(),
        name,
        &times(stat),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io("set the times of", target))
}

/// Owner (as root), mode and times of `stat` onto `fd`.
fn set_meta(fd: BorrowedFd<'_>, stat: &Stat, path: &Path) -> Result<(), StoreError> {
    if rustix::process::geteuid().is_root() {
        rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(stat.st_uid)),
            Some(rustix::fs::Gid::from_raw(stat.st_gid)),
        )
        .map_err(io("chown", path))?;
    }
    // After the chown, which clears set-id bits.
    rustix::fs::fchmod(fd, Mode::from_raw_mode(stat.st_mode & 0o7777))
        .map_err(io("chmod", path))?;
    rustix::fs::futimens(fd, &times(stat)).map_err(io("set the times of", path))
}

fn times(stat: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: stat.st_atime,
            tv_nsec: stat.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: stat.st_mtime,
            tv_nsec: stat.st_mtime_nsec as _,
        },
    }
}

/// Opens the directory `name` beneath `parent` for reading; `None` when it is no directory (any
/// more) or a link.
fn open_dir(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
) -> Result<Option<Source>, StoreError> {
    match openat2_retry(
        parent,
        Path::new(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
        Mode::empty(),
        RESOLVE_STRICT,
    ) {
        Ok(fd) => Ok(Some(Source {
            fd,
            path: path.to_owned(),
        })),
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => Ok(None),
        Err(errno) => Err(io("open", path)(errno)),
    }
}

/// Whether overlayfs treats the directory as opaque.
fn is_opaque(dir: &Source) -> Result<bool, StoreError> {
    let mut value = [0u8; 8];
    match rustix::fs::fgetxattr(&dir.fd, OPAQUE_XATTR, &mut value[..]) {
        Ok(len) => Ok(&value[..len] == b"y"),
        Err(Errno::NODATA | Errno::OPNOTSUPP | Errno::RANGE) => Ok(false),
        Err(errno) => Err(io("read the xattrs of", &dir.path)(errno)),
    }
}

/// The stat of `name` in `source` without following it; `None` when it vanished.
fn stat_at(source: &Source, name: &OsStr) -> Result<Option<Stat>, StoreError> {
    match rustix::fs::statat(source.fd.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::NOENT) => Ok(None),
        Err(errno) => Err(io("stat", &source.path.join(name))(errno)),
    }
}

/// The entry names of `source` (without `.` and `..`), sorted.
fn list(source: &Source) -> Result<Vec<OsString>, StoreError> {
    let listing = openat2_retry(
        source.fd.as_fd(),
        Path::new("."),
        OFlags::RDONLY | OFlags::DIRECTORY,
        Mode::empty(),
        RESOLVE_STRICT,
    )
    .map_err(io("open", &source.path))?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&listing).map_err(io("list", &source.path))? {
        let entry = entry.map_err(io("list", &source.path))?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name != "." && name != ".." {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> StoreError + 'a {
    move |errno| StoreError::Io {
        action,
        path: path.to_owned(),
        source: errno.into(),
    }
}
