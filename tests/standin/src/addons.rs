//! The add-ons the stand-in mounts at map load, as L4D2 mounts `left4dead2/addons/*.vpk`: each
//! file's VPK header (signature 0x55aa1234, version 1 or 2) and directory tree are read and
//! checked, and one line per add-on says what it holds:
//!
//! ```text
//! Addon 3100000001.vpk: VPK v1, 1 file(s)
//! Addon 3100000001.vpk: file missions/3100000001_v1.txt
//! Addon broken.vpk: not a VPK (an HTML page, not a VPK header)
//! ```
//!
//! (one `file` line per file after the summary, so a test can tell versions of an item apart).
//! The lines go to the log at start and answer the stand-in-only console command
//! `left4me_addons` (a test hook; a real server has no such command).
//!
//! VPK layout: Valve Developer Community, "VPK (file format)": header `Signature`, `Version`,
//! `TreeSize` (version 2 adds four more u32), then the tree: extensions, each with
//! directories, each with files (`name\0`, CRC32, PreloadBytes, ArchiveIndex, EntryOffset,
//! EntryLength, terminator 0xffff, preload data), every level ended by an empty string. Data of
//! an entry with ArchiveIndex 0x7fff follows the tree in the same file.

use std::fs::File;
use std::io::Read;
use std::path::Path;

const SIGNATURE: u32 = 0x55aa_1234;
const INLINE: u16 = 0x7fff;
/// Trees larger than this are refused rather than read (real add-on trees are kilobytes).
const MAX_TREE: u32 = 64 << 20;

/// Why a file is not a VPK the game can mount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddonError {
    #[error("cannot read it: {0}")]
    Read(String),
    #[error("{0} bytes, too short for a VPK header")]
    Short(u64),
    #[error("an HTML page, not a VPK header")]
    Html,
    #[error("it starts with {0}, not the VPK signature 34 12 aa 55")]
    Signature(String),
    #[error("VPK version {0}; only 1 and 2 exist")]
    Version(u32),
    #[error("its directory tree is broken at byte {at}: {what}")]
    Tree { at: usize, what: &'static str },
    #[error("entry {0} points past the end of the file (truncated?)")]
    PastEnd(String),
}

/// What one VPK holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub version: u32,
    /// Paths inside the VPK (`dir/name.ext`), in tree order.
    pub files: Vec<String>,
}

/// The lines for every `*.vpk` in `<game_dir>/addons`, by file name; none when there is no
/// addons directory.
pub fn scan(game_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(game_dir.join("addons")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.to_ascii_lowercase().ends_with(".vpk"))
        .collect();
    names.sort();
    let mut lines = Vec::new();
    for name in names {
        match read(&game_dir.join("addons").join(&name)) {
            Ok(listing) => {
                lines.push(format!(
                    "Addon {name}: VPK v{}, {} file(s)",
                    listing.version,
                    listing.files.len()
                ));
                lines.extend(
                    listing
                        .files
                        .iter()
                        .map(|f| format!("Addon {name}: file {f}")),
                );
            }
            Err(err) => lines.push(format!("Addon {name}: not a VPK ({err})")),
        }
    }
    lines
}

/// Reads and checks one VPK directory file (following a symbolic link, as the game does).
pub fn read(path: &Path) -> Result<Listing, AddonError> {
    let mut file = File::open(path).map_err(|e| AddonError::Read(e.to_string()))?;
    let len = file
        .metadata()
        .map_err(|e| AddonError::Read(e.to_string()))?
        .len();
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(AddonError::Read("not a regular file".into()));
    }
    let mut head = [0u8; 28];
    let got = read_up_to(&mut file, &mut head)?;
    let head = &head[..got];
    if head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<') {
        return Err(AddonError::Html);
    }
    if head.len() < 12 {
        return Err(AddonError::Short(len));
    }
    let signature = u32_at(head, 0);
    if signature != SIGNATURE {
        let shown: Vec<String> = head[..4].iter().map(|b| format!("{b:02x}")).collect();
        return Err(AddonError::Signature(shown.join(" ")));
    }
    let version = u32_at(head, 4);
    let header_len = match version {
        1 => 12,
        2 => 28,
        other => return Err(AddonError::Version(other)),
    };
    if head.len() < header_len {
        return Err(AddonError::Short(len));
    }
    let tree_size = u32_at(head, 8);
    if tree_size > MAX_TREE || u64::from(tree_size) + header_len as u64 > len {
        return Err(AddonError::PastEnd("the directory tree".into()));
    }
    let mut tree = vec![0u8; tree_size as usize];
    let already = (got - header_len).min(tree.len());
    tree[..already].copy_from_slice(&head[header_len..header_len + already]);
    file.read_exact(&mut tree[already..])
        .map_err(|e| AddonError::Read(e.to_string()))?;
    let data_start = header_len as u64 + u64::from(tree_size);
    let files = parse_tree(&tree, |path, archive, offset, length| {
        let end = data_start + u64::from(offset) + u64::from(length);
        if archive == INLINE && end > len {
            Err(AddonError::PastEnd(path.to_owned()))
        } else {
            Ok(())
        }
    })?;
    Ok(Listing { version, files })
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> Result<usize, AddonError> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(AddonError::Read(e.to_string())),
        }
    }
    Ok(got)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Walks a directory tree; `check(path, archive_index, offset, length)` judges each entry.
