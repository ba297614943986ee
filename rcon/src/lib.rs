//! Source RCON: the TCP console protocol of Valve's dedicated servers (srcds).
//!
//! Two parts:
//! - [`wire`]: the bytes — packet encoding ([`Packet::encode`]) and a streaming decoder
//!   ([`Decoder`]) that takes whatever TCP delivers (half a packet, three packets in one read)
//!   and yields whole packets. Pure, unit-tested on the examples of the Valve developer wiki,
//!   and public so a fuzz target can feed it anything.
//! - the client, [`Client`]: one authenticated TCP connection, one command at a time, replies
//!   that span several packets put back together with the empty-packet trick.
//!
//! Why not a crate from the registry: `rcon` is async-only and `rcon-client` does not reassemble
//! multi-packet replies (checked 2026-12).

mod client;
pub mod wire;

pub use client::{Client, RconError};
pub use wire::{Decoder, Packet, WireError};
