//! Kernel overlayfs mounting for left4me (DESIGN.md sections 2–4 and 7).
//!
//! The pieces, in the order the supervisor uses them:
//!
//! 1. [`ns::join_pid1_mount_namespace`] — first thing in `main`, single-threaded.
//! 2. [`MountPlan::new`] — plain data from the state dir, the instance name and the layer paths
//!    (kernel order, topmost first). No I/O.
//! 3. [`mount::prepare`] (or [`mount::ensure_mounted`]) — resolve the layers with `openat2`
//!    ([`resolve`]), create the runtime dirs ([`dirs`]), refuse a fuse-overlayfs upper dir
//!    ([`fuse`]), stage cfg files into `upper` ([`stage`]) and mount, idempotently.
//! 4. [`mount::unmount`] — the cleanup.
//!
//! Every mount system call goes through the [`sys::MountSys`] trait: [`sys::RealSys`] in
//! production, [`sys::RecordingSys`] to test the call sequences without root.
//!
//! The crate takes plain data (paths, names, uid/gid) and does not depend on the spec crate.
#![forbid(unsafe_code)]

pub mod dirs;
pub mod fuse;
pub mod mount;
pub mod mountinfo;
pub mod ns;
pub mod plan;
pub mod resolve;
pub mod stage;
pub mod sys;

#[cfg(test)]
mod testutil;

pub use dirs::{RuntimeDirs, ensure_runtime_dirs};
pub use mount::{
    MountError, MountOutcome, MountReport, MountState, UnmountOutcome, UnmountReport,
    ensure_mounted, mount_method, mount_state, prepare, unmount,
};
pub use ns::{NamespaceJoin, join_pid1_mount_namespace};
pub use plan::{MountOptions, MountPlan, Owner};
pub use resolve::{ResolvedLayer, resolve_layers};
pub use stage::{StagedFile, read_beneath, stage_files};
pub use sys::{MountMethod, MountSys, RealSys, RecordingSys};
