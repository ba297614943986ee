//! The A2S wire format: datagram headers, split-reply reassembly, request building and reply
//! parsing, on bytes only — no sockets, no clock. Every parse function takes untrusted bytes and
//! returns a [`WireError`] rather than panicking, so a fuzz target can call them directly.
//!
//! Scope: Source engine servers as Left 4 Dead 2 runs them. Split replies carry the Source header
//! with the `size` field (Orange Box engine and later); a bzip2-compressed split reply (which L4D2
//! never sends) is reported as [`WireError::Compressed`]. GoldSource replies (`m`) and The Ship's
//! extra fields (app 2400) are not parsed.

/// Header of a reply that fits one datagram (-1 as a little-endian long).
pub const SINGLE_HEADER: [u8; 4] = [0xFF, 0xFF, 0xFF, 0xFF];
/// Header of one datagram of a split reply (-2 as a little-endian long).
pub const SPLIT_HEADER: [u8; 4] = [0xFE, 0xFF, 0xFF, 0xFF];
/// Bit of the split id that says the reply was bzip2-compressed before being cut.
const COMPRESSED_BIT: u32 = 0x8000_0000;

/// Type byte of S2C_CHALLENGE: the server wants the request again with these 4 bytes.
pub const S2C_CHALLENGE: u8 = 0x41;
const A2S_INFO: u8 = 0x54;
const S2A_INFO: u8 = 0x49;
const A2S_PLAYER: u8 = 0x55;
const S2A_PLAYER: u8 = 0x44;
const A2S_RULES: u8 = 0x56;
const S2A_RULES: u8 = 0x45;
const INFO_PAYLOAD: &[u8] = b"Source Engine Query\0";
/// What A2S_PLAYER and A2S_RULES send before they have a challenge.
const NO_CHALLENGE: [u8; 4] = [0xFF, 0xFF, 0xFF, 0xFF];

/// Why received bytes are not a reply this parser understands.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Too short, a wrong type byte, an unterminated string, a bad header.
    #[error("malformed A2S reply: {reason}")]
    Malformed { reason: String },
    /// The split reply was bzip2-compressed; Left 4 Dead 2 never does that.
    #[error(
        "A2S reply is bzip2-compressed (split id {id:#010x}); compressed replies are not \
         supported (Left 4 Dead 2 never sends them)"
    )]
    Compressed { id: u32 },
}

fn malformed(reason: impl Into<String>) -> WireError {
    WireError::Malformed {
        reason: reason.into(),
    }
}

/// `server type` byte of an A2S_INFO reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerType {
    /// `d`
    Dedicated,
    /// `l`
    NonDedicated,
    /// `p`: a SourceTV relay.
    SourceTv,
    /// Any other byte, kept as sent.
    Other(u8),
}

impl From<u8> for ServerType {
    fn from(byte: u8) -> Self {
        match byte.to_ascii_lowercase() {
            b'd' => Self::Dedicated,
            b'l' => Self::NonDedicated,
            b'p' => Self::SourceTv,
            _ => Self::Other(byte),
        }
    }
}

/// `environment` byte of an A2S_INFO reply: the server's operating system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// `l`
    Linux,
    /// `w`
    Windows,
    /// `m` or the older `o`
    Mac,
    /// Any other byte, kept as sent.
    Other(u8),
}

impl From<u8> for Environment {
    fn from(byte: u8) -> Self {
        match byte.to_ascii_lowercase() {
            b'l' => Self::Linux,
            b'w' => Self::Windows,
            b'm' | b'o' => Self::Mac,
            _ => Self::Other(byte),
        }
    }
}

/// `visibility` byte of an A2S_INFO reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// 0: no password.
    Public,
    /// 1 (or anything else): a password is needed to join.
    Private,
}

/// The SourceTV part of the extra data (EDF bit 0x40).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTv {
    pub port: u16,
    pub name: String,
}

