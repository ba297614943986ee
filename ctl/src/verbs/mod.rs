//! The verbs, one module per command group and one function per verb, so `left4mectl X Y` is
//! found in one place:
//!
//! - [`instance`]: `create`, `edit`, `set`, `show`, `list`, `validate`, `render`;
//! - [`lifecycle`]: `start`, `stop`, `restart` (also `--when-empty`), `reset`, `delete`,
//!   `status`, `logs`;
//! - [`players`]: `players`, and the A2S player counts `list` and the waits use;
//! - [`rcon`]: `rcon`, `rcon-password` (the live console over Source RCON);
//! - [`backup`]: `backup`, `restore` (the archive format in `crate::archive`);
//! - [`blueprint`]: `blueprint create`, `edit`, `set`, `show`, `list`;
//! - [`game`]: `game install`, `update`, `check`, `versions`, `validate`, `gc`, `login`
//!   (clients of the version store and the SteamCMD job);
//! - [`history`]: `history`, `diff`, `rollback` (the spec history in `left4me-history`);
//! - [`overlay`]: `overlay create`, `edit`, `show`, `list`, `rm`, and in [`overlay::build`]
//!   `overlay build` and `overlay jobs` (clients of the `left4me-jobs` pipeline).
//!
//! What they share lives beside this directory: the create/set/edit machinery (`change`), the
//! editor loop, spec files under the lock (`store`), systemd, and every display helper
//! (`output`).

pub(crate) mod backup;
pub(crate) mod blueprint;
pub(crate) mod game;
pub(crate) mod history;
pub(crate) mod instance;
pub(crate) mod lifecycle;
pub(crate) mod overlay;
pub(crate) mod players;
pub(crate) mod rcon;
