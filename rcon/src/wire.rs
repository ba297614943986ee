//! The bytes of Source RCON (Valve Developer Community, "Source RCON Protocol").
//!
//! A packet is `size id type body 0x00 0x00`: `size`, `id` and `type` are signed 32-bit little
//! endian; `size` counts the bytes after itself (so at least 10: id, type and the two NULs).
//! The body is text without NULs.
//!
//! Packet types: the client sends `SERVERDATA_AUTH` (3) and `SERVERDATA_EXECCOMMAND` (2); the
//! server answers with `SERVERDATA_AUTH_RESPONSE` (2 as well: the direction tells them apart)
//! and `SERVERDATA_RESPONSE_VALUE` (0).

/// `SERVERDATA_AUTH`: the password, sent first.
pub const SERVERDATA_AUTH: i32 = 3;
/// `SERVERDATA_AUTH_RESPONSE`: the server's verdict on the password (id -1: wrong).
pub const SERVERDATA_AUTH_RESPONSE: i32 = 2;
/// `SERVERDATA_EXECCOMMAND`: a console command.
pub const SERVERDATA_EXECCOMMAND: i32 = 2;
/// `SERVERDATA_RESPONSE_VALUE`: (part of) a command's output.
pub const SERVERDATA_RESPONSE_VALUE: i32 = 0;

/// The id the server puts in `SERVERDATA_AUTH_RESPONSE` for a wrong password.
pub const AUTH_FAILED_ID: i32 = -1;

/// The smallest `size`: id, type and two NULs around an empty body.
pub const MIN_SIZE: usize = 10;
/// The largest body this decoder accepts. The wiki gives 4096 as the largest packet a server
/// sends; a 4096-byte *body* is allowed too, so a server that counts differently still works.
pub const MAX_BODY: usize = 4096;
/// The largest command [`Packet::encode`] is asked to send: a packet of `size` 4096, the
/// largest the wiki says a server accepts.
pub const MAX_COMMAND: usize = 4096 - MIN_SIZE;

/// Bytes that are not a Source RCON packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// `size` below 10 or above what a body of [`MAX_BODY`] bytes needs.
    #[error(
        "RCON packet size {size} is outside {MIN_SIZE}..={}: not a Source RCON server",
        MAX_BODY + MIN_SIZE
    )]
    BadSize { size: i32 },
    /// No NUL ends the body of packet `id` within [`MAX_BODY`] bytes.
    #[error(
        "RCON packet {id} has no NUL within {MAX_BODY} bytes of its body: not a Source RCON server"
    )]
    Unterminated { id: i32 },
}

/// One RCON packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub id: i32,
    pub kind: i32,
    /// The body, without its terminating NULs.
    pub body: Vec<u8>,
}

impl Packet {
    pub fn new(id: i32, kind: i32, body: impl Into<Vec<u8>>) -> Self {
        Self {
            id,
            kind,
            body: body.into(),
        }
    }

    /// The packet on the wire. The caller keeps `body` free of NULs and at most
    /// [`MAX_COMMAND`] bytes (the client checks both).
    pub fn encode(&self) -> Vec<u8> {
        let size = self.body.len() + MIN_SIZE;
        let mut out = Vec::with_capacity(size + 4);
        // A body of at most MAX_BODY bytes keeps this far below i32::MAX.
        out.extend_from_slice(&(size as i32).to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&[0, 0]);
        out
    }
}

