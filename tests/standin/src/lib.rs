//! srcds-standin: a stand-in for the Left 4 Dead 2 dedicated server (`srcds_run -norestart`,
//! which execs `srcds_linux`), for tests of left4me.
//!
//! Installed as `srcds_run` at the root of a fake game tree, it behaves like the real server in
//! every way the toolkit relies on: it takes the srcds command line, treats the directory of
//! argv\[0\] as its game root, runs `<game>/cfg/server.cfg` and its `exec` chain, answers A2S
//! queries on `+ip:-port` (with challenges, and split replies on request), binds every port a real
//! server binds (UDP game, client and SourceTV ports, TCP RCON; a refused bind fails as the
//! engine fails, see `net`), answers RCON as srcds does (`rcon`, `bans`, `console`: auth,
//! multi-packet replies, `status`, `changelevel`, cvars), simulates players joining and leaving
//! (`players`, `control`), quits with status 0 on
//! SIGINT and SIGTERM, and can be told to start slowly, hang, wedge or crash, from its command
//! line or, while it runs, through `<game>/standin.control`. It writes what it saw (argv, cwd,
//! ids, capabilities, HOME, cfg order) to `<game>/standin.log`. At map load it lists the
//! `addons/*.vpk` it mounts (`addons`), also over RCON with the test-only `left4me_addons`. README.md beside this crate lists
//! every option.

pub mod addons;
pub mod args;
pub mod bans;
pub mod cfg;
pub mod console;
pub mod control;
pub mod net;
pub mod players;
pub mod rcon;
pub mod reply;
pub mod server;
pub mod signals;
