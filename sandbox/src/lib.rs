//! left4me-sandbox: runs an untrusted command (an overlay build script, SteamCMD) as the sandbox
//! user, behind an idmapped `/overlay`, a private read-only root, Landlock and seccomp, under a
//! named profile ([`profile`]). See README.md for the policy and the reasons behind each step.
//!
//! [`runner::run`] is the whole runner; the modules are one kernel concern each. Every `unsafe`
//! block is in [`sys`].

#![deny(unsafe_code)]

pub mod creds;
pub mod landlock;
pub mod mounts;
pub mod policy;
pub mod profile;
pub mod runner;
pub mod seccomp;
pub mod sources;
#[allow(unsafe_code)]
pub mod sys;
#[cfg(test)]
mod testutil;

pub use policy::{Network, Policy};
pub use runner::{Invocation, Layers, Outcome, run};