/// A parsed A2S_INFO (0x49) reply. Strings are decoded as UTF-8, invalid bytes replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub protocol: u8,
    pub name: String,
    pub map: String,
    /// The game directory, `left4dead2` for L4D2.
    pub folder: String,
    pub game: String,
    /// Steam app id (550 for L4D2); the low 16 bits only, see `game_id` for the full one.
    pub app_id: u16,
    /// Players on the server, bots included.
    pub players: u8,
    pub max_players: u8,
    pub bots: u8,
    pub server_type: ServerType,
    pub environment: Environment,
    pub visibility: Visibility,
    /// The server is VAC secured.
    pub vac: bool,
    pub version: String,
    /// EDF 0x80: the game port.
    pub port: Option<u16>,
    /// EDF 0x10: the server's SteamID.
    pub steam_id: Option<u64>,
    /// EDF 0x40: SourceTV port and name.
    pub source_tv: Option<SourceTv>,
    /// EDF 0x20: the tags (`sv_tags`).
    pub keywords: Option<String>,
    /// EDF 0x01: the 64-bit game id (its low 24 bits are the app id).
    pub game_id: Option<u64>,
}

/// One entry of an A2S_PLAYER (0x44) reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Player {
    /// Slot index as sent (Source servers often send 0 for everyone).
    pub index: u8,
    pub name: String,
    pub score: i32,
    /// Seconds connected.
    pub duration: f32,
}

/// One entry of an A2S_RULES (0x45) reply: a public cvar and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub value: String,
}

/// One received datagram, header decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// A whole reply: the message, starting with its type byte.
    Single(&'a [u8]),
    /// One piece of a split reply.
    Fragment(Fragment<'a>),
}

/// One datagram of a Source split reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// Same for every piece of one reply.
    pub id: u32,
    /// Number of pieces in the reply.
    pub total: u8,
    /// This piece's place, from 0.
    pub number: u8,
    /// The server's split size (1248 by default).
    pub size: u16,
    pub payload: &'a [u8],
}

/// Decode the header of one datagram as a Source server sends it.
pub fn decode_datagram(datagram: &[u8]) -> Result<Datagram<'_>, WireError> {
    let Some((header, rest)) = datagram.split_first_chunk::<4>() else {
        return Err(malformed(format!(
            "datagram of {} bytes is shorter than its 4-byte header",
            datagram.len()
        )));
    };
    match *header {
        SINGLE_HEADER => Ok(Datagram::Single(rest)),
        SPLIT_HEADER => {
            let mut reader = Reader::new("split reply header", rest);
            let id = reader.u32("id")?;
            if id & COMPRESSED_BIT != 0 {
                return Err(WireError::Compressed { id });
            }
            let total = reader.u8("total")?;
            let number = reader.u8("number")?;
            let size = reader.u16("size")?;
            if total == 0 || number >= total {
                return Err(malformed(format!(
                    "split reply piece {number} of {total} is out of range"
                )));
            }
            Ok(Datagram::Fragment(Fragment {
                id,
                total,
                number,
                size,
                payload: reader.rest(),
            }))
        }
        other => Err(malformed(format!(
            "unknown datagram header {other:02X?} (expected FF FF FF FF or FE FF FF FF)"
        ))),
    }
}

/// Collects the pieces of one split reply, in any order.
#[derive(Debug, Default)]
pub struct Reassembly {
    id: u32,
    pieces: Vec<Option<Vec<u8>>>,
}

