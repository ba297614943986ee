//! Printing names and paths that came from outside (a file name in a config dir, a script's
//! output) so that one line stays one line: control characters and bytes that are not UTF-8 are
//! shown as `\xNN`, never sent to a terminal, the journal or the kernel log as they are.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

/// `text`, displayed with control characters and invalid UTF-8 escaped as `\xNN`.
#[derive(Debug, Clone, Copy)]
pub struct Printable<'a>(&'a [u8]);

/// `path` for a message (see [`Printable`]).
pub fn path(path: &Path) -> Printable<'_> {
    Printable(path.as_os_str().as_bytes())
}

/// `text` for a message (see [`Printable`]).
pub fn text(text: &OsStr) -> Printable<'_> {
    Printable(text.as_bytes())
}

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() {
                    write!(f, "\\x{:02x}", c as u32)?;
                } else {
                    write!(f, "{c}")?;
                }
            }
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_bad_bytes_are_escaped() {
        let shown = |bytes: &[u8]| path(Path::new(OsStr::from_bytes(bytes))).to_string();
        assert_eq!(
            shown(b"/etc/left4me/instances/coop1.toml"),
            "/etc/left4me/instances/coop1.toml"
        );
        assert_eq!(shown(b"a\nb.toml"), "a\\x0ab.toml");
        assert_eq!(shown(b"\x1b[31mred"), "\\x1b[31mred");
        assert_eq!(shown(b"caf\xc3\xa9 \xff"), "caf\u{e9} \\xff");
        assert_eq!(shown(b"\x7f\xc2\x85"), "\\x7f\\x85");
    }
}