/// Turns a byte stream into packets: [`Decoder::push`] what was read, then take packets with
/// [`Decoder::next_packet`] until it returns `None`.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole packet, `None` when more bytes are needed. After an error the stream is
    /// out of step for good: the caller drops the connection.
    pub fn next_packet(&mut self) -> Result<Option<Packet>, WireError> {
        let Some(size) = self.buf.first_chunk::<4>().map(|b| i32::from_le_bytes(*b)) else {
            return Ok(None);
        };
        let len = usize::try_from(size)
            .ok()
            .filter(|len| (MIN_SIZE..=MAX_BODY + MIN_SIZE).contains(len))
            .ok_or(WireError::BadSize { size })?;
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let packet: Vec<u8> = self.buf.drain(..4 + len).skip(4).collect();
        let id = i32::from_le_bytes([packet[0], packet[1], packet[2], packet[3]]);
        let kind = i32::from_le_bytes([packet[4], packet[5], packet[6], packet[7]]);
        // The body ends at its NUL terminator, at most MAX_BODY bytes in; servers differ in
        // what follows it (the empty string's NUL, or nothing at all), so anything after the
        // first NUL is ignored.
        let body = &packet[8..];
        let end = body
            .iter()
            .take(MAX_BODY + 1)
            .position(|&b| b == 0)
            .ok_or(WireError::Unterminated { id })?;
        Ok(Some(Packet::new(id, kind, &body[..end])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Vec<Packet>, WireError> {
        let mut decoder = Decoder::new();
        decoder.push(bytes);
        let mut packets = Vec::new();
        while let Some(packet) = decoder.next_packet()? {
            packets.push(packet);
        }
        Ok(packets)
    }

    #[test]
    fn encodes_the_wiki_example() {
        // "Source RCON Protocol", example of an auth packet with password "passwrd", id 0.
        let packet = Packet::new(0, SERVERDATA_AUTH, "passwrd").encode();
        assert_eq!(
            packet,
            [
                0x11, 0, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, b'p', b'a', b's', b's', b'w', b'r', b'd',
                0, 0
            ]
        );
    }

    #[test]
    fn decodes_what_it_encodes() {
        let packet = Packet::new(7, SERVERDATA_RESPONSE_VALUE, "hostname: left4me");
        assert_eq!(decode_all(&packet.encode()).unwrap(), [packet]);
    }

    #[test]
    fn decodes_two_packets_in_one_read_and_one_packet_in_many() {
        // srcds answers an auth with an empty RESPONSE_VALUE and the AUTH_RESPONSE, usually in
        // one TCP segment.
        let mut burst = Packet::new(5, SERVERDATA_RESPONSE_VALUE, "").encode();
        burst.extend(Packet::new(5, SERVERDATA_AUTH_RESPONSE, "").encode());
        let packets = decode_all(&burst).unwrap();
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[1].kind, SERVERDATA_AUTH_RESPONSE);

        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        for byte in Packet::new(9, 0, "split").encode() {
            decoder.push(&[byte]);
            got.extend(decoder.next_packet().unwrap());
        }
        assert_eq!(got, [Packet::new(9, 0, "split")]);
    }

    #[test]
    fn accepts_a_body_with_one_nul_and_the_trailing_empty_packet_reply() {
        // Some servers end the body with a single NUL.
        let mut bytes = 11i32.to_le_bytes().to_vec();
        bytes.extend(3i32.to_le_bytes());
        bytes.extend(0i32.to_le_bytes());
        bytes.extend(b"ab\0");
        assert_eq!(decode_all(&bytes).unwrap(), [Packet::new(3, 0, "ab")]);
        // srcds follows the mirrored empty packet with a body of 0x00 0x01 0x00 0x00.
        let mut bytes = 14i32.to_le_bytes().to_vec();
        bytes.extend(4i32.to_le_bytes());
        bytes.extend(0i32.to_le_bytes());
        bytes.extend([0, 1, 0, 0, 0, 0]);
        assert_eq!(decode_all(&bytes).unwrap(), [Packet::new(4, 0, "")]);
    }

    #[test]
    fn refuses_sizes_outside_the_protocol() {
        for size in [-1, 0, 9, (MAX_BODY + MIN_SIZE + 1) as i32, i32::MAX] {
            let mut bytes = size.to_le_bytes().to_vec();
            bytes.extend([0; 16]);
            assert_eq!(decode_all(&bytes), Err(WireError::BadSize { size }));
        }
        let largest = Packet::new(1, 0, vec![b'x'; MAX_BODY]).encode();
        assert_eq!(decode_all(&largest).unwrap()[0].body.len(), MAX_BODY);
    }

    #[test]
    fn refuses_a_body_without_its_nul() {
        // Found by the fuzzer: the largest size with no NUL at all once gave a body of
        // MAX_BODY + 2 bytes.
        let mut bytes = ((MAX_BODY + MIN_SIZE) as i32).to_le_bytes().to_vec();
        bytes.extend(8i32.to_le_bytes());
        bytes.extend(0i32.to_le_bytes());
        bytes.extend(vec![b'C'; MAX_BODY + 2]);
        assert_eq!(decode_all(&bytes), Err(WireError::Unterminated { id: 8 }));
        // Found next: the largest size with a single NUL after MAX_BODY + 1 bytes.
        let mut bytes = ((MAX_BODY + MIN_SIZE) as i32).to_le_bytes().to_vec();
        bytes.extend(8i32.to_le_bytes());
        bytes.extend(0i32.to_le_bytes());
        bytes.extend(vec![b'C'; MAX_BODY + 1]);
        bytes.push(0);
        assert_eq!(decode_all(&bytes), Err(WireError::Unterminated { id: 8 }));
    }

    #[test]
    fn waits_for_the_rest_of_a_packet() {
        let bytes = Packet::new(1, 0, "partial").encode();
        let mut decoder = Decoder::new();
        decoder.push(&bytes[..bytes.len() - 1]);
        assert_eq!(decoder.next_packet(), Ok(None));
        decoder.push(&bytes[bytes.len() - 1..]);
        assert!(decoder.next_packet().unwrap().is_some());
        assert_eq!(decoder.next_packet(), Ok(None));
    }
}
