//! The server side of A2S: reading requests, writing replies as a Left 4 Dead 2 server does.
//!
//! Written independently of the supervisor's client on purpose, so the tests check one against
//! the other (and against python-a2s).

/// Header of an unsplit datagram.
const SINGLE: [u8; 4] = [0xFF, 0xFF, 0xFF, 0xFF];
/// Header of one piece of a split reply.
const SPLIT: [u8; 4] = [0xFE, 0xFF, 0xFF, 0xFF];
/// The `size` field of split replies: srcds's default split size.
const SPLIT_SIZE: u16 = 1248;
/// Payload bytes per piece: the split size less the 12-byte split header.
const PIECE: usize = SPLIT_SIZE as usize - 12;

/// A2S protocol byte of Left 4 Dead 2.
const PROTOCOL: u8 = 17;
const APP_ID: u16 = 550;
const GAME: &str = "Left 4 Dead 2";
/// The game version reported by A2S_INFO and `status`.
pub const VERSION: &str = "2.2.4.3";
/// A made-up SteamID of an anonymous game server.
const STEAM_ID: u64 = 85_568_392_920_039_424;

/// A request datagram, as far as the stand-in cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A2S_INFO, with the challenge the client appended, if any.
    Info(Option<[u8; 4]>),
    /// A2S_PLAYER with its challenge field (FF FF FF FF or 0 asks for one).
    Players([u8; 4]),
    /// A2S_RULES with its challenge field.
    Rules([u8; 4]),
    /// Anything else: ignored, as srcds ignores it.
    Other,
}

fn four(bytes: &[u8]) -> Option<[u8; 4]> {
    bytes.first_chunk::<4>().copied()
}

/// Read one request datagram.
pub fn parse_request(datagram: &[u8]) -> Request {
    let Some(body) = datagram.strip_prefix(&SINGLE) else {
        return Request::Other;
    };
    match body.split_first() {
        Some((0x54, rest)) => match rest.strip_prefix(b"Source Engine Query\0") {
            Some(tail) => Request::Info(four(tail)),
            None => Request::Other,
        },
        Some((0x55, rest)) => four(rest).map_or(Request::Other, Request::Players),
        Some((0x56, rest)) => four(rest).map_or(Request::Other, Request::Rules),
        _ => Request::Other,
    }
}

/// What the replies say about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub name: String,
    pub map: String,
    pub folder: String,
    pub port: u16,
    pub max_players: u8,
    pub humans: u8,
    pub bots: u8,
    pub password: bool,
    pub vac: bool,
    pub keywords: String,
    /// Public cvars, for A2S_RULES.
    pub rules: Vec<(String, String)>,
}

fn put_str(message: &mut Vec<u8>, text: &str) {
    message.extend(text.bytes().filter(|&b| b != 0));
    message.push(0);
}

/// S2C_CHALLENGE (0x41).
pub fn challenge_message(challenge: [u8; 4]) -> Vec<u8> {
    [&[0x41][..], &challenge].concat()
}

/// S2A_INFO (0x49) with the extra data a L4D2 server sends (port, SteamID, keywords, game id).
pub fn info_message(info: &ServerInfo) -> Vec<u8> {
    let mut m = vec![0x49, PROTOCOL];
    put_str(&mut m, &info.name);
    put_str(&mut m, &info.map);
    put_str(&mut m, &info.folder);
    put_str(&mut m, GAME);
    m.extend_from_slice(&APP_ID.to_le_bytes());
    m.push(info.humans.saturating_add(info.bots));
    m.push(info.max_players);
    m.push(info.bots);
    m.push(b'd');
    m.push(b'l');
    m.push(u8::from(info.password));
    m.push(u8::from(info.vac));
    put_str(&mut m, VERSION);
    m.push(0x80 | 0x10 | 0x20 | 0x01);
    m.extend_from_slice(&info.port.to_le_bytes());
    m.extend_from_slice(&STEAM_ID.to_le_bytes());
    put_str(&mut m, &info.keywords);
    m.extend_from_slice(&u64::from(APP_ID).to_le_bytes());
    m
}

/// One row of A2S_PLAYER.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayerRow {
    pub name: String,
    pub score: i32,
    /// Seconds connected.
    pub duration: f32,
}

/// S2A_PLAYER (0x44): one entry per row (at most 255).
pub fn players_message(rows: &[PlayerRow]) -> Vec<u8> {
    let rows = &rows[..rows.len().min(usize::from(u8::MAX))];
    let mut m = vec![0x44, rows.len() as u8];
    for row in rows {
        m.push(0);
        put_str(&mut m, &row.name);
        m.extend_from_slice(&row.score.to_le_bytes());
        m.extend_from_slice(&row.duration.to_le_bytes());
    }
    m
}

/// S2A_RULES (0x45).
pub fn rules_message(info: &ServerInfo) -> Vec<u8> {
    let count = info.rules.len().min(usize::from(u16::MAX));
    let mut m = vec![0x45];
    m.extend_from_slice(&(count as u16).to_le_bytes());
    for (name, value) in &info.rules[..count] {
        put_str(&mut m, name);
        put_str(&mut m, value);
    }
    m
}

