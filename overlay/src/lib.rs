//! Kernel overlayfs mounting for left4me (DESIGN.md sections 2–4 and 7).
//!
//! The pieces, in the order the supervisor uses them:
//!
//! 1. [`ns::join_pid1_mount_namespace`] — first thing in `main`, single-threaded.
//! 2. [`MountPlan::new`] — plain data from the state dir, the instance name and the layer paths
//!    (kernel order, topmost first). No I/O.
//! 3. [`resolve_plan`] — open every layer once with `openat2` ([`resolve`]). The caller reads the
//!    aliased overlays' cfg files from these layers ([`ResolvedPlan::layer`], [`read_beneath`]).
//! 4. [`mount::prepare`] — from the resolved plan: create the runtime dirs ([`dirs`]), refuse a
//!    fuse-overlayfs upper dir ([`fuse`]), stage cfg files into `upper` ([`stage`]) and mount,
//!    keeping an existing mount that [`verify`] finds current.
//! 5. [`mount::unmount`] — the cleanup; it needs only the [`InstanceRuntime`] (the runtime
//!    paths), no layers.
//!
//! Every mount system call goes through the [`sys::MountSys`] trait, passed in as a parameter:
//! [`sys::RealSys`] in production; the unit tests use a recording double (`recording.rs`,
//! compiled for tests only) to check the call sequences without root.
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
pub mod tagged;
pub mod verify;

#[cfg(test)]
mod recording;
#[cfg(test)]
mod testutil;

pub use dirs::{OpenRuntimeDirs, ensure_runtime_dirs};
pub use mount::{
    MountError, MountOutcome, MountReport, UnmountOutcome, UnmountReport, ensure_mounted,
    mount_method, prepare, unmount,
};
pub use ns::{NamespaceJoin, join_pid1_mount_namespace};
pub use plan::{InstanceRuntime, MountOptions, MountPlan, Owner};
pub use resolve::{ResolvedLayer, ResolvedPlan, resolve_plan};
pub use stage::{StagedFile, read_beneath, stage_files};
pub use sys::{MountMethod, MountSys, RealSys};
pub use verify::{MountState, mount_state, replaced_layers};
