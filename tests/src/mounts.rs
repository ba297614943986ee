//! Mounts in the host's mount namespace: the tmpfs base, the overlay root, the
//! state bind, and reading the mount table.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

/// How long an unmount may keep failing with EBUSY (a process of the booted
/// system that is still exiting) before it is reported.
const UNMOUNT_PATIENCE: Duration = Duration::from_secs(5);

/// Errors of mounting and unmounting.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("cannot mount {what} at {target}: {source}")]
    Mount {
        what: String,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot unmount {target}: {source}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read /proc/self/mountinfo: {source}")]
    Table {
        #[source]
        source: io::Error,
    },
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    /// The path inside the file system that is mounted (`/` for a whole one).
    pub root: String,
    pub fstype: String,
    pub source: String,
    pub super_options: String,
}

impl std::fmt::Display for MountEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} from {}, {})",
            self.mount_point.display(),
            self.fstype,
            self.source,
            self.super_options
        )
    }
}

/// The mounts of this process's mount namespace, in mount order.
pub fn mount_table() -> Result<Vec<MountEntry>, MountError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|source| MountError::Table { source })?;
    Ok(parse_mountinfo(&text))
}

/// Parses mountinfo text (proc_pid_mountinfo(5)); malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (head, tail) = line.split_once(" - ")?;
            let head: Vec<&str> = head.split(' ').collect();
            let mut tail = tail.split(' ');
            Some(MountEntry {
                root: unescape(head.get(3)?),
                mount_point: PathBuf::from(unescape(head.get(4)?)),
                fstype: tail.next()?.to_owned(),
                source: unescape(tail.next()?),
                super_options: tail.next().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// Undoes the octal escapes (`\040` for a space) of mountinfo fields.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match octal {
            Some(digits) => {
                out.push(
                    digits
                        .iter()
                        .fold(0u8, |n, d| n.wrapping_mul(8) + (d - b'0')),
                );
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts a fresh tmpfs at `target` and makes it private, so nothing mounted
/// beneath it propagates to other mount namespaces.
pub fn mount_private_tmpfs(target: &Path, options: &str) -> Result<(), MountError> {
    let data = CString::new(options).expect("mount options contain no NUL");
    let flags = MountFlags::NOSUID | MountFlags::NODEV;
    rustix::mount::mount("tmpfs", target, "tmpfs", flags, Some(data.as_c_str()))
        .and_then(|()| rustix::mount::mount_change(target, MountPropagationFlags::PRIVATE))
        .map_err(|errno| MountError::Mount {
            what: format!("tmpfs ({options})"),
            target: target.to_owned(),
            source: errno.into(),
        })
}

/// Mounts an overlay of `lower` (read-only) and `upper` at `target`.
pub fn mount_overlay(
    lower: &Path,
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), MountError> {
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let data = CString::new(options.clone()).expect("paths contain no NUL");
    rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(|errno| MountError::Mount {
        what: format!("overlay ({options})"),
        target: target.to_owned(),
        source: errno.into(),
    })
}

/// Bind-mounts `source` at `target`.
pub fn bind(source: &Path, target: &Path) -> Result<(), MountError> {
    rustix::mount::mount_bind(source, target).map_err(|errno| MountError::Mount {
        what: format!("a bind of {}", source.display()),
        target: target.to_owned(),
        source: errno.into(),
    })
}

/// Unmounts `target`, retrying while it is busy.
pub fn unmount(target: &Path) -> Result<(), MountError> {
    let deadline = Instant::now() + UNMOUNT_PATIENCE;
    loop {
        match rustix::mount::unmount(target, UnmountFlags::NOFOLLOW) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::BUSY) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(errno) => {
                return Err(MountError::Unmount {
                    target: target.to_owned(),
                    source: errno.into(),
                });
            }
        }
    }
}

/// Unmounts every mount at or beneath `dir`, deepest first.
pub fn unmount_beneath(dir: &Path) -> Result<(), MountError> {
    let mut targets: Vec<PathBuf> = mount_table()?
        .into_iter()
        .map(|entry| entry.mount_point)
        .filter(|mount_point| mount_point.starts_with(dir))
        .collect();
    // Mount order puts parents before children; several mounts stacked on
    // one point come off in reverse order too.
    targets.reverse();
    targets.into_iter().try_for_each(|target| unmount(&target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let text = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:5 - cgroup cgroup rw,memory
90 27 0:50 / /tmp/with\\040space rw - overlay overlay rw,lowerdir=/,upperdir=/u
garbage
";
        let entries = parse_mountinfo(text);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].mount_point, Path::new("/"));
        assert_eq!(entries[0].fstype, "ext4");
        assert_eq!(entries[1].super_options, "rw,memory");
        assert_eq!(entries[2].mount_point, Path::new("/tmp/with space"));
        assert_eq!(entries[2].source, "overlay");
        assert_eq!(entries[2].super_options, "rw,lowerdir=/,upperdir=/u");
    }

    #[test]
    fn unescapes_only_octal() {
        assert_eq!(unescape(r"a\040b\134c"), r"a b\c");
        assert_eq!(unescape(r"tail\04"), r"tail\04");
        assert_eq!(unescape(r"x\9yz"), r"x\9yz");
    }
}
