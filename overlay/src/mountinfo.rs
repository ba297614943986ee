//! Parsing `/proc/self/mountinfo` (proc(5)), as bytes: paths need not be UTF-8.
//!
//! What Linux 6.18 shows for an overlay mounted with `lowerdir+` (strings or file descriptors):
//!
//! ```text
//! 46 42 0:40 / /s/runtime/x/merged rw,nosuid,nodev,relatime - overlay left4me:x:… rw,lowerdir+=/s/overlays/b,lowerdir+=/s/installation,upperdir=/s/runtime/x/upper,workdir=/s/runtime/x/work,uuid=on
//! ```
//!
//! A layer given by file descriptor is shown as its path (`d_path`); a layer given as a string is
//! shown as that string (so `/proc/self/fd/N` for our fallbacks). Classic `mount(2)` shows one
//! `lowerdir=a:b` option. Values are escaped with octal `\NNN` for `,= \t\n\\`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfoEntry {
    pub mount_id: u64,
    pub parent_id: u64,
    /// Where the mount is, relative to the reading process' root.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw`, `nosuid`, `nodev`, `relatime` …).
    pub mount_options: Vec<String>,
    pub fs_type: String,
    pub source: String,
    /// Per-superblock options, unescaped.
    pub super_options: Vec<OsString>,
}

/// The layers an overlay mount shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlayLayers {
    /// Topmost first.
    pub lowerdirs: Vec<PathBuf>,
    pub upperdir: Option<PathBuf>,
    pub workdir: Option<PathBuf>,
}

/// A mountinfo line that does not have the documented shape.
#[derive(Debug, thiserror::Error)]
pub enum MountInfoError {
    #[error("/proc/self/mountinfo line {line}: {reason}: is /proc a real procfs?")]
    Malformed { line: usize, reason: &'static str },
}

/// Undoes the kernel's octal escapes (`\040` → space).
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && i + 3 < field.len()
            && field[i + 1..i + 4]
                .iter()
                .all(|d| (b'0'..=b'7').contains(d))
        {
            let value = field[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(value as u8);
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(&unescape(field)).into_owned()
}

fn path(field: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape(field)))
}

/// Parses every line.
pub fn parse(mountinfo: &[u8]) -> Result<Vec<MountInfoEntry>, MountInfoError> {
    mountinfo
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(index, line)| {
            parse_line(line).map_err(|reason| MountInfoError::Malformed {
                line: index + 1,
                reason,
            })
        })
        .collect()
}

fn parse_line(line: &[u8]) -> Result<MountInfoEntry, &'static str> {
    let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
    let separator = fields
        .iter()
        .skip(6)
        .position(|f| *f == b"-")
        .map(|p| p + 6)
        .ok_or("no ` - ` separator")?;
    if fields.len() < separator + 4 {
        return Err("too few fields");
    }
    let number = |f: &[u8]| -> Result<u64, &'static str> {
        std::str::from_utf8(f)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("mount id is not a number")
    };
    Ok(MountInfoEntry {
        mount_id: number(fields[0])?,
        parent_id: number(fields[1])?,
        mount_point: path(fields[4]),
        mount_options: fields[5].split(|b| *b == b',').map(text).collect(),
        fs_type: text(fields[separator + 1]),
        source: text(fields[separator + 2]),
        super_options: fields[separator + 3]
            .split(|b| *b == b',')
            .map(|o| OsString::from_vec(unescape(o)))
            .collect(),
    })
}

/// Finds the line of one mount id.
pub fn find(entries: &[MountInfoEntry], mount_id: u64) -> Option<&MountInfoEntry> {
    entries.iter().find(|e| e.mount_id == mount_id)
}

impl MountInfoEntry {
    /// Whether a per-mount option (`nosuid`, `nodev` …) is set.
    pub fn has_mount_option(&self, option: &str) -> bool {
        self.mount_options.iter().any(|o| o == option)
    }