fn parse_tree(
    tree: &[u8],
    mut check: impl FnMut(&str, u16, u32, u32) -> Result<(), AddonError>,
) -> Result<Vec<String>, AddonError> {
    let mut at = 0;
    let mut files = Vec::new();
    loop {
        let ext = cstr(tree, &mut at)?;
        if ext.is_empty() {
            return Ok(files);
        }
        loop {
            let dir = cstr(tree, &mut at)?;
            if dir.is_empty() {
                break;
            }
            loop {
                let name = cstr(tree, &mut at)?;
                if name.is_empty() {
                    break;
                }
                let entry = tree.get(at..at + 18).ok_or(AddonError::Tree {
                    at,
                    what: "an entry is cut short",
                })?;
                let archive = u16::from_le_bytes([entry[6], entry[7]]);
                let offset = u32_at(entry, 8);
                let length = u32_at(entry, 12);
                let preload = usize::from(u16::from_le_bytes([entry[4], entry[5]]));
                if u16::from_le_bytes([entry[16], entry[17]]) != 0xffff {
                    return Err(AddonError::Tree {
                        at: at + 16,
                        what: "an entry does not end with 0xffff",
                    });
                }
                at += 18 + preload;
                if at > tree.len() {
                    return Err(AddonError::Tree {
                        at,
                        what: "preload data runs past the tree",
                    });
                }
                let mut path = String::new();
                if dir != " " {
                    path.push_str(&dir);
                    path.push('/');
                }
                path.push_str(&name);
                if ext != " " {
                    path.push('.');
                    path.push_str(&ext);
                }
                check(&path, archive, offset, length)?;
                files.push(path);
            }
        }
    }
}

fn cstr(tree: &[u8], at: &mut usize) -> Result<String, AddonError> {
    let rest = tree.get(*at..).unwrap_or_default();
    let end = rest.iter().position(|&b| b == 0).ok_or(AddonError::Tree {
        at: *at,
        what: "a name has no NUL terminator",
    })?;
    let text = String::from_utf8_lossy(&rest[..end]).into_owned();
    *at += end + 1;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v1 VPK with one inline file `dir/name.ext` (written by hand, independent of the
    /// workshop stand-in's writer, which the integration tests use).
    fn one_file(data: &[u8]) -> Vec<u8> {
        let mut tree = b"txt\0missions\0m\0".to_vec();
        tree.extend([0; 4]); // CRC (not checked at mount)
        tree.extend(0u16.to_le_bytes());
        tree.extend(INLINE.to_le_bytes());
        tree.extend(0u32.to_le_bytes());
        tree.extend((data.len() as u32).to_le_bytes());
        tree.extend(0xffffu16.to_le_bytes());
        tree.extend(b"\0\0\0");
        let mut out = SIGNATURE.to_le_bytes().to_vec();
        out.extend(1u32.to_le_bytes());
        out.extend((tree.len() as u32).to_le_bytes());
        out.extend(tree);
        out.extend(data);
        out
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        std::fs::write(dir.join("addons").join(name), bytes).unwrap();
    }

    #[test]
    fn lists_good_and_refuses_bad_addons_by_name() {
        let game = std::env::temp_dir().join(format!("standin-addons-{}", std::process::id()));
        std::fs::create_dir_all(game.join("addons")).unwrap();
        write(&game, "2.vpk", &one_file(b"hello"));
        write(&game, "1.vpk", b"<!DOCTYPE html><html>");
        let mut cut = one_file(b"hello");
        cut.truncate(cut.len() - 2);
        write(&game, "3.vpk", &cut);
        write(&game, "4.vpk", b"PK\x03\x04 not a vpk at all");
        write(&game, "notes.txt", b"ignored");
        let lines = scan(&game);
        std::fs::remove_dir_all(&game).unwrap();
        assert_eq!(
            lines,
            vec![
                "Addon 1.vpk: not a VPK (an HTML page, not a VPK header)",
                "Addon 2.vpk: VPK v1, 1 file(s)",
                "Addon 2.vpk: file missions/m.txt",
                "Addon 3.vpk: not a VPK (entry missions/m.txt points past the end of the file (truncated?))",
                "Addon 4.vpk: not a VPK (it starts with 50 4b 03 04, not the VPK signature 34 12 aa 55)",
            ]
        );
    }

    #[test]
    fn refuses_broken_trees() {
        let mut bad = one_file(b"x");
        let terminator = 12 + 15 + 16;
        bad[terminator] = 0;
        let path = std::env::temp_dir().join(format!("standin-bad-{}.vpk", std::process::id()));
        std::fs::write(&path, &bad).unwrap();
        let err = read(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(err, AddonError::Tree { .. }), "{err}");
        assert_eq!(scan(Path::new("/nonexistent")), Vec::<String>::new());
    }
}
