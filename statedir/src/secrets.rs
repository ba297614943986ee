//! RCON secrets (DESIGN.md §10): one password per instance in root's admin dir,
//! `<admin_dir>/rcon/NAME`, a file of mode 0600 owned by root in a directory of mode 0700 owned
//! by root. The game reads its password only from the cfg the supervisor stages into the
//! instance's upper layer at each start; `left4mectl rcon` reads it here, as root.
//!
//! A password is [`PASSWORD_LEN`] characters drawn from [`ALPHABET`] (letters and digits: safe
//! inside a quoted cfg string, on a command line and in a terminal) with the kernel's CSPRNG
//! (`getrandom(2)`), about 190 bits. A file is written atomically (temp file, fsync, rename,
//! fsync of the directory) and never followed through a link. A secrets directory or file that
//! is not root's alone is refused, saying so: whoever can write there can choose the password.

use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use rustix::rand::GetRandomFlags;

/// The directory of the RCON passwords in root's admin dir.
pub const RCON_DIR: &str = "rcon";

/// The length of a generated password.
pub const PASSWORD_LEN: usize = 32;

/// The characters of a generated password: ASCII letters and digits.
pub const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The longest password accepted from a file (one written by hand).
const MAX_LEN: usize = 255;

/// Why a secret could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{}", left4me_contract::check_name(name).unwrap_err())]
    BadName { name: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no RCON password for instance {name} ({} is missing): start the instance or run \
         `left4mectl rcon-password {name} --rotate` to make one",
        path.display()
    )]
    Missing { name: String, path: PathBuf },
    #[error(
        "{} is owned by uid {uid}, not root: whoever owns it can choose or read RCON passwords; \
         chown root:root it, or remove it and run `left4mectl rcon-password NAME --rotate`",
        path.display()
    )]
    NotRootOwned { path: PathBuf, uid: u32 },
    #[error(
        "{} is open to group or others (mode {mode:04o}): RCON secrets must be root's alone; \
         chmod {want:o} it and rotate the passwords it held (`left4mectl rcon-password NAME \
         --rotate`)",
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32, want: u32 },
    #[error("{} is not a regular file: remove it and run `left4mectl rcon-password NAME --rotate`", path.display())]
    NotAFile { path: PathBuf },
    #[error(
        "{} does not hold a usable RCON password (1-{MAX_LEN} printable ASCII characters, no \
         '\"', ';' or spaces, on one line): run `left4mectl rcon-password NAME --rotate`",
        path.display()
    )]
    Malformed { path: PathBuf },
    #[error("cannot draw random bytes from the kernel (getrandom): {source}")]
    Random {
        #[source]
        source: std::io::Error,
    },
}

impl SecretError {
    /// Whether the instance has no password yet.
    pub fn is_missing(&self) -> bool {
        matches!(self, SecretError::Missing { .. })
    }
}

/// The file holding the RCON password of instance `name` (for messages: the functions below
/// never act through it).
pub fn rcon_password_file(admin_dir: &Path, name: &str) -> PathBuf {
    admin_dir.join(RCON_DIR).join(name)
}

/// The RCON password of instance `name`; [`SecretError::Missing`] when it has none.
pub fn rcon_password(admin_dir: &Path, name: &str) -> Result<String, SecretError> {
    Secrets::ROOT.read(admin_dir, name)
}

/// The RCON password of instance `name`, made and kept first when it has none (two processes
/// making one at once agree on the first one written).
pub fn ensure_rcon_password(admin_dir: &Path, name: &str) -> Result<String, SecretError> {
    Secrets::ROOT.ensure(admin_dir, name)
}

/// Makes and keeps a new RCON password for instance `name`, replacing the old one atomically,
/// and returns it.
pub fn rotate_rcon_password(admin_dir: &Path, name: &str) -> Result<String, SecretError> {
    Secrets::ROOT.rotate(admin_dir, name)
}

/// Keeps `password` (checked with [`is_valid_password`]) as the RCON password of instance
/// `name`, replacing any old one atomically (`left4mectl restore`).
pub fn set_rcon_password(admin_dir: &Path, name: &str, password: &str) -> Result<(), SecretError> {
    check_name(name)?;
    if !is_valid_password(password) {
        return Err(SecretError::Malformed {
            path: rcon_password_file(admin_dir, name),
        });
    }
    let dir = Secrets::ROOT.open_dir(admin_dir, true)?.expect("created");
    write_in(&dir, name, password, RenameFlags::empty()).map(drop)
}