    /// The overlay layers of an overlay mount (empty for anything else).
    pub fn overlay_layers(&self) -> OverlayLayers {
        use std::os::unix::ffi::OsStrExt;
        let mut layers = OverlayLayers::default();
        for option in &self.super_options {
            let bytes = option.as_bytes();
            let Some(eq) = bytes.iter().position(|b| *b == b'=') else {
                continue;
            };
            let (key, value) = (&bytes[..eq], &bytes[eq + 1..]);
            let path = || PathBuf::from(OsString::from_vec(value.to_vec()));
            match key {
                b"lowerdir+" => layers.lowerdirs.push(path()),
                b"lowerdir" => layers.lowerdirs.extend(split_lowerdir(value)),
                b"upperdir" => layers.upperdir = Some(path()),
                b"workdir" => layers.workdir = Some(path()),
                _ => {}
            }
        }
        layers
    }
}

/// Splits a classic `lowerdir=a:b` value on unescaped colons (overlayfs escapes `:` in names
/// with a backslash).
fn split_lowerdir(value: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = value.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => {
                if let Some(&next) = bytes.next() {
                    current.push(next);
                }
            }
            // Data-only layers are separated by `::`; an empty piece carries no path.
            b':' => {
                if !current.is_empty() {
                    out.push(PathBuf::from(OsString::from_vec(std::mem::take(
                        &mut current,
                    ))));
                }
            }
            _ => current.push(b),
        }
    }
    if !current.is_empty() {
        out.push(PathBuf::from(OsString::from_vec(current)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SAMPLE: &[u8] = b"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n\
46 27 0:40 / /tmp/a\\040b/merged rw,nosuid,nodev,relatime shared:5 - overlay left4me:x:00ff rw,lowerdir+=/s/overlays/b\\054c,lowerdir+=/s/installation,upperdir=/s/runtime/x/upper,workdir=/s/runtime/x/work,uuid=on\n\
47 27 0:41 / /mnt rw,relatime - overlay none rw,lowerdir=/proc/self/fd/4:/proc/self/fd/3:/x\\:y,upperdir=/proc/self/fd/5,workdir=/proc/self/fd/6\n";

    #[test]
    fn parses_lowerdir_plus() {
        let entries = parse(SAMPLE).unwrap();
        assert_eq!(entries.len(), 3);
        let e = find(&entries, 46).unwrap();
        assert_eq!(e.parent_id, 27);
        assert_eq!(e.mount_point, Path::new("/tmp/a b/merged"));
        assert!(e.has_mount_option("nosuid") && e.has_mount_option("nodev"));
        assert!(!e.has_mount_option("ro"));
        assert_eq!(e.fs_type, "overlay");
        assert_eq!(e.source, "left4me:x:00ff");
        let layers = e.overlay_layers();
        assert_eq!(
            layers.lowerdirs,
            [Path::new("/s/overlays/b,c"), "/s/installation".as_ref()]
        );
        assert_eq!(
            layers.upperdir.as_deref(),
            Some(Path::new("/s/runtime/x/upper"))
        );
        assert_eq!(
            layers.workdir.as_deref(),
            Some(Path::new("/s/runtime/x/work"))
        );
    }

    #[test]
    fn parses_classic_lowerdir() {
        let entries = parse(SAMPLE).unwrap();
        let layers = find(&entries, 47).unwrap().overlay_layers();
        assert_eq!(
            layers.lowerdirs,
            [
                Path::new("/proc/self/fd/4"),
                "/proc/self/fd/3".as_ref(),
                "/x:y".as_ref()
            ]
        );
        assert_eq!(
            find(&entries, 27).unwrap().overlay_layers(),
            OverlayLayers::default()
        );
    }

    #[test]
    fn unescapes_octal_only() {
        assert_eq!(unescape(b"a\\040b\\134\\x\\12"), b"a b\\\\x\\12");
    }

    #[test]
    fn malformed() {
        let e = parse(b"27 1 254:0 / / rw\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/proc/self/mountinfo line 1: no ` - ` separator: is /proc a real procfs?"
        );
        assert!(parse(b"x 1 254:0 / / rw - ext4 /dev/vda rw\n").is_err());
    }

    #[test]
    fn reads_this_machine() {
        let text = std::fs::read("/proc/self/mountinfo").unwrap();
        let entries = parse(&text).unwrap();
        assert!(entries.iter().any(|e| e.mount_point == Path::new("/")));
    }
}