impl Reassembly {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one piece. Returns the whole message (starting with its type byte) once every piece is
    /// in. A piece of another reply (an older one arriving late, or a newer one) discards what was
    /// collected and starts over with that reply.
    pub fn add(&mut self, fragment: Fragment<'_>) -> Result<Option<Vec<u8>>, WireError> {
        if self.pieces.is_empty() || fragment.id != self.id {
            self.id = fragment.id;
            self.pieces = vec![None; usize::from(fragment.total)];
        }
        if self.pieces.len() != usize::from(fragment.total) {
            return Err(malformed(format!(
                "split reply {:#x} changed its piece count from {} to {}",
                fragment.id,
                self.pieces.len(),
                fragment.total
            )));
        }
        // `decode_datagram` checked the number; a `Fragment` built by hand may not have been.
        let Some(piece) = self.pieces.get_mut(usize::from(fragment.number)) else {
            return Err(malformed(format!(
                "split reply piece {} of {} is out of range",
                fragment.number, fragment.total
            )));
        };
        *piece = Some(fragment.payload.to_vec());
        if self.pieces.iter().any(Option::is_none) {
            return Ok(None);
        }
        let mut message: Vec<u8> = std::mem::take(&mut self.pieces)
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        // Source servers put the single-reply header at the start of the joined payload.
        if message.starts_with(&SINGLE_HEADER) {
            message.drain(..SINGLE_HEADER.len());
        }
        Ok(Some(message))
    }
}

/// The A2S_INFO request, with the challenge appended when the server asked for one.
pub fn info_request(challenge: Option<[u8; 4]>) -> Vec<u8> {
    let mut request = [&SINGLE_HEADER[..], &[A2S_INFO], INFO_PAYLOAD].concat();
    if let Some(challenge) = challenge {
        request.extend_from_slice(&challenge);
    }
    request
}

/// The A2S_PLAYER request; without a challenge it asks for one (FF FF FF FF).
pub fn players_request(challenge: Option<[u8; 4]>) -> Vec<u8> {
    [
        &SINGLE_HEADER[..],
        &[A2S_PLAYER],
        &challenge.unwrap_or(NO_CHALLENGE),
    ]
    .concat()
}

/// The A2S_RULES request; without a challenge it asks for one (FF FF FF FF).
pub fn rules_request(challenge: Option<[u8; 4]>) -> Vec<u8> {
    [
        &SINGLE_HEADER[..],
        &[A2S_RULES],
        &challenge.unwrap_or(NO_CHALLENGE),
    ]
    .concat()
}

