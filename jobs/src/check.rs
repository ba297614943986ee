//! The output check: what a finished job wrote must be fit to become a lower layer of
//! instances before it is published.

use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

use left4me_contract::Ids;
use left4me_statedir::{Dir, DirError};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Why the output could not be checked (not: why it was refused; those are the problems).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Dir(#[from] DirError),
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> CheckError + 'a {
    move |errno| {
        CheckError::Dir(DirError::Io {
            action,
            path: path.to_path_buf(),
            source: errno.into(),
        })
    }
}

fn kind_of(file_type: FileType) -> Option<&'static str> {
    match file_type {
        FileType::Fifo => Some("FIFO"),
        FileType::Socket => Some("socket"),
        FileType::CharacterDevice | FileType::BlockDevice => Some("device node"),
        _ => None,
    }
}

/// Why a build's output is refused, one line per problem (at most [`MAX_PROBLEMS`]).
pub const MAX_PROBLEMS: usize = 10;

/// Checks a finished build's output before it may become a lower layer of instances: no
/// special files (a FIFO would hang the game), no set-id bits, everything owned by the game
/// user, and no symlink that leaves the overlay (absolute, or `..` past its top, checked both
/// by its text and by resolving it beneath the output dir). Returns the problems found.
///
/// The walk goes through descriptors (`root` and directories opened beneath it without
/// following a link): the game user owns the tree and may swap things in it meanwhile, which
/// can hide a file from the check but never make root read outside the tree.
pub fn check_output(root: &Dir, owner: Ids) -> Result<Vec<String>, CheckError> {
    let mut problems = Vec::new();
    let mut stack: Vec<(Option<Dir>, PathBuf)> = vec![(None, PathBuf::new())];
    while let Some((dir, rel)) = stack.pop() {
        let dir = dir.as_ref().unwrap_or(root);
        let mut names = dir.entries()?;
        names.sort();
        for name in names {
            let rel_path = rel.join(&name);
            let path = dir.path().join(&name);
            let stat = match rustix::fs::statat(dir.fd(), &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => stat,
                Err(Errno::NOENT) => continue,
                Err(errno) => return Err(io("stat", &path)(errno)),
            };
            let shown = rel_path.display();
            let file_type = FileType::from_raw_mode(stat.st_mode);
            if stat.st_uid != owner.uid {
                problems.push(format!(
                    "{shown} is owned by uid {}, not the game user",
                    stat.st_uid
                ));
            }
            if stat.st_mode & 0o6000 != 0 && file_type != FileType::Symlink {
                problems.push(format!("{shown} has a set-uid or set-gid bit"));
            }
            if let Some(kind) = kind_of(file_type) {
                problems.push(format!("{shown} is a {kind}"));
            } else if file_type == FileType::Symlink {
                let target = rustix::fs::readlinkat(dir.fd(), &name, Vec::new())
                    .map_err(io("read", &path))?;
                let target = Path::new(std::ffi::OsStr::from_bytes(target.as_bytes()));
                if let Some(why) = symlink_escape(&root.fd(), &rel_path, target) {
                    problems.push(format!(
                        "symlink {shown} -> {} {why}; an overlay may only link within itself",
                        target.display()
                    ));
                }
            } else if file_type == FileType::Directory {
                match dir.open_dir(&name) {
                    Ok(child) => stack.push((Some(child), rel_path)),
                    // Gone meanwhile: only the game user, who owns the content anyway, can
                    // do that.
                    Err(err) if err.is_not_found() => {}
                    Err(err) => return Err(err.into()),
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TempDir, current_ids as me};
    use std::fs;
    use std::os::unix::fs::symlink;

    /// Needs root: the output is opened beneath a root-owned dir, as the pipeline does.
    #[test]
    fn privileged_output_check_finds_escaping_links() {
        let dir = TempDir::new("check");
        let out = dir.path().join("out");
        let check = |owner| {
            let state = left4me_statedir::StateDir::open(dir.path()).unwrap();
            check_output(&state.open_dir("out").unwrap(), owner)
        };
        let root = out;
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/file"), "x").unwrap();
        symlink("b/file", root.join("a/ok")).unwrap();
        symlink("../a/b/file", root.join("a/ok2")).unwrap();
        symlink("missing/x", root.join("a/dangling")).unwrap();
        assert!(check(me()).unwrap().is_empty());

        symlink("/etc/shadow", root.join("a/abs")).unwrap();
        symlink("../../etc", root.join("a/up")).unwrap();
        symlink(".", root.join("self")).unwrap();
        symlink("self/..", root.join("sneaky")).unwrap();
        let problems = check(me()).unwrap();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0].starts_with("symlink sneaky -> self/.. resolves outside"),
            "{problems:#?}"
        );
        assert!(problems[1].starts_with("symlink a/abs -> /etc/shadow is absolute"));
        assert!(problems[2].starts_with("symlink a/up -> ../../etc climbs above"));
    }
}
