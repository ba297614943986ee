//! left4me's stand-in for the Steam Workshop (issue 10): an HTTP/1.1 server that answers the
//! two Steam Web API calls workshop overlays use, `ISteamRemoteStorage/GetPublishedFileDetails`
//! and `GetCollectionDetails` (POST, form-encoded, no key), exactly shaped like
//! `api.steampowered.com`'s answers, and serves the items' files at URLs shaped like Steam's
//! `https://steamusercontent-a.akamaihd.net/ugc/<number>/<40 hex>/`, all on its own base URL.
//!
//! - [`fixture`]: the items (versions, bans, removals, other apps) and collections it serves;
//! - [`api`]: the JSON answers;
//! - [`http`]: the HTTP/1.1 it speaks;
//! - [`server`]: the server and the [`WorkshopServer`] handle tests steer it with (updates,
//!   failures, counters);
//! - [`vpk`]: a VPK version 1 writer, for the items' files.
//!
//! README.md beside this crate says where each fact comes from and what the stand-in decides.

#![forbid(unsafe_code)]

pub mod api;
pub mod fixture;
pub mod http;
pub mod server;
pub mod vpk;

pub use api::SizeShape;
pub use fixture::{ChildKind, Collection, Fixture, Item, Version};
pub use server::{WorkshopServer, serve_forever};