/// The 4 challenge bytes of an S2C_CHALLENGE (0x41) message, to be echoed as they are.
pub fn parse_challenge(message: &[u8]) -> Result<[u8; 4], WireError> {
    let mut reader = Reader::new("S2C_CHALLENGE", message);
    reader.expect_type(S2C_CHALLENGE)?;
    let bytes = reader.bytes("challenge", 4)?;
    Ok([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Parse an A2S_INFO reply message (from its 0x49 type byte on), extra data included.
pub fn parse_info(message: &[u8]) -> Result<Info, WireError> {
    let mut r = Reader::new("A2S_INFO reply", message);
    r.expect_type(S2A_INFO)?;
    let mut info = Info {
        protocol: r.u8("protocol")?,
        name: r.string("name")?,
        map: r.string("map")?,
        folder: r.string("folder")?,
        game: r.string("game")?,
        app_id: r.u16("app id")?,
        players: r.u8("players")?,
        max_players: r.u8("max players")?,
        bots: r.u8("bots")?,
        server_type: r.u8("server type")?.into(),
        environment: r.u8("environment")?.into(),
        visibility: match r.u8("visibility")? {
            0 => Visibility::Public,
            _ => Visibility::Private,
        },
        vac: r.u8("vac")? != 0,
        version: r.string("version")?,
        port: None,
        steam_id: None,
        source_tv: None,
        keywords: None,
        game_id: None,
    };
    if r.is_empty() {
        return Ok(info);
    }
    let edf = r.u8("extra data flag")?;
    if edf & 0x80 != 0 {
        info.port = Some(r.u16("EDF port")?);
    }
    if edf & 0x10 != 0 {
        info.steam_id = Some(r.u64("EDF steam id")?);
    }
    if edf & 0x40 != 0 {
        info.source_tv = Some(SourceTv {
            port: r.u16("EDF SourceTV port")?,
            name: r.string("EDF SourceTV name")?,
        });
    }
    if edf & 0x20 != 0 {
        info.keywords = Some(r.string("EDF keywords")?);
    }
    if edf & 0x01 != 0 {
        info.game_id = Some(r.u64("EDF game id")?);
    }
    Ok(info)
}

/// Parse an A2S_PLAYER reply message (from its 0x44 type byte on).
pub fn parse_players(message: &[u8]) -> Result<Vec<Player>, WireError> {
    let mut r = Reader::new("A2S_PLAYER reply", message);
    r.expect_type(S2A_PLAYER)?;
    let count = r.u8("player count")?;
    (0..count)
        .map(|_| {
            Ok(Player {
                index: r.u8("player index")?,
                name: r.string("player name")?,
                score: r.i32("player score")?,
                duration: r.f32("player duration")?,
            })
        })
        .collect()
}

/// Parse an A2S_RULES reply message (from its 0x45 type byte on), in the server's order.
pub fn parse_rules(message: &[u8]) -> Result<Vec<Rule>, WireError> {
    let mut r = Reader::new("A2S_RULES reply", message);
    r.expect_type(S2A_RULES)?;
    let count = r.u16("rule count")?;
    (0..count)
        .map(|_| {
            Ok(Rule {
                name: r.string("rule name")?,
                value: r.string("rule value")?,
            })
        })
        .collect()
}

/// Reads little-endian fields; errors name the message and the field.
struct Reader<'a> {
    what: &'static str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(what: &'static str, bytes: &'a [u8]) -> Self {
        Self {
            what,
            bytes,
            pos: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        rest
    }

    fn bytes(&mut self, field: &str, len: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos + len;
        let Some(bytes) = self.bytes.get(self.pos..end) else {
            return Err(malformed(format!(
                "{}: ends at byte {} while reading {field} ({len} bytes at byte {})",
                self.what,
                self.bytes.len(),
                self.pos
            )));
        };
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], WireError> {
        let mut array = [0; N];
        array.copy_from_slice(self.bytes(field, N)?);
        Ok(array)
    }

    fn expect_type(&mut self, expected: u8) -> Result<(), WireError> {
        let found = self.u8("type")?;
        if found != expected {
            return Err(malformed(format!(
                "{}: type byte is {found:#04x}, expected {expected:#04x}",
                self.what
            )));
        }
        Ok(())
    }

    fn u8(&mut self, field: &str) -> Result<u8, WireError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &str) -> Result<u16, WireError> {
        self.array(field).map(u16::from_le_bytes)
    }

    fn u32(&mut self, field: &str) -> Result<u32, WireError> {
        self.array(field).map(u32::from_le_bytes)
    }

    fn i32(&mut self, field: &str) -> Result<i32, WireError> {
        self.array(field).map(i32::from_le_bytes)
    }

    fn u64(&mut self, field: &str) -> Result<u64, WireError> {
        self.array(field).map(u64::from_le_bytes)
    }

    fn f32(&mut self, field: &str) -> Result<f32, WireError> {
        self.array(field).map(f32::from_le_bytes)
    }

    fn string(&mut self, field: &str) -> Result<String, WireError> {
        let rest = &self.bytes[self.pos.min(self.bytes.len())..];
        let Some(len) = rest.iter().position(|&b| b == 0) else {
            return Err(malformed(format!(
                "{}: {field} at byte {} has no terminating NUL",
                self.what, self.pos
            )));
        };
        self.pos += len + 1;
        Ok(String::from_utf8_lossy(&rest[..len]).into_owned())
    }
}

/// The three queries, with what each sends and expects back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    Info,
    Players,
    Rules,
}

impl Query {
    /// The request datagram, with the challenge the server asked for, if any.
    pub fn request(self, challenge: Option<[u8; 4]>) -> Vec<u8> {
        match self {
            Self::Info => info_request(challenge),
            Self::Players => players_request(challenge),
            Self::Rules => rules_request(challenge),
        }
    }

    /// The type byte of the reply message.
    pub fn reply_type(self) -> u8 {
        match self {
            Self::Info => S2A_INFO,
            Self::Players => S2A_PLAYER,
            Self::Rules => S2A_RULES,
        }
    }
}

#[cfg(test)]
mod tests;
