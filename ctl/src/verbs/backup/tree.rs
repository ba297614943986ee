//! Trees beneath the state dir as root reads and writes them for backups (DESIGN.md §2):
//! only through descriptors opened beneath the state dir, never following a symbolic link,
//! never crossing a mount. [`collect`] lists a tree (an instance's upper layer, a manual
//! overlay's content) as archive items; [`TreeWriter`] builds one from an archive in a fresh
//! root-only directory, owned by the game user entry by entry.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Uid};

use crate::archive::{Entry, Item, Kind, Source};
use left4me_statedir::{Dir, DirError, RESOLVE_STRICT, openat2_retry};

/// Why a tree could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path} of the archive: its directory is not in it")]
    NoParent { path: String },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> TreeError + 'a {
    move |source| TreeError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// A plain file in a directory opened beneath the state dir, opened by name each time,
/// without following a link and only on the device of the tree it was found in.
struct AtFile {
    dir: Arc<Dir>,
    name: OsString,
    dev: u64,
}

impl Source for AtFile {
    fn open(&self) -> io::Result<(Box<dyn Read + '_>, u64)> {
        let fd = openat2_retry(
            self.dir.fd(),
            Path::new(&self.name),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK,
            Mode::empty(),
            RESOLVE_STRICT,
        )?;
        let stat = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile || stat.st_dev != self.dev
        {
            return Err(io::Error::other(
                "no longer a plain file on the same file system",
            ));
        }
        Ok((Box::new(File::from(fd)), stat.st_size as u64))
    }
}

/// Adds the tree `dir` (which becomes entry `prefix`, a directory) and everything beneath it
/// to `items` as entries of `kind`, sorted by name. Symbolic links, device files (overlayfs
/// whiteouts among them), sockets, FIFOs, names that are not UTF-8 and mounts are not
/// archived: each is added to `skipped` with why.
pub fn collect(
    dir: Dir,
    prefix: &str,
    kind: Kind,
    items: &mut Vec<Item>,
    skipped: &mut Vec<String>,
) -> Result<(), TreeError> {
    let stat = rustix::fs::fstat(dir.fd()).map_err(|e| io_err("stat", dir.path())(e.into()))?;
    items.push(Item {
        entry: Entry::dir(prefix, kind, stat.st_mode),
        source: None,
    });
    walk(Arc::new(dir), prefix, kind, stat.st_dev, items, skipped)
}

fn walk(
    dir: Arc<Dir>,
    prefix: &str,
    kind: Kind,
    dev: u64,
    items: &mut Vec<Item>,
    skipped: &mut Vec<String>,
) -> Result<(), TreeError> {
    let mut names = dir.entries()?;
    names.sort();
    for name in names {
        let shown = format!("{prefix}/{}", name.to_string_lossy());
        let Ok(utf8) = name.clone().into_string() else {
            skipped.push(format!("{shown}: the name is not UTF-8"));
            continue;
        };
        let path = format!("{prefix}/{utf8}");
        let stat = rustix::fs::statat(dir.fd(), name.as_bytes(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io_err("stat", &dir.path().join(&name))(e.into()))?;
        match FileType::from_raw_mode(stat.st_mode) {
            _ if stat.st_dev != dev => skipped.push(format!("{path}: another file system")),
            FileType::Directory => {
                let sub = dir.open_dir(&utf8)?;
                items.push(Item {
                    entry: Entry::dir(&path, kind, stat.st_mode),
                    source: None,
                });
                walk(Arc::new(sub), &path, kind, dev, items, skipped)?;
            }
            FileType::RegularFile => items.push(Item {
                entry: Entry::file(&path, kind, stat.st_mode),
                source: Some(Box::new(AtFile {
                    dir: dir.clone(),
                    name,
                    dev,
                })),
            }),
            FileType::Symlink => skipped.push(format!("{path}: a symbolic link")),
            FileType::CharacterDevice if stat.st_rdev == 0 => {
                skipped.push(format!("{path}: an overlayfs whiteout"));
            }
            other => skipped.push(format!("{path}: a {other:?}")),
        }
    }
    Ok(())
}

/// Builds a tree from archive entries in `root` (a fresh directory of root's, mode 0700, so
/// nobody else can reach inside while it is built): directories and files are created beneath
/// their parent's descriptor, never through a link, and given to `owner` one by one.
#[derive(Debug)]
pub struct TreeWriter {
    /// The archive path of the tree's top (`upper/NAME`), whose entry is `root` itself.
    prefix: String,
    dirs: HashMap<String, Arc<Dir>>,
    owner: (u32, u32),
}

impl TreeWriter {
    pub fn new(root: Dir, prefix: &str, owner: (u32, u32)) -> Self {
        let mut dirs = HashMap::new();
        dirs.insert(prefix.to_owned(), Arc::new(root));
        TreeWriter {
            prefix: prefix.to_owned(),
            dirs,
            owner,
        }
    }

    /// The parent dir of archive path `path` and the entry's name in it.
    fn parent<'p>(&self, path: &'p str) -> Result<(Arc<Dir>, &'p str), TreeError> {
        let no_parent = || TreeError::NoParent {
            path: path.to_owned(),
        };
        let (parent, name) = path.rsplit_once('/').ok_or_else(no_parent)?;
        let dir = self.dirs.get(parent).ok_or_else(no_parent)?;
        Ok((dir.clone(), name))
    }

    /// Creates the directory of `entry` (not the top, which exists).
    pub fn add_dir(&mut self, entry: &Entry) -> Result<(), TreeError> {
        if entry.path == self.prefix {
            return Ok(());
        }
        let (parent, name) = self.parent(&entry.path)?;
        let dir = parent.create_dir(name, self.owner, entry.mode & 0o1777)?;
        self.dirs.insert(entry.path.clone(), Arc::new(dir));
        Ok(())
    }

    /// Creates the file of `entry` with the content `reader` yields.
    pub fn add_file(&mut self, entry: &Entry, reader: &mut dyn Read) -> Result<(), TreeError> {
        let (parent, name) = self.parent(&entry.path)?;
        let path = parent.path().join(name);
        let fd = openat2_retry(
            parent.fd(),
            Path::new(name),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o600),
            RESOLVE_STRICT,
        )
        .map_err(|e| io_err("create", &path)(e.into()))?;
        let mut file = File::from(fd);
        io::copy(reader, &mut file).map_err(io_err("write", &path))?;
        rustix::fs::fchown(
            &file,
            Some(Uid::from_raw(self.owner.0)),
            Some(Gid::from_raw(self.owner.1)),
        )
        .map_err(|e| io_err("chown", &path)(e.into()))?;
        rustix::fs::fchmod(&file, Mode::from_raw_mode(entry.mode & 0o1777))
            .map_err(|e| io_err("chmod", &path)(e.into()))?;
        Ok(())
    }

    /// Flushes the file system to disk and gives the top directory to the owner with `mode`.
    pub fn finish(self, mode: u32) -> Result<(), TreeError> {
        let root = &self.dirs[&self.prefix];
        let path = root.path();
        rustix::fs::syncfs(root.fd()).map_err(|e| io_err("sync", path)(e.into()))?;
        rustix::fs::fchown(
            root.fd(),
            Some(Uid::from_raw(self.owner.0)),
            Some(Gid::from_raw(self.owner.1)),
        )
        .map_err(|e| io_err("chown", path)(e.into()))?;
        rustix::fs::fchmod(root.fd(), Mode::from_raw_mode(mode & 0o1777))
            .map_err(|e| io_err("chmod", path)(e.into()))
    }
}
