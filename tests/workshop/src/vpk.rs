//! A VPK writer: the single-file VPK archives (version 1) that Left 4 Dead 2 workshop items are.
//!
//! Layout (Valve Developer Community, "VPK (file format)"; all numbers little-endian):
//!
//! ```text
//! header   u32 Signature 0x55aa1234, u32 Version 1, u32 TreeSize (bytes of the tree below)
//! tree     for each extension:  "ext\0"
//!            for each directory: "dir\0"
//!              for each file:     "name\0" u32 CRC32, u16 PreloadBytes 0, u16 ArchiveIndex 0x7fff,
//!                                 u32 EntryOffset, u32 EntryLength, u16 Terminator 0xffff
//!              "\0"               (end of the directory's files)
//!            "\0"                 (end of the extension's directories)
//!          "\0"                   (end of the tree)
//! data     the files' bytes, each at EntryOffset counted from the end of the tree
//! ```
//!
//! ArchiveIndex 0x7fff says "the data is in this file, after the tree". A file in the root has
//! the directory `" "` (one space) and a file without extension the extension `" "`, as Valve's
//! tools write them.

use std::collections::BTreeMap;

/// `Signature`.
pub const SIGNATURE: u32 = 0x55aa_1234;

/// `ArchiveIndex` of an entry whose data follows the tree in the directory file itself.
pub const ARCHIVE_INDEX_INLINE: u16 = 0x7fff;

/// Extension -> directory -> files (name without extension, data), grouped as Valve groups them.
type Tree<'a> = BTreeMap<String, BTreeMap<String, Vec<(String, &'a [u8])>>>;

/// Builds a VPK version 1 archive holding `files` (`path` with `/` separators, `data`).
///
/// Panics on a path with an empty file name, a NUL byte, or an entry over 4 GiB: these are
/// fixtures written by tests, not input.
pub fn build(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tree: Tree = BTreeMap::new();
    for &(path, data) in files {
        assert!(!path.contains('\0'), "VPK path {path:?} contains NUL");
        let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
        let (name, ext) = file.rsplit_once('.').unwrap_or((file, ""));
        assert!(!name.is_empty(), "VPK path {path:?} has no file name");
        tree.entry(or_space(ext))
            .or_default()
            .entry(or_space(dir))
            .or_default()
            .push((name.to_owned(), data));
    }

    let mut dir_tree = Vec::new();
    let mut data_area = Vec::new();
    for (ext, dirs) in &tree {
        push_cstr(&mut dir_tree, ext);
        for (dir, names) in dirs {
            push_cstr(&mut dir_tree, dir);
            for (name, data) in names {
                push_cstr(&mut dir_tree, name);
                let offset = u32::try_from(data_area.len()).expect("VPK data over 4 GiB");
                let length = u32::try_from(data.len()).expect("VPK entry over 4 GiB");
                dir_tree.extend(crc32(data).to_le_bytes());
                dir_tree.extend(0u16.to_le_bytes()); // PreloadBytes
                dir_tree.extend(ARCHIVE_INDEX_INLINE.to_le_bytes());
                dir_tree.extend(offset.to_le_bytes());
                dir_tree.extend(length.to_le_bytes());
                dir_tree.extend(0xffffu16.to_le_bytes());
                data_area.extend_from_slice(data);
            }
            dir_tree.push(0);
        }
        dir_tree.push(0);
    }
    dir_tree.push(0);

    let tree_size = u32::try_from(dir_tree.len()).expect("VPK tree over 4 GiB");
    let mut out = Vec::with_capacity(12 + dir_tree.len() + data_area.len());
    out.extend(SIGNATURE.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    out.extend(tree_size.to_le_bytes());
    out.extend(dir_tree);
    out.extend(data_area);
    out
}

fn or_space(part: &str) -> String {
    if part.is_empty() {
        " ".into()
    } else {
        part.into()
    }
}

fn push_cstr(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xedb88320): the checksum VPK entries carry, the
/// same as zlib's `crc32`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn writes_header_tree_and_data() {
        let vpk = build(&[("missions/1_v1.txt", b"hello"), ("readme", b"x")]);
        assert_eq!(&vpk[..4], &[0x34, 0x12, 0xaa, 0x55]);
        assert_eq!(u32::from_le_bytes(vpk[4..8].try_into().unwrap()), 1);
        let tree_size = u32::from_le_bytes(vpk[8..12].try_into().unwrap()) as usize;
        // " " ext: " " dir: "readme" entry; "txt" ext: "missions" dir: "1_v1" entry.
        let expected_tree = 2 + 2 + 7 + 18 + 1 + 1 + 4 + 9 + 5 + 18 + 1 + 1 + 1;
        assert_eq!(tree_size, expected_tree);
        assert_eq!(vpk.len(), 12 + tree_size + 6);
        assert_eq!(&vpk[12..14], b" \0");
        assert_eq!(&vpk[12 + tree_size..], b"xhello");
    }
}
