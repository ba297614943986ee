//! The rules and formats more than one left4me binary must agree on, each defined once:
//!
//! - [`game`]: where the game's versions live and what may name one;
//! - [`name`]: what may name an instance, blueprint, overlay or alias;
//! - [`layout`]: the directories of the state dir that layers and instances live in;
//! - [`passwd`]: looking the game and sandbox users up in `/etc/passwd`;
//! - [`printable`]: showing untrusted names and paths on one line;
//! - [`sandbox`]: the command line of `left4me-sandbox`, as a typed value that the job code
//!   turns into arguments and the runner parses back.
//!
//! Pure: no system calls beyond reading the passwd file.

#![forbid(unsafe_code)]

pub mod game;
pub mod layout;
pub mod name;
pub mod passwd;
pub mod printable;
pub mod sandbox;

pub use layout::{LAYER_ROOTS, MAX_LAYERS, RuntimeDirs};
pub use name::{check_name, is_valid_name};
pub use passwd::{Ids, PasswdError};
pub use sandbox::{Profile, SandboxArgs};
