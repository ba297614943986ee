//! The backup archive (docs/backup.md): a tar stream compressed with zstd (frame checksums
//! on), whose first entry is `manifest.json` listing every other entry with its size, SHA-256,
//! mode and kind. [`write`] makes one from a list of [`Item`]s; [`read`] walks one and refuses,
//! as soon as it sees it, anything that is not exactly what the manifest lists: a corrupted or
//! truncated stream, a checksum or size mismatch, an absolute path or one with `..`, a link,
//! a device or any other entry type than a plain file or directory, an unlisted or repeated
//! path, a missing one. `restore` reads an archive once to check it before writing anything,
//! then a second time to write.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The manifest's format version; `restore` refuses other versions.
pub const FORMAT_VERSION: u32 = 1;
/// The name of the first entry.
pub const MANIFEST: &str = "manifest.json";
/// The largest manifest read (a manifest lists paths, not content).
const MANIFEST_MAX: u64 = 64 << 20;
/// The zstd level: at 7, zstd makes archives of logs and game state a little smaller than
/// `gzip -6` in three quarters of its time per thread (bench/backup.sh); level 3, zstd's
/// default, is 4 % larger than gzip.
const ZSTD_LEVEL: i32 = 7;
/// The most compression threads: backups yield to the games (the timer runs in the build slice).
const ZSTD_MAX_WORKERS: usize = 4;

/// What is wrong with an archive, or why it cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} is not a usable left4me backup: {why}; nothing was written (is the file complete? \
         compare it with the copy you made it from)",
        archive.display()
    )]
    Corrupt { archive: PathBuf, why: String },
}

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `config/host.toml`
    Host,
    /// `config/instances/NAME.toml`
    Instance,
    /// `config/blueprints/NAME.toml`
    Blueprint,
    /// `config/overlays/NAME.toml`
    OverlayDef,
    /// `overlays/NAME/…`: the content of a manual overlay.
    OverlayContent,
    /// `upper/NAME/…`: an instance's writable layer.
    Upper,
    /// `secrets/rcon/NAME`: an instance's RCON password.
    Secret,
}

/// One entry of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The path in the archive (relative, plain components).
    pub path: String,
    pub kind: Kind,
    /// `true` for a directory (size 0, no checksum).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dir: bool,
    pub size: u64,
    /// Hex SHA-256 of the content; empty for a directory.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
}

impl Entry {
    /// A directory's entry; `mode` is masked to its permission bits.
    pub fn dir(path: &str, kind: Kind, mode: u32) -> Entry {
        Entry::new(path, kind, true, mode)
    }

    /// A file's entry before it is written: size and checksum are filled in as it is.
    pub fn file(path: &str, kind: Kind, mode: u32) -> Entry {
        Entry::new(path, kind, false, mode)
    }

    fn new(path: &str, kind: Kind, dir: bool, mode: u32) -> Entry {
        Entry {
            path: path.to_owned(),
            kind,
            dir,
            size: 0,
            sha256: String::new(),
            mode: mode & 0o7777,
        }
    }
}

/// An overlay whose content is not in the archive: rebuild it with `left4mectl overlay build`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebuildable {
    pub name: String,
    /// Its definition's `kind` (`script`, `workshop`).
    pub kind: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub left4me_version: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub created: String,
    pub host: String,
    /// The instances whose spec is in the archive.
    pub instances: Vec<String>,
    pub rebuildable: Vec<Rebuildable>,
    /// Entries skipped at backup time (symbolic links, overlayfs whiteouts, other special
    /// files in an upper layer), with why.
    #[serde(default)]
    pub skipped: Vec<String>,
    pub files: Vec<Entry>,
}

/// Where the content of an entry comes from when the archive is written.
pub trait Source {
    /// Opens the content (a plain file, never followed through a link) and says its size.
    fn open(&self) -> io::Result<(Box<dyn Read + '_>, u64)>;
}

/// Bytes held in memory (specs, secrets).
impl Source for Vec<u8> {
    fn open(&self) -> io::Result<(Box<dyn Read + '_>, u64)> {
        Ok((Box::new(self.as_slice()), self.len() as u64))
    }
}

/// One entry to archive: its manifest entry (size and sha256 filled by [`write`] as it reads
/// the content) and where its content is (`None` for a directory).
pub struct Item {
    pub entry: Entry,
    pub source: Option<Box<dyn Source>>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.entry.fmt(f)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A zstd encoder at [`ZSTD_LEVEL`] with frame checksums, on up to [`ZSTD_MAX_WORKERS`]
/// threads.
fn encoder<W: Write>(out: W) -> io::Result<zstd::Encoder<'static, W>> {
    let mut encoder = zstd::Encoder::new(out, ZSTD_LEVEL)?;
    encoder.include_checksum(true)?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(ZSTD_MAX_WORKERS));
    if workers > 1 {
        encoder.multithread(workers as u32)?;
    }
    Ok(encoder)
}