/// Removes the RCON password of instance `name`; nothing to remove is not an error.
pub fn remove_rcon_password(admin_dir: &Path, name: &str) -> Result<(), SecretError> {
    Secrets::ROOT.remove(admin_dir, name)
}

/// Whether `password` may be kept and staged: 1-255 printable ASCII characters other than
/// `"` and `;` (it sits between quotes in a cfg line, where `"` would end the string and `;`
/// could start another command).
pub fn is_valid_password(password: &str) -> bool {
    (1..=MAX_LEN).contains(&password.len())
        && password
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b';')
}

/// A new password: [`PASSWORD_LEN`] characters of [`ALPHABET`] from `getrandom(2)`, by
/// rejection sampling (a byte at or above the largest multiple of the alphabet's size is drawn
/// again) so every character is equally likely.
pub fn generate_password() -> Result<String, SecretError> {
    let limit = 256 - 256 % ALPHABET.len();
    let mut out = String::with_capacity(PASSWORD_LEN);
    let mut pool = [0u8; 64];
    while out.len() < PASSWORD_LEN {
        fill_random(&mut pool)?;
        for &byte in &pool {
            if usize::from(byte) < limit && out.len() < PASSWORD_LEN {
                out.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

fn fill_random(buf: &mut [u8]) -> Result<(), SecretError> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(errno) => {
                return Err(SecretError::Random {
                    source: errno.into(),
                });
            }
        }
    }
    Ok(())
}

/// The secrets of one owner: root in production; the tests' own uid, so they run unprivileged.
#[derive(Debug, Clone, Copy)]
struct Secrets {
    owner: u32,
}

/// The secrets dir, opened and checked.
#[derive(Debug)]
struct SecretsDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Secrets {
    const ROOT: Secrets = Secrets { owner: 0 };

    fn read(self, admin_dir: &Path, name: &str) -> Result<String, SecretError> {
        check_name(name)?;
        let Some(dir) = self.open_dir(admin_dir, false)? else {
            return Err(missing(admin_dir, name));
        };
        match self.read_in(&dir, name)? {
            Some(password) => Ok(password),
            None => Err(missing(admin_dir, name)),
        }
    }

    fn ensure(self, admin_dir: &Path, name: &str) -> Result<String, SecretError> {
        check_name(name)?;
        let dir = self.open_dir(admin_dir, true)?.expect("created");
        if let Some(password) = self.read_in(&dir, name)? {
            return Ok(password);
        }
        let password = generate_password()?;
        if write_in(&dir, name, &password, RenameFlags::NOREPLACE)? {
            Ok(password)
        } else {
            // Another process kept one first: that one is the password.
            self.read_in(&dir, name)?
                .ok_or_else(|| missing(admin_dir, name))
        }
    }

    fn rotate(self, admin_dir: &Path, name: &str) -> Result<String, SecretError> {
        check_name(name)?;
        let dir = self.open_dir(admin_dir, true)?.expect("created");
        let password = generate_password()?;
        write_in(&dir, name, &password, RenameFlags::empty())?;
        Ok(password)
    }

    fn remove(self, admin_dir: &Path, name: &str) -> Result<(), SecretError> {
        check_name(name)?;
        let Some(dir) = self.open_dir(admin_dir, false)? else {
            return Ok(());
        };
        let path = dir.path.join(name);
        match rustix::fs::unlinkat(&dir.fd, name, rustix::fs::AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(errno) => return Err(io("remove", &path)(errno)),
        }
        rustix::fs::fsync(&dir.fd).map_err(io("fsync", &dir.path))
    }

    /// Opens `<admin_dir>/rcon`, checking both are the owner's alone; creates them (0700) when
    /// `create`, else `None` when either is missing.
    fn open_dir(self, admin_dir: &Path, create: bool) -> Result<Option<SecretsDir>, SecretError> {
        if create {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(admin_dir)
                .map_err(|source| SecretError::Io {
                    action: "create",
                    path: admin_dir.to_owned(),
                    source,
                })?;
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let admin = match rustix::fs::open(admin_dir, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if !create => return Ok(None),
            Err(errno) => return Err(io("open", admin_dir)(errno)),
        };
        self.check(&admin, admin_dir, 0o022)?;
        let path = admin_dir.join(RCON_DIR);
        if create {
            match rustix::fs::mkdirat(&admin, RCON_DIR, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(errno) => return Err(io("create", &path)(errno)),
            }
        }
        let fd = match rustix::fs::openat(&admin, RCON_DIR, flags | OFlags::NOFOLLOW, Mode::empty())
        {
            Ok(fd) => fd,
            Err(Errno::NOENT) if !create => return Ok(None),
            Err(errno) => return Err(io("open", &path)(errno)),
        };
        self.check(&fd, &path, 0o077)?;
        Ok(Some(SecretsDir { fd, path }))
    }

    /// Refuses `fd` unless the owner owns it and no mode bit of `forbidden` is set.
    fn check(self, fd: impl AsFd, path: &Path, forbidden: u32) -> Result<(), SecretError> {
        let stat = rustix::fs::fstat(fd).map_err(io("stat", path))?;
        if stat.st_uid != self.owner {
            return Err(SecretError::NotRootOwned {
                path: path.to_owned(),
                uid: stat.st_uid,
            });
        }
        let mode = stat.st_mode & 0o7777;
        if mode & forbidden != 0 {
            return Err(SecretError::Exposed {
                path: path.to_owned(),
                mode,
                want: if stat.st_mode & 0o170000 == 0o040000 {
                    0o700
                } else {
                    0o600
                },
            });
        }
        Ok(())
    }

    /// The password in `dir/name`, `None` when there is no such file.
    fn read_in(self, dir: &SecretsDir, name: &str) -> Result<Option<String>, SecretError> {
        let path = dir.path.join(name);
        let fd = match rustix::fs::openat(
            &dir.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err(SecretError::NotAFile { path }),
            Err(errno) => return Err(io("open", &path)(errno)),
        };
        let stat = rustix::fs::fstat(&fd).map_err(io("stat", &path))?;
        if stat.st_mode & 0o170000 != 0o100000 {
            return Err(SecretError::NotAFile { path });
        }
        self.check(&fd, &path, 0o077)?;
        let mut text = String::new();
        std::fs::File::from(fd)
            .take(MAX_LEN as u64 + 2)
            .read_to_string(&mut text)
            .map_err(|source| SecretError::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
        let password = text.strip_suffix('\n').unwrap_or(&text);
        if is_valid_password(password) {
            Ok(Some(password.to_owned()))
        } else {
            Err(SecretError::Malformed { path })
        }
    }
}

/// Writes `password` to `dir/name` atomically: a temp file (0600) fsynced, renamed with
/// `flags`, then the directory fsynced. `false` when `RENAME_NOREPLACE` found a file there.
fn write_in(
    dir: &SecretsDir,
    name: &str,
    password: &str,
    flags: RenameFlags,
) -> Result<bool, SecretError> {
    // A random part keeps concurrent writers (threads of one process too) apart.
    let mut tag = [0u8; 8];
    fill_random(&mut tag)?;
    let temp = format!(".{name}.{:016x}.tmp", u64::from_ne_bytes(tag));
    let temp_path = dir.path.join(&temp);
    let path = dir.path.join(name);
    let fd = rustix::fs::openat(
        &dir.fd,
        &temp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(io("create", &temp_path))?;
    let written = (|| {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600)).map_err(io("chmod", &temp_path))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(format!("{password}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| SecretError::Io {
                action: "write",
                path: temp_path.clone(),
                source,
            })?;
        match rustix::fs::renameat_with(&dir.fd, &temp, &dir.fd, name, flags) {
            Ok(()) => Ok(true),
            Err(Errno::EXIST) => Ok(false),
            Err(errno) => Err(io("rename into place", &path)(errno)),
        }
    })();
    if !matches!(written, Ok(true)) {
        let _ = rustix::fs::unlinkat(&dir.fd, &temp, rustix::fs::AtFlags::empty());
    }
    let renamed = written?;
    rustix::fs::fsync(&dir.fd).map_err(io("fsync", &dir.path))?;
    Ok(renamed)
}

fn check_name(name: &str) -> Result<(), SecretError> {
    if left4me_contract::is_valid_name(name) {
        Ok(())
    } else {
        Err(SecretError::BadName {
            name: name.to_owned(),
        })
    }
}

fn missing(admin_dir: &Path, name: &str) -> SecretError {
    SecretError::Missing {
        name: name.to_owned(),
        path: rcon_password_file(admin_dir, name),
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> SecretError + 'a {
    move |errno| SecretError::Io {
        action,
        path: path.to_owned(),
        source: errno.into(),
    }
}

#[cfg(test)]
mod tests;
