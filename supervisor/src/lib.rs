//! left4me-supervisor: the per-instance supervisor of a Left 4 Dead 2 server.
//!
//! The binary runs the three phases of `left4me-server@.service` (`prepare`, `run`, `cleanup`);
//! this library holds their logic, one module per concern:
//!
//! - [`phases`]: what each phase does, from spec to mount to game.
//! - [`run`]: the supervision loop — readiness, status, watchdog, signals (A2S queries come
//!   from the `left4me-a2s` crate).
//! - [`notify`]: sd_notify messages to systemd.
//! - [`journal`]: log lines to the journal, with the instance and phase as fields.
//! - [`users`]: the game user's uid and gid.
//! - [`exit`]: the exit codes.

#![forbid(unsafe_code)]

pub mod exit;
pub mod journal;
pub mod notify;
pub mod phases;
pub mod run;
pub mod users;
