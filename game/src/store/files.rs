//! Small files of the store (`current`, `version.toml`): read through a descriptor of their
//! directory without following a link, written atomically (temp + fsync + rename + fsync of the
//! directory).

use std::io::{Read as _, Write as _};
use std::path::Path;

use left4me_statedir::{Dir, RESOLVE_STRICT, openat2_retry};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::StoreError;

/// The most a metadata file may hold: anything larger is not ours.
const MAX_SMALL_FILE: u64 = 64 * 1024;

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The text of the regular file `name` in `dir`, `None` when there is none.
pub(crate) fn read_small(dir: &Dir, name: &str) -> Result<Option<String>, StoreError> {
    let path = dir.path().join(name);
    let fd = match openat2_retry(
        dir.fd(),
        Path::new(name),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK,
        Mode::empty(),
        RESOLVE_STRICT,
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(errno) => return Err(io("open", &path)(errno.into())),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| io("stat", &path)(e.into()))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(StoreError::Metadata {
            path,
            reason: "is not a regular file".into(),
        });
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(MAX_SMALL_FILE + 1)
        .read_to_string(&mut text)
        .map_err(io("read", &path))?;
    if text.len() as u64 > MAX_SMALL_FILE {
        return Err(StoreError::Metadata {
            path,
            reason: format!("is larger than {MAX_SMALL_FILE} bytes"),
        });
    }
    Ok(Some(text))
}

/// Replaces (or creates) the file `name` in `dir` with `contents`, mode 0644, atomically: a
/// reader sees the old text or the new one, never a part, and a crash leaves one of them.
pub(crate) fn write_atomic(dir: &Dir, name: &str, contents: &[u8]) -> Result<(), StoreError> {
    let temp = format!(".{name}.tmp");
    let path = dir.path().join(name);
    match rustix::fs::unlinkat(dir.fd(), temp.as_str(), AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(errno) => return Err(io("remove a stale temporary file for", &path)(errno.into())),
    }
    let fd = openat2_retry(
        dir.fd(),
        Path::new(&temp),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o644),
        RESOLVE_STRICT,
    )
    .map_err(|e| io("create a temporary file for", &path)(e.into()))?;
    // The umask may have taken bits away; the mode is part of the layout.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o644))
        .map_err(|e| io("chmod", &path)(e.into()))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(contents).map_err(io("write", &path))?;
    file.sync_all().map_err(io("fsync", &path))?;
    drop(file);
    rustix::fs::renameat(dir.fd(), temp.as_str(), dir.fd(), name)
        .map_err(|e| io("replace", &path)(e.into()))?;
    rustix::fs::fsync(dir.fd()).map_err(|e| io("fsync", dir.path())(e.into()))?;
    Ok(())
}
