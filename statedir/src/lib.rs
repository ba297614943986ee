//! Root's hands in the state dir (DESIGN.md §2, the ownership rule).
//!
//! Whoever owns a directory can rename or replace anything in it, so a root action by path
//! through a directory the game user owns can be redirected anywhere (`rm -r` of a path whose
//! middle component was just swapped for a symlink to `/`). Root therefore never acts by path
//! below the state dir. It opens the state dir once ([`StateDir::open`], which also checks that
//! root owns it and nobody else may write it), then every directory beneath it with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` ([`Dir::open_dir`]), and acts on names
//! relative to those descriptors: create ([`Dir::create_dir`]), rename and exchange
//! ([`Dir::rename`], [`Dir::exchange`], [`Dir::rename_noreplace`]), hard-link
//! ([`Dir::link_to`]), look at one entry without following it ([`Dir::stat_entry`]), remove a tree without following a link or crossing a
//! mount ([`Dir::remove_tree`]), and count what a tree holds ([`Dir::usage`]).
//!
//! It also holds the locks that serialize root's work on one instance or overlay ([`Lock`]),
//! kept in root's admin dir, and the instances' RCON passwords there ([`secrets`]).
//!
//! What this crate must not do: take a path from a caller and act on it as a whole, or follow a
//! symbolic link anywhere below the state dir.

#![forbid(unsafe_code)]

mod dir;
mod entry;
mod lock;
mod remove;
pub mod secrets;
mod usage;

pub use dir::{Dir, DirError, RESOLVE_STRICT, StateDir, openat2_retry};
pub use entry::EntryStat;
pub use lock::{Lock, LockError, Subject};
pub use remove::RemoveError;
pub use rustix::fs::FileType;
pub use usage::Usage;