fn header(size: u64, mode: u32, dir: bool, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    header
}

/// Writes the archive to `out`, reading every item once: the items go, compressed, to `spool`
/// (a scratch file) while their checksums are taken; then `manifest_of(items, notes)` makes
/// the manifest, which is written to `out` as a first zstd frame, and the spool is copied
/// after it as the second (a zstd stream may hold several frames, and a tar stream split
/// between them reads as one). What an item holds in the archive is exactly what was
/// checksummed, however the file changes while it is read: a file that shrank is filled with
/// zeros to the size it had when opened, and `notes` says so. `archive` names the target in
/// errors.
pub fn write(
    mut out: impl Write,
    spool: &mut File,
    items: &mut [Item],
    manifest_of: impl FnOnce(&[Item], Vec<String>) -> Manifest,
    archive: &Path,
) -> Result<Manifest, ArchiveError> {
    use std::io::Seek as _;
    let io_err = |source| ArchiveError::Io {
        action: "write",
        path: archive.to_owned(),
        source,
    };
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut notes = Vec::new();
    let mut tar = tar::Builder::new(encoder(io::BufWriter::new(&mut *spool)).map_err(io_err)?);
    for item in items.iter_mut() {
        let entry = &mut item.entry;
        let Some(source) = &item.source else {
            let mut head = header(0, entry.mode, true, mtime);
            tar.append_data(&mut head, &entry.path, io::empty())
                .map_err(io_err)?;
            continue;
        };
        let (reader, size) = source.open().map_err(|source| ArchiveError::Io {
            action: "read",
            path: PathBuf::from(&entry.path),
            source,
        })?;
        let mut exact = HashingReader::new(ExactSize::new(reader, size));
        let mut head = header(size, entry.mode, false, mtime);
        tar.append_data(&mut head, &entry.path, &mut exact)
            .map_err(io_err)?;
        if exact.inner.short {
            notes.push(format!(
                "{}: shrank while it was read; archived zero-filled to {size} bytes",
                entry.path
            ));
        }
        entry.size = size;
        entry.sha256 = exact.finish();
    }
    tar.into_inner()
        .and_then(|encoder| encoder.finish())
        .and_then(|mut buffered| buffered.flush())
        .map_err(io_err)?;
    let manifest = manifest_of(items, notes);
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    let mut head = header(json.len() as u64, 0o600, false, mtime);
    head.set_path(MANIFEST).map_err(io_err)?;
    head.set_cksum();
    let mut first = encoder(&mut out).map_err(io_err)?;
    let padding = (512 - json.len() % 512) % 512;
    first
        .write_all(head.as_bytes())
        .and_then(|()| first.write_all(&json))
        .and_then(|()| first.write_all(&vec![0u8; padding]))
        .map_err(io_err)?;
    first.finish().map_err(io_err)?;
    spool.rewind().map_err(io_err)?;
    io::copy(spool, &mut out).map_err(io_err)?;
    out.flush().map_err(io_err)?;
    Ok(manifest)
}

/// Exactly `size` bytes of `inner`: cut when it grew, zero-filled (and `short` set) when it
/// shrank.
struct ExactSize<R> {
    inner: R,
    left: u64,
    short: bool,
}

impl<R: Read> ExactSize<R> {
    fn new(inner: R, size: u64) -> Self {
        ExactSize {
            inner,
            left: size,
            short: false,
        }
    }
}

