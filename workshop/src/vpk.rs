//! The VPK check: a downloaded workshop file must start with Valve's VPK header, or it is not
//! what the Steam Web API promised (an HTML error page served with status 200, a truncated
//! transfer, the wrong file).
//!
//! A VPK directory file starts with `Signature` 0x55aa1234 and `Version` (1 or 2), both
//! little-endian u32 (Valve Developer Community, "VPK (file format)"). L4D2's workshop items
//! are single-file VPKs of version 1.

/// `Signature`, little-endian.
pub const VPK_SIGNATURE: u32 = 0x55aa_1234;

/// The bytes [`check_header`] needs.
pub const HEADER_LEN: usize = 8;

/// Why a file is not a VPK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VpkError {
    #[error("{0} bytes, too short for a VPK header")]
    Short(usize),
    #[error("an HTML page, not a VPK (an error page served in its place?)")]
    Html,
    #[error("not a VPK: it starts with {0} instead of the VPK signature 34 12 aa 55")]
    Signature(String),
    #[error("VPK version {0}; only versions 1 and 2 exist")]
    Version(u32),
}

/// Checks the first bytes of a file (at least [`HEADER_LEN`] of them).
pub fn check_header(head: &[u8]) -> Result<(), VpkError> {
    if looks_like_html(head) {
        return Err(VpkError::Html);
    }
    let (Some(sig), Some(version)) = (word(head, 0), word(head, 4)) else {
        return Err(VpkError::Short(head.len()));
    };
    if sig != VPK_SIGNATURE {
        let shown: Vec<String> = head[..4].iter().map(|b| format!("{b:02x}")).collect();
        return Err(VpkError::Signature(shown.join(" ")));
    }
    match version {
        1 | 2 => Ok(()),
        other => Err(VpkError::Version(other)),
    }
}

fn word(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Whether the bytes start (after blanks) with `<`, as every HTML page does.
fn looks_like_html(head: &[u8]) -> bool {
    head.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'<')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_vpk_versions_1_and_2() {
        let mut head = VPK_SIGNATURE.to_le_bytes().to_vec();
        head.extend(1u32.to_le_bytes());
        assert_eq!(check_header(&head), Ok(()));
        head[4] = 2;
        assert_eq!(check_header(&head), Ok(()));
        head[4] = 3;
        assert_eq!(check_header(&head), Err(VpkError::Version(3)));
    }

    #[test]
    fn refuses_html_short_and_foreign_files() {
        assert_eq!(check_header(b"<!DOCTYPE html><html>"), Err(VpkError::Html));
        assert_eq!(check_header(b"\n  <html>"), Err(VpkError::Html));
        assert_eq!(check_header(b"\x34\x12"), Err(VpkError::Short(2)));
        assert!(matches!(
            check_header(b"PK\x03\x04\x14\x00\x00\x00"),
            Err(VpkError::Signature(s)) if s == "50 4b 03 04"
        ));
    }
}
