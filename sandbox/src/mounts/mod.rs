//! The sandbox's file system view: a private mount namespace whose root is a small read-only
//! tmpfs holding only what the [`Policy`](crate::Policy) names.
//!
//! ```text
//! /               tmpfs, read-only, nosuid,nodev,noexec
//! ├── usr, etc    the host's, bound recursively read-only, nosuid,nodev
//! ├── bin → usr/bin, lib → usr/lib, …   the host's top-level symlinks, recreated
//! ├── run/systemd/resolve/stub-resolv.conf   a read-only file bind, when /etc/resolv.conf
//! │               points outside the bound directories
//! ├── dev/        null zero full random urandom bound from the host; fd, stdin, stdout,
//! │               stderr → /proc/self/fd/…
//! ├── proc        a fresh procfs, read-only, hidepid=invisible,subset=pid
//! ├── tmp         a fresh tmpfs, mode 1777, nosuid,nodev,noexec
//! ├── overlay     the output directory, idmapped (sandbox uid ↔ owner uid), nosuid,nodev,noexec;
//! │               with --lower an overlayfs: the lowers read-only and idmapped, the output's
//! │               tree/ (idmapped) the upper layer
//! ├── home/steamcmd  --home, idmapped, writable and executable, nosuid,nodev
//! └── DIR         each --allow-exec directory, read-only, nosuid,nodev
//! ```
//!
//! The sandbox's own file systems (`/proc`, `/tmp`, `/overlay`) are mounted first, then the
//! host's paths, each preceded by the directories it needs: a host path beneath `/tmp` (a tool
//! kit in `/tmp/tools`, a checkout built under `/tmp`) is mounted at its own path on top of the
//! sandbox's fresh `/tmp`, its parent directories made root-owned in that tmpfs. A host path
//! that cannot sit at its own path (in `/proc` or `/overlay`, or `/`, `/tmp`, `/dev` or a
//! parent of a device) is refused ([`MountError::Reserved`]).
//!
//! `plan`: [`RootPlan`] is that tree as data (pure, built from the policy and a host root so it
//! is tested on a fixture). `build`: [`build_root`] carries a plan out through [`MountOps`].
//! `real`: [`RealMounts`] makes the system calls. `recording` (tests only): a double that
//! writes each call down, so the sequence is tested without root.
//!
//! The new root is assembled on a tmpfs mounted over `/tmp` in the private namespace (any
//! directory would do; `/tmp` exists everywhere and hides nothing we need, because every source
//! is cloned with `open_tree` *before* that mount), then `pivot_root` makes it `/` and the old
//! root is detached. So the unit needs to provide nothing for the mounts; `/overlay` never
//! exists on the host.

mod build;
mod plan;
mod real;
#[cfg(test)]
mod recording;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use rustix::io::Errno;

pub use build::{
    IdMap, LAYER_STAGING, MountOps, OVERLAY_OPTIONS, OverlayLayers, OverlaySource, Sources,
    build_root,
};
pub use plan::{BindKind, RootPlan, Step};
pub use real::RealMounts;
#[cfg(test)]
pub use recording::RecordingMounts;

/// Where the new root is put together before `pivot_root`.
pub const STAGING: &str = "/tmp";

/// Errors building the sandbox's root.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A host path of the policy could not be inspected.
    #[error("cannot inspect {path} for the sandbox's mounts")]
    Inspect {
        /// The host path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A host path of the policy collides with a mount point of the sandbox's own.
    #[error(
        "cannot make {path} visible in the sandbox at the same path: it would collide with the \
         sandbox's own {reserved}; use a directory outside /proc and /overlay, and not /tmp, \
         /dev or a parent of them"
    )]
    Reserved {
        /// The host path (an `--allow-exec` directory or a file the profile reads).
        path: PathBuf,
        /// The sandbox's own mount point it collides with.
        reserved: PathBuf,
    },
    /// A mount step failed.
    #[error("{step} failed")]
    Step {
        /// What was done, e.g. `bind /usr on /tmp/usr`.
        step: String,
        /// The errno.
        #[source]
        source: Errno,
    },
    /// The idmap helper could not be started.
    #[error("cannot create the user namespace for the idmapped /overlay")]
    Userns(#[source] std::io::Error),
}
