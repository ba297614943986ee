//! The output check: what a finished job wrote must be fit to become a lower layer of
//! instances before it is published.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};

use left4me_contract::Ids;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::PathIo;

/// Why the output could not be checked (not: why it was refused; those are the problems).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Io(#[from] PathIo),
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

/// Why a build's output is refused, one line per problem (at most [`MAX_PROBLEMS`]).
pub const MAX_PROBLEMS: usize = 10;

/// Checks a finished build's output before it may become a lower layer of instances: no
/// special files (a FIFO would hang the game), no set-id bits, everything owned by the game
/// user, and no symlink that leaves the overlay (absolute, or `..` past its top, checked both
/// by its text and by resolving it beneath the output dir). Returns the problems found.
pub fn check_output(root: &Path, owner: Ids) -> Result<Vec<String>, CheckError> {
    let root_fd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
        .map_err(|e| PathIo::at("open", root)(e.into()))?;
    let mut problems = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .map_err(PathIo::at("read", &dir))?
            .collect::<Result<_, _>>()
            .map_err(PathIo::at("read", &dir))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let rel_path = rel.join(entry.file_name());
            let meta =
                fs::symlink_metadata(entry.path()).map_err(PathIo::at("stat", &entry.path()))?;
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
                let target =
                    fs::read_link(entry.path()).map_err(PathIo::at("read", &entry.path()))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TempDir, current_ids as me};
    use std::os::unix::fs::symlink;

    #[test]
    fn output_check_finds_escaping_links() {
        let dir = TempDir::new("check");
        let root = dir.path().join("out");
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
}
