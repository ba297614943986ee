//! A2S server queries (Valve's "Server queries" UDP protocol).
//!
//! Two parts:
//! - [`wire`]: the bytes — datagram headers ([`decode_datagram`]), split-reply reassembly
//!   ([`Reassembly`]), the request builders and the reply parsers ([`parse_challenge`],
//!   [`parse_info`], [`parse_players`], [`parse_rules`]). Pure functions, unit-tested on bytes
//!   including the examples of the Valve developer wiki, and public so a fuzz target can feed
//!   them anything.
//! - the client, [`A2sClient`]: one UDP socket connected to one game server, meant to be kept for
//!   the whole poll loop. A query costs one request datagram (two when the server asks for a
//!   challenge, as Valve servers have since December 2020) and a bounded number of reads, all
//!   within one deadline.

mod client;
#[cfg(test)]
mod fixtures;
pub mod wire;

pub use client::{A2sClient, A2sError, query_info};
pub use wire::{
    Datagram, Environment, Fragment, Info, Player, Reassembly, Rule, ServerType, SourceTv,
    Visibility, WireError, decode_datagram, info_request, parse_challenge, parse_info,
    parse_players, parse_rules, players_request, rules_request,
};
