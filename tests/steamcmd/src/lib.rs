//! left4me's stand-in for SteamCMD (issue 9): a kit laid out like Valve's
//! `steamcmd_linux.tar.gz` — `steamcmd.sh` and an i386 client built from C — and the fake Steam
//! it downloads from, an HTTP/1.0 server in front of a depot directory that tests fill with
//! builds, branches, accounts and faults. README.md says which real SteamCMD behaviour is
//! reproduced and where each fact comes from.

#![forbid(unsafe_code)]

pub mod content;
pub mod depot;
pub mod kit;
pub mod server;
pub mod synthetic;

pub use content::Content;
pub use depot::{Depot, DepotFile, Fault};
pub use kit::{cfg_text, install_kit, kit_tarball};
pub use server::{SteamServer, serve, serve_forever};
pub use synthetic::{next_build, synthetic_tree};
