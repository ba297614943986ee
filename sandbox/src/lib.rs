//! left4me-sandbox: runs an overlay build script as the sandbox user, behind an idmapped
//! `/overlay`, a private read-only root, Landlock and seccomp. See README.md for the policy and
//! the reasons behind each step.
//!
//! [`runner::run`] is the whole runner; the modules are one kernel concern each. Every `unsafe`
//! block is in [`sys`].

#![deny(unsafe_code)]

pub mod creds;
pub mod landlock;
pub mod mounts;
pub mod policy;
pub mod runner;
pub mod seccomp;
#[allow(unsafe_code)]
pub mod sys;
#[cfg(test)]
mod testutil;
pub mod users;

pub use policy::{Network, Policy};
pub use runner::{Invocation, Layers, Outcome, run};
