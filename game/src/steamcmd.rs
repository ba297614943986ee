//! What SteamCMD is told and what its output means (DESIGN §8, docs/game.md "SteamCMD in the
//! sandbox"). Pure: no processes, no files; every function takes text and returns values, so
//! each is unit-tested on real SteamCMD output and safe to fuzz.
//!
//! - [`args`]: the argument vectors, in the order the real SteamCMD needs;
//! - [`output`]: one output line classified (progress, success, the known errors) and a whole
//!   run judged from its lines and exit status into one [`output::Verdict`];
//! - [`manifest`]: `steamapps/appmanifest_222860.acf` read and checked after every run;
//! - [`appinfo`]: the remote build id of a branch from `+app_info_print` output.
//!
//! VDF/ACF text is parsed with `keyvalues-parser`, never by hand ([`vdf`] wraps it).
//!
//! Sources of the facts used here (cited again where they are used):
//! - LinuxGSM `lgsm/modules/core_dl.sh` (`fn_dl_steamcmd`): argument order, and how it reads
//!   `0x202`/`0x212` (disk), `0x402`/`0x602` (network), "No subscription", "Two-factor code
//!   mismatch", "Password check for AppId" (beta password);
//! - steam-for-linux #4341 "SteamCMD exit codes": 0 success, 1 "Timed out waiting for AppInfo
//!   update", 5 login failures (two-factor mismatch, rate limit), 8 "Failed to install" and
//!   "state is 0x… after update job";
//! - steam-for-linux #11522, LinuxGSM #4706/#4754: `ERROR! Failed to install app '222860'
//!   (Invalid platform)` for anonymous installs since 2024-11-26, and the two-pass workaround
//!   (`+@sSteamCmdForcePlatformType windows`, then `linux` with `validate`).

pub mod appinfo;
pub mod args;
pub mod manifest;
pub mod output;
pub mod vdf;