/// The datagrams that carry `message`: one when it fits and `force_split` is off, else a Source
/// split reply (pieces of at most 1236 bytes, at least two pieces when forced) with `id`.
pub fn datagrams(message: &[u8], force_split: bool, id: u32) -> Vec<Vec<u8>> {
    let payload = [&SINGLE[..], message].concat();
    let piece = if force_split {
        PIECE.min(payload.len().div_ceil(2))
    } else {
        PIECE
    };
    if payload.len() <= piece {
        return vec![payload];
    }
    let pieces: Vec<&[u8]> = payload.chunks(piece).take(usize::from(u8::MAX)).collect();
    let total = pieces.len() as u8;
    pieces
        .iter()
        .enumerate()
        .map(|(number, piece)| {
            let mut datagram = SPLIT.to_vec();
            datagram.extend_from_slice(&(id & 0x7FFF_FFFF).to_le_bytes());
            datagram.push(total);
            datagram.push(number as u8);
            datagram.extend_from_slice(&SPLIT_SIZE.to_le_bytes());
            datagram.extend_from_slice(piece);
            datagram
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ServerInfo {
        ServerInfo {
            name: "Coop #1".into(),
            map: "c1m1_hotel".into(),
            folder: "left4dead2".into(),
            port: 27015,
            max_players: 8,
            humans: 1,
            bots: 2,
            password: false,
            vac: true,
            keywords: "coop".into(),
            rules: vec![("sv_tags".into(), "coop".into())],
        }
    }

    #[test]
    fn reads_requests() {
        let info = b"\xFF\xFF\xFF\xFFTSource Engine Query\0";
        assert_eq!(parse_request(info), Request::Info(None));
        let with = [&info[..], &[1, 2, 3, 4]].concat();
        assert_eq!(parse_request(&with), Request::Info(Some([1, 2, 3, 4])));
        assert_eq!(
            parse_request(b"\xFF\xFF\xFF\xFFU\xFF\xFF\xFF\xFF"),
            Request::Players([0xFF; 4])
        );
        assert_eq!(
            parse_request(b"\xFF\xFF\xFF\xFFV\0\0\0\0"),
            Request::Rules([0; 4])
        );
        assert_eq!(parse_request(b"\xFF\xFF\xFF\xFFV\0"), Request::Other);
        assert_eq!(parse_request(b"\xFF\xFF\xFF\xFFTSource"), Request::Other);
        assert_eq!(parse_request(b"\xFF\xFF\xFF\xFFi"), Request::Other);
        assert_eq!(parse_request(b"junk"), Request::Other);
    }

    #[test]
    fn writes_info_with_extra_data() {
        let m = info_message(&sample());
        let expected_head = b"\x49\x11Coop #1\0c1m1_hotel\0left4dead2\0Left 4 Dead 2\0\x26\x02\x03\x08\x02dl\0\x012.2.4.3\0\xB1\x87\x69";
        assert_eq!(&m[..expected_head.len()], expected_head);
        assert!(m.ends_with(b"coop\0\x26\x02\0\0\0\0\0\0"));
    }

    #[test]
    fn writes_players_and_rules() {
        let row = |name: &str, score| PlayerRow {
            name: name.into(),
            score,
            duration: 2.0,
        };
        let m = players_message(&[row("Player 1", 1), row("Coach", 0), row("Ellis", 0)]);
        let two = 2.0f32.to_le_bytes();
        let expected = [
            &b"\x44\x03\0Player 1\0\x01\0\0\0"[..],
            &two,
            b"\0Coach\0\0\0\0\0",
            &two,
            b"\0Ellis\0\0\0\0\0",
            &two,
        ]
        .concat();
        assert_eq!(m, expected);
        assert_eq!(rules_message(&sample()), b"\x45\x01\0sv_tags\0coop\0");
    }

    #[test]
    fn splits_when_forced_or_too_big() {
        let small = info_message(&sample());
        assert_eq!(
            datagrams(&small, false, 1),
            vec![[&SINGLE[..], &small].concat()]
        );
        let forced = datagrams(&small, true, 0x8000_0003);
        assert_eq!(forced.len(), 2);
        for (number, datagram) in forced.iter().enumerate() {
            assert_eq!(&datagram[..4], SPLIT);
            assert_eq!(
                &datagram[4..8],
                3u32.to_le_bytes(),
                "compression bit never set"
            );
            assert_eq!(datagram[8..10], [2, number as u8]);
            assert_eq!(&datagram[10..12], 1248u16.to_le_bytes());
        }
        let joined: Vec<u8> = forced.iter().flat_map(|d| d[12..].to_vec()).collect();
        assert_eq!(joined, [&SINGLE[..], &small].concat());

        let big = vec![0x45; 3000];
        let pieces = datagrams(&big, false, 9);
        assert_eq!(pieces.len(), 3);
        assert!(pieces.iter().all(|d| d.len() <= 1248));
    }
}