impl<R: Read> Read for ExactSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let mut n = if self.short {
            0
        } else {
            self.inner.read(&mut buf[..want])?
        };
        if n == 0 {
            self.short = true;
            buf[..want].fill(0);
            n = want;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> String {
        hex(&self.hasher.finalize())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Whether `path` is a relative path of plain components that [`kind_of`] accepts as `kind`.
pub fn check_path(path: &str, kind: Kind, dir: bool) -> Result<(), String> {
    let plain = !path.is_empty()
        && !path.contains('\0')
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        && !path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if !plain {
        return Err(format!(
            "entry {path:?} is not a plain relative path (absolute, `..` or empty parts)"
        ));
    }
    match kind_of(path, dir) {
        Some(found) if found == kind => Ok(()),
        _ => Err(format!(
            "entry {path:?} is not where a {kind:?} entry belongs"
        )),
    }
}

/// The kind an entry at `path` has, by where it is; `None` for a path no kind has.
fn kind_of(path: &str, dir: bool) -> Option<Kind> {
    let parts: Vec<&str> = path.split('/').collect();
    let name_ok = |name: &str| left4me_contract::check_name(name).is_ok();
    let toml_stem = |file: &str| file.strip_suffix(".toml").filter(|s| name_ok(s)).is_some();
    match parts.as_slice() {
        ["config", "host.toml"] if !dir => Some(Kind::Host),
        ["config", "instances", f] if !dir && toml_stem(f) => Some(Kind::Instance),
        ["config", "blueprints", f] if !dir && toml_stem(f) => Some(Kind::Blueprint),
        ["config", "overlays", f] if !dir && toml_stem(f) => Some(Kind::OverlayDef),
        ["secrets", "rcon", n] if !dir && name_ok(n) => Some(Kind::Secret),
        ["overlays", n, ..] if name_ok(n) => Some(Kind::OverlayContent),
        ["upper", n, ..] if name_ok(n) => Some(Kind::Upper),
        _ => None,
    }
}

/// Checks a manifest on its own: the version, and every path.
fn check_manifest(manifest: &Manifest) -> Result<(), String> {
    if manifest.format != FORMAT_VERSION {
        return Err(format!(
            "manifest format {} (this left4mectl reads format {FORMAT_VERSION})",
            manifest.format
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for entry in &manifest.files {
        check_path(&entry.path, entry.kind, entry.dir)?;
        if entry.mode & !0o7777 != 0 {
            return Err(format!("entry {:?} has mode {:o}", entry.path, entry.mode));
        }
        if !seen.insert(entry.path.as_str()) {
            return Err(format!("entry {:?} is listed twice", entry.path));
        }
        // Parents come first, so every entry can be created beneath one already made.
        if let Some((parent, _)) = entry.path.rsplit_once('/') {
            let top = matches!(entry.kind, Kind::Upper | Kind::OverlayContent)
                && parent.split('/').count() == 1;
            if !top && matches!(entry.kind, Kind::Upper | Kind::OverlayContent) {
                let listed = manifest
                    .files
                    .iter()
                    .take_while(|e| e.path != entry.path)
                    .any(|e| e.dir && e.path == parent);
                if !listed {
                    return Err(format!(
                        "entry {:?} comes before its directory in the manifest",
                        entry.path
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Reads the archive `file` (named `archive` in messages) from its start, checking every
/// entry against the manifest, and hands each entry and its content to `sink` (a directory
/// with an empty reader; `sink` need not read it all). The manifest is returned once every listed entry was seen; the
/// content `sink` got is only known good when `read` returns `Ok`.
pub fn read(
    file: &mut File,
    archive: &Path,
    mut sink: impl FnMut(&Entry, &mut dyn Read) -> io::Result<()>,
) -> Result<Manifest, ArchiveError> {
    use std::io::Seek as _;
    let corrupt = |why: String| ArchiveError::Corrupt {
        archive: archive.to_owned(),
        why,
    };
    file.rewind().map_err(|source| ArchiveError::Io {
        action: "read",
        path: archive.to_owned(),
        source,
    })?;
    let decoder =
        zstd::Decoder::new(&mut *file).map_err(|e| corrupt(format!("not a zstd stream ({e})")))?;
    let mut tar = tar::Archive::new(decoder);
    let mut entries = tar
        .entries()
        .map_err(|e| corrupt(format!("not a tar stream ({e})")))?;
    let mut next = || -> Result<Option<tar::Entry<'_, _>>, ArchiveError> {
        match entries.next() {
            None => Ok(None),
            Some(Ok(entry)) => Ok(Some(entry)),
            Some(Err(e)) => Err(corrupt(format!("unreadable stream ({e})"))),
        }
    };
    let mut first = next()?.ok_or_else(|| corrupt("empty archive".into()))?;
    if first.path_bytes().as_ref() != MANIFEST.as_bytes()
        || first.header().entry_type() != tar::EntryType::Regular
        || first.size() > MANIFEST_MAX
    {
        return Err(corrupt(format!("the first entry is not {MANIFEST}")));
    }
    let mut json = Vec::new();
    first
        .read_to_end(&mut json)
        .map_err(|e| corrupt(format!("unreadable {MANIFEST} ({e})")))?;
    drop(first);
    let manifest: Manifest =
        serde_json::from_slice(&json).map_err(|e| corrupt(format!("bad {MANIFEST}: {e}")))?;
    check_manifest(&manifest).map_err(&corrupt)?;
    let mut expected = manifest.files.iter();
    while let Some(mut entry) = next()? {
        let raw = entry.path_bytes().into_owned();
        let path =
            String::from_utf8(raw).map_err(|_| corrupt("an entry's path is not UTF-8".into()))?;
        let path = path.strip_suffix('/').unwrap_or(&path).to_owned();
        let kind = entry.header().entry_type();
        let dir = match kind {
            tar::EntryType::Regular => false,
            tar::EntryType::Directory => true,
            other => {
                return Err(corrupt(format!(
                    "entry {path:?} is a {} (only plain files and directories are restored)",
                    describe_type(other)
                )));
            }
        };
        if entry.header().as_ustar().is_none() && entry.header().as_gnu().is_none() {
            return Err(corrupt(format!("entry {path:?} has an old-style header")));
        }
        if !manifest.files.iter().any(|e| e.path == path) {
            return Err(corrupt(format!("entry {path:?} is not in the manifest")));
        }
        // Entries come in the manifest's order (directories before what they hold).
        let want = expected
            .next()
            .filter(|want| want.path == path)
            .ok_or_else(|| corrupt(format!("entry {path:?} is out of the manifest's order")))?;
        check_path(&path, want.kind, dir).map_err(&corrupt)?;
        if want.dir != dir || (!dir && entry.size() != want.size) {
            return Err(corrupt(format!(
                "entry {path:?} does not match the manifest (type or size)"
            )));
        }
        if dir {
            sink(want, &mut io::empty()).map_err(|e| corrupt(format!("entry {path:?}: {e}")))?;
            continue;
        }
        let mut hashing = HashingReader::new((&mut entry).take(want.size));
        sink(want, &mut hashing).map_err(|e| corrupt(format!("entry {path:?}: {e}")))?;
        io::copy(&mut hashing, &mut io::sink())
            .map_err(|e| corrupt(format!("entry {path:?}: {e}")))?;
        if hashing.finish() != want.sha256 {
            return Err(corrupt(format!(
                "entry {path:?} does not match its checksum"
            )));
        }
    }
    if let Some(missing) = expected.next() {
        return Err(corrupt(format!(
            "entry {:?} is in the manifest but not in the archive (truncated?)",
            missing.path
        )));
    }
    // Whatever follows the tar's end must still be a whole, checksummed zstd stream.
    io::copy(&mut tar.into_inner(), &mut io::sink())
        .map_err(|e| corrupt(format!("unreadable stream ({e})")))?;
    Ok(manifest)
}

fn describe_type(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char | tar::EntryType::Block => "device file",
        tar::EntryType::Fifo => "FIFO",
        _ => "special entry",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_size_cuts_growth_and_zero_fills_shrinking() {
        let mut grown = Vec::new();
        let mut reader = ExactSize::new(&b"abcdef"[..], 4);
        reader.read_to_end(&mut grown).unwrap();
        assert_eq!((grown.as_slice(), reader.short), (&b"abcd"[..], false));
        let mut shrunk = Vec::new();
        let mut reader = ExactSize::new(&b"ab"[..], 5);
        reader.read_to_end(&mut shrunk).unwrap();
        assert_eq!((shrunk.as_slice(), reader.short), (&b"ab\0\0\0"[..], true));
    }

    #[test]
    fn paths_are_checked_by_kind() {
        assert!(check_path("config/instances/coop1.toml", Kind::Instance, false).is_ok());
        assert!(check_path("upper/coop1/left4dead2/x.log", Kind::Upper, false).is_ok());
        assert!(check_path("upper/coop1", Kind::Upper, true).is_ok());
        assert!(check_path("upper/../etc/passwd", Kind::Upper, false).is_err());
        assert!(check_path("/etc/passwd", Kind::Upper, false).is_err());
        assert!(check_path("upper/coop1/./x", Kind::Upper, false).is_err());
        assert!(check_path("config/instances/Bad.toml", Kind::Instance, false).is_err());
        assert!(check_path("config/instances/a.toml", Kind::Blueprint, false).is_err());
        assert!(check_path("secrets/rcon/a/b", Kind::Secret, false).is_err());
    }
}
