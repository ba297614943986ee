//! Reading spec files without trusting what sits in the config dir: the generator reads them at
//! boot and on every `daemon-reload`, so a FIFO, a device, a link to `/dev/zero` or a huge file
//! must cost one error line for that file, never a hang or the host's memory.
//!
//! A spec is opened with `O_NONBLOCK|O_NOFOLLOW` (a FIFO does not block the open, a symbolic
//! link is refused), checked with `fstat` to be a regular file of at most [`MAX_SPEC_BYTES`], and
//! read with as few system calls as possible (open, fstat, read, close).

use std::fs::File;
use std::io::{self, Read as _};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};

/// The largest spec file read: far above any real spec (a few KiB), far below harm.
pub const MAX_SPEC_BYTES: u64 = 1 << 20;

fn refused(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

/// What kind of file `file_type` is, for a message.
fn describe(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Socket => "a socket",
        FileType::Symlink => "a symbolic link",
        _ => "not a regular file",
    }
}

/// The text of the spec file at `path`; a missing file is `NotFound`, anything but a regular
/// file of at most [`MAX_SPEC_BYTES`] UTF-8 bytes is `InvalidInput` with the reason.
pub fn read_spec(path: &Path) -> io::Result<String> {
    let flags =
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) => {
            return Err(refused(
                "is a symbolic link; a spec must be a regular file: put the file itself here"
                    .into(),
            ));
        }
        Err(errno) => return Err(errno.into()),
    };
    let stat = rustix::fs::fstat(&fd)?;
    let file_type = FileType::from_raw_mode(stat.st_mode);
    if file_type != FileType::RegularFile {
        return Err(refused(format!(
            "is {}; a spec must be a regular file: remove it",
            describe(file_type)
        )));
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    let too_big = |size: u64| {
        refused(format!(
            "is {size} bytes, more than the {MAX_SPEC_BYTES} a spec may have: shorten it"
        ))
    };
    if size > MAX_SPEC_BYTES {
        return Err(too_big(size));
    }
    // The file may grow between fstat and read: never read more than the limit.
    let mut buf = Vec::with_capacity(size as usize + 1);
    File::from(fd)
        .take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_SPEC_BYTES {
        return Err(too_big(buf.len() as u64));
    }
    String::from_utf8(buf).map_err(|_| refused("is not valid UTF-8: save it as UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir(tag: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("left4me-read-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn refusal(path: &Path) -> String {
        let err = read_spec(path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        err.to_string()
    }

    #[test]
    fn reads_regular_files() {
        let d = dir("ok");
        let file = d.0.join("a.toml");
        std::fs::write(&file, "port = 27015\n").unwrap();
        assert_eq!(read_spec(&file).unwrap(), "port = 27015\n");
        let limit = d.0.join("limit.toml");
        std::fs::write(&limit, vec![b'#'; MAX_SPEC_BYTES as usize]).unwrap();
        assert_eq!(read_spec(&limit).unwrap().len(), MAX_SPEC_BYTES as usize);
        assert_eq!(
            read_spec(&d.0.join("missing.toml")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn refuses_what_is_not_a_small_regular_file() {
        let d = dir("bad");
        let fifo = d.0.join("fifo.toml");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(refusal(&fifo).starts_with("is a FIFO"));
        let zero = d.0.join("zero.toml");
        symlink("/dev/zero", &zero).unwrap();
        assert!(refusal(&zero).starts_with("is a symbolic link"));
        let null = d.0.join("devnull.toml");
        symlink("/dev/null", &null).unwrap();
        assert!(refusal(&null).starts_with("is a symbolic link"));
        let alias = d.0.join("alias.toml");
        std::fs::write(d.0.join("real.toml"), "port = 1\n").unwrap();
        symlink("real.toml", &alias).unwrap();
        assert!(refusal(&alias).starts_with("is a symbolic link"));
        let sub = d.0.join("dir.toml");
        std::fs::create_dir(&sub).unwrap();
        assert!(refusal(&sub).starts_with("is a directory"));
        let big = d.0.join("big.toml");
        std::fs::write(&big, vec![b'#'; MAX_SPEC_BYTES as usize + 1]).unwrap();
        assert!(refusal(&big).contains("more than the 1048576"));
        let latin1 = d.0.join("latin1.toml");
        std::fs::write(&latin1, b"hostname = \"caf\xe9\"\n").unwrap();
        assert!(refusal(&latin1).contains("UTF-8"));
    }
}
