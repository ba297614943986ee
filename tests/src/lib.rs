//! Test support for left4me: a throwaway systemd to run the project in, end to
//! end, without touching the host (see /work/shared/TESTBED.md).
//!
//! [`BootedSystem`] boots `/lib/systemd/systemd` in namespaces of its own over
//! an overlay of the host's root, with its own network namespace whose only
//! way out is a veth pair that ends inside it. Several can run at once.
//! Dropping one powers it off and removes every trace; [`Leftovers`] checks
//! that.

#![forbid(unsafe_code)]

pub mod booted;
pub mod canary;
pub mod cgroup;
pub mod exec;
pub mod game_tree;
pub mod leftovers;
pub mod mounts;
pub mod steam;
pub mod workshop;

pub use booted::{
    BootError, BootedSystem, Builder, DEFAULT_MASKED, GAME_USER, PEER_DEVICE, ROUTE_ADDRESS,
    ROUTE_DEVICE, STATE_DIR, release_binary, target_dir, workspace_dir,
};
pub use canary::Snapshot;
pub use game_tree::GameTree;
pub use leftovers::{Leftovers, SystemIdentity, overlay_and_tmpfs_mounts, reap_stale};

/// Panics unless running as root; the first line of every privileged or
/// booted test.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run `make test` as root"
    );
}
