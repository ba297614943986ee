//! The wire format on bytes: the wiki's examples, every extra data field, truncations,
//! split replies in any order and the headers that are refused.

use super::*;
use crate::fixtures::*;

fn malformed_reason(result: Result<impl std::fmt::Debug, WireError>) -> String {
    match result {
        Err(WireError::Malformed { reason }) => reason,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn builds_the_wiki_requests() {
    assert_eq!(info_request(None), WIKI_INFO_REQUEST);
    let challenge = parse_challenge(single(WIKI_CHALLENGE)).unwrap();
    assert_eq!(challenge, [0x4B, 0xA1, 0xD5, 0x22]);
    // Wiki: "Example A2S_INFO request with the received challenge number".
    assert_eq!(
        info_request(Some(challenge)),
        [WIKI_INFO_REQUEST, &[0x4B, 0xA1, 0xD5, 0x22]].concat()
    );
    // Wiki, A2S_PLAYER: "Example challenge request" and the request with the challenge.
    assert_eq!(
        players_request(None),
        [0xFF, 0xFF, 0xFF, 0xFF, 0x55, 0xFF, 0xFF, 0xFF, 0xFF]
    );
    assert_eq!(
        players_request(Some(challenge)),
        [0xFF, 0xFF, 0xFF, 0xFF, 0x55, 0x4B, 0xA1, 0xD5, 0x22]
    );
    // Wiki, A2S_RULES: same shape with 0x56.
    assert_eq!(
        rules_request(Some(challenge)),
        [0xFF, 0xFF, 0xFF, 0xFF, 0x56, 0x4B, 0xA1, 0xD5, 0x22]
    );
}

#[test]
fn parses_the_wiki_info_example() {
    let info = parse_info(single(WIKI_INFO_CSS)).unwrap();
    assert_eq!(
        info,
        Info {
            protocol: 2,
            name: "game2xs.com Counter-Strike Source #1".into(),
            map: "de_dust".into(),
            folder: "cstrike".into(),
            game: "Counter-Strike: Source".into(),
            app_id: 240,
            players: 5,
            max_players: 16,
            bots: 4,
            server_type: ServerType::Dedicated,
            environment: Environment::Linux,
            visibility: Visibility::Public,
            vac: false,
            version: "1.0.0.22".into(),
            port: None,
            steam_id: None,
            source_tv: None,
            keywords: None,
            game_id: None,
        }
    );
}

#[test]
fn parses_every_extra_data_field() {
    let mut message = single(WIKI_INFO_CSS).to_vec();
    message.push(0x80 | 0x10 | 0x40 | 0x20 | 0x01);
    message.extend_from_slice(&27015u16.to_le_bytes());
    message.extend_from_slice(&90_071_996_842_377_216u64.to_le_bytes());
    message.extend_from_slice(&27020u16.to_le_bytes());
    message.extend_from_slice(b"SourceTV\0");
    message.extend_from_slice(b"coop,versus\0");
    message.extend_from_slice(&550u64.to_le_bytes());
    let info = parse_info(&message).unwrap();
    assert_eq!(info.port, Some(27015));
    assert_eq!(info.steam_id, Some(90_071_996_842_377_216));
    assert_eq!(
        info.source_tv,
        Some(SourceTv {
            port: 27020,
            name: "SourceTV".into()
        })
    );
    assert_eq!(info.keywords.as_deref(), Some("coop,versus"));
    assert_eq!(info.game_id, Some(550));

    // Only some bits: the others stay None and the order of the present ones holds.
    let mut message = single(WIKI_INFO_CSS).to_vec();
    message.push(0x80 | 0x20);
    message.extend_from_slice(&27016u16.to_le_bytes());
    message.extend_from_slice(b"empty\0");
    let info = parse_info(&message).unwrap();
    assert_eq!((info.port, info.steam_id), (Some(27016), None));
    assert_eq!(info.keywords.as_deref(), Some("empty"));
}

#[test]
fn reports_truncated_and_mistyped_info() {
    let message = single(WIKI_INFO_CSS);
    let reason = malformed_reason(parse_info(&message[..message.len() - 3]));
    assert!(reason.contains("version"), "{reason}");
    let reason = malformed_reason(parse_info(&message[..60]));
    assert!(
        reason.contains("app id") || reason.contains("game"),
        "{reason}"
    );
    let mut edf_short = message.to_vec();
    edf_short.extend_from_slice(&[0x80, 0x87]);
    let reason = malformed_reason(parse_info(&edf_short));
    assert!(reason.contains("EDF port"), "{reason}");
    let reason = malformed_reason(parse_info(single(WIKI_PLAYERS)));
    assert!(
        reason.contains("0x44") && reason.contains("0x49"),
        "{reason}"
    );
    let reason = malformed_reason(parse_info(&[]));
    assert!(reason.contains("type"), "{reason}");
}

#[test]
fn parses_the_wiki_players_example() {
    let players = parse_players(single(WIKI_PLAYERS)).unwrap();
    assert_eq!(players.len(), 2);
    assert_eq!(players[0].index, 1);
    assert_eq!(players[0].name, "[D]---->T.N.W<----");
    assert_eq!(players[0].score, 14);
    assert!((players[0].duration - 514.370_36).abs() < 1e-3);
    assert_eq!(players[1].index, 2);
    assert_eq!(players[1].name, "Killer !!!");
    assert_eq!(players[1].score, 5);
    assert!((players[1].duration - 434.284_45).abs() < 1e-3);
    let truncated = &single(WIKI_PLAYERS)[..30];
    let reason = malformed_reason(parse_players(truncated));
    assert!(reason.contains("player"), "{reason}");
}

#[test]
fn parses_rules_in_order() {
    let mut message = vec![S2A_RULES];
    message.extend_from_slice(&2u16.to_le_bytes());
    message.extend_from_slice(b"sv_tags\0coop\0standin_cfg_order\0a.cfg,server.cfg\0");
    let rules = parse_rules(&message).unwrap();
    assert_eq!(
        rules,
        vec![
            Rule {
                name: "sv_tags".into(),
                value: "coop".into()
            },
            Rule {
                name: "standin_cfg_order".into(),
                value: "a.cfg,server.cfg".into()
            },
        ]
    );
    let reason = malformed_reason(parse_rules(&message[..message.len() - 1]));
    assert!(reason.contains("rule value"), "{reason}");
}

#[test]
fn reassembles_split_replies_in_any_order() {
    let message = single(WIKI_INFO_CSS);
    let mut datagrams = split(7, message, 30);
    assert_eq!(datagrams.len(), 4);
    datagrams.reverse();
    let mut reassembly = Reassembly::new();
    let mut whole = None;
    for datagram in &datagrams {
        let Datagram::Fragment(fragment) = decode_datagram(datagram).unwrap() else {
            panic!("expected a fragment");
        };
        assert_eq!((fragment.id, fragment.total, fragment.size), (7, 4, 1248));
        assert!(whole.is_none(), "complete before the last piece");
        whole = reassembly.add(fragment).unwrap();
    }
    assert_eq!(whole.as_deref(), Some(message));
    assert_eq!(parse_info(&whole.unwrap()).unwrap().map, "de_dust");
}

fn fragment(datagram: &[u8]) -> Fragment<'_> {
    match decode_datagram(datagram).unwrap() {
        Datagram::Fragment(fragment) => fragment,
        other => panic!("expected a fragment, got {other:?}"),
    }
}

#[test]
fn a_piece_of_another_reply_starts_over() {
    let old = split(1, single(WIKI_INFO_CSS), 40);
    let new = split(2, single(WIKI_PLAYERS), 40);
    let mut reassembly = Reassembly::new();
    assert_eq!(reassembly.add(fragment(&old[0])).unwrap(), None);
    assert_eq!(reassembly.add(fragment(&new[1])).unwrap(), None);
    assert_eq!(reassembly.add(fragment(&old[1])).unwrap(), None);
    assert_eq!(reassembly.add(fragment(&new[1])).unwrap(), None);
    let whole = reassembly.add(fragment(&new[0])).unwrap().unwrap();
    assert_eq!(whole, single(WIKI_PLAYERS));
}

#[test]
fn a_hand_built_piece_out_of_range_is_refused() {
    let piece = Fragment {
        id: 3,
        total: 2,
        number: 2,
        size: 1248,
        payload: b"x",
    };
    let reason = malformed_reason(Reassembly::new().add(piece));
    assert!(reason.contains("out of range"), "{reason}");
}

#[test]
fn rejects_compressed_and_bad_headers() {
    let mut compressed = split(5, single(WIKI_INFO_CSS), 60).remove(0);
    compressed[7] |= 0x80; // most significant bit of the little-endian id
    match decode_datagram(&compressed) {
        Err(WireError::Compressed { id }) => assert_eq!(id, 0x8000_0005),
        other => panic!("expected Compressed, got {other:?}"),
    }
    let message = WireError::Compressed { id: 0x8000_0005 }.to_string();
    assert!(message.contains("bzip2") && message.contains("not supported"));

    let mut out_of_range = split(5, single(WIKI_INFO_CSS), 60).remove(0);
    out_of_range[9] = 2; // number 2 of total 2
    let reason = malformed_reason(decode_datagram(&out_of_range));
    assert!(reason.contains("out of range"), "{reason}");

    let reason = malformed_reason(decode_datagram(&[0xFD, 0xFF, 0xFF, 0xFF, 0x49]));
    assert!(reason.contains("unknown datagram header"), "{reason}");
    let reason = malformed_reason(decode_datagram(&[0xFF, 0xFF]));
    assert!(reason.contains("shorter"), "{reason}");
    let reason = malformed_reason(decode_datagram(&[0xFE, 0xFF, 0xFF, 0xFF, 1, 0, 0]));
    assert!(reason.contains("split reply header"), "{reason}");
}
