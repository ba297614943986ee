//! One function per fuzzed parser. Each takes arbitrary bytes and must return without panicking,
//! hanging or allocating without bound, whatever the bytes are; the errors the parsers return
//! are fine (and expected). `fuzz/fuzz_targets/*.rs` (a cargo-fuzz crate outside the workspace)
//! hand these to libFuzzer; `tests/corpus.rs` replays the committed corpus through the same
//! functions as an ordinary test.

#![forbid(unsafe_code)]

mod workshop_answer;

use std::path::Path;

use left4me_a2s as a2s;
use left4me_rcon as rcon;
use left4me_spec::{Blueprint, HostConfig, Instance, InstanceFile, OverlayDef};

pub use workshop_answer::workshop_answer;

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every fuzz target: its name (the corpus dir `fuzz/corpus/NAME`) and its entry point.
pub const TARGETS: &[(&str, Target)] = &[
    ("spec_catalog", spec_catalog),
    ("a2s_reply", a2s_reply),
    ("rcon_stream", rcon_stream),
    ("workshop_answer", workshop_answer),
];

/// Splits `data` at the first `sep` byte: `(before, after)`, `after` empty when there is none.
fn split(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// The spec validator, TOML text to checked instance: `data` is host.toml, a blueprint, an
/// instance spec and an overlay definition, separated by NUL bytes. Each part is parsed as the
/// catalog parses it; an instance that resolves is rendered (drop-in, server.cfg, argv).
pub fn spec_catalog(data: &[u8]) {
    let (host_text, rest) = split(data, 0);
    let (blueprint_text, rest) = split(rest, 0);
    let (instance_text, overlay_text) = split(rest, 0);
    let text = |bytes| std::str::from_utf8(bytes).ok();
    let host = text(host_text)
        .and_then(|t| HostConfig::parse(Path::new("/etc/left4me/host.toml"), t).ok())
        .unwrap_or_default();
    if let Some(t) = text(overlay_text) {
        let _ = OverlayDef::parse("maps", Path::new("/etc/left4me/overlays/maps.toml"), t);
    }
    let Some(t) = text(instance_text) else { return };
    let file = Path::new("/etc/left4me/instances/coop1.toml");
    let Ok(parsed) = InstanceFile::parse("coop1", file, t) else {
        return;
    };
    // The blueprint text is parsed under the name the instance asks for, as the catalog does.
    let blueprint = match &parsed.blueprint {
        None => None,
        Some(name) => {
            let file = Path::new("/etc/left4me/blueprints/bp.toml");
            match text(blueprint_text).map(|t| Blueprint::parse(name, file, t)) {
                Some(Ok(blueprint)) => Some(blueprint),
                _ => return,
            }
        }
    };
    if let Ok(instance) = Instance::resolve(parsed, blueprint.as_ref(), &host) {
        let layout = left4me_spec::Layout {
            config_dir: "/etc/left4me".into(),
            state_dir: host.state_dir.clone(),
            admin_dir: "/var/lib/left4me-admin".into(),
        };
        let _ = left4me_spec::render_dropin(&instance, &layout, &host);
        let _ = left4me_spec::render_server_cfg(&instance);
        let _ = left4me_spec::lower_layers(&instance);
        let _ = left4me_spec::alias_cfgs(&instance);
        let _ = left4me_spec::srcds_argv(&instance, &layout.runtime(&instance.name).merged);
    }
}

/// The A2S client's reply parsing: `data` is a sequence of datagrams, each preceded by its
/// length (two bytes, little endian), as the supervisor's socket would receive them. Every
/// datagram is decoded, split replies are reassembled, and every whole message is parsed as
/// each reply type.
pub fn a2s_reply(data: &[u8]) {
    let mut reassembly = a2s::Reassembly::new();
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_le_bytes(*len)).min(tail.len());
        let (datagram, tail) = tail.split_at(len);
        rest = tail;
        let message = match a2s::decode_datagram(datagram) {
            Ok(a2s::Datagram::Single(message)) => message.to_vec(),
            Ok(a2s::Datagram::Fragment(fragment)) => match reassembly.add(fragment) {
                Ok(Some(message)) => message,
                _ => continue,
            },
            Err(_) => continue,
        };
        let _ = a2s::parse_challenge(&message);
        let _ = a2s::parse_info(&message);
        let _ = a2s::parse_players(&message);
        let _ = a2s::parse_rules(&message);
    }
}

/// The RCON client's packet decoder: `data`'s first byte is how many bytes each read delivers
/// (0 counts as 1), the rest is what the server sent, handed to the decoder read by read as the
/// client's socket would. Every whole packet is taken out until the decoder needs more bytes or
/// refuses the stream.
pub fn rcon_stream(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let mut decoder = rcon::Decoder::new();
    for read in stream.chunks(usize::from(chunk.max(1))) {
        decoder.push(read);
        loop {
            match decoder.next_packet() {
                Ok(Some(packet)) => {
                    assert!(packet.body.len() <= rcon::wire::MAX_BODY);
                    assert!(!packet.body.contains(&0));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}
