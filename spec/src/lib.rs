//! The left4me spec model.
//!
//! Everything left4me knows about a host comes from small TOML files under the config directory
//! (`/etc/left4me` by default): `host.toml`, `instances/NAME.toml`, `blueprints/NAME.toml` and
//! `overlays/NAME.toml`. This crate parses and validates them, merges blueprints into instances,
//! knows where every file of an instance lives ([`Layout`]) and renders what the other pieces need:
//! the generator's drop-in, the composed `server.cfg`, the overlay lower-dir stack and the srcds
//! command line.
//!
//! It is pure: it reads files but performs no other system calls, and has no `unsafe`. The
//! generator, the supervisor and `left4mectl` all call the same code, so `left4mectl validate`
//! refuses exactly what the generator would skip at boot.

#![forbid(unsafe_code)]

mod calendar;
mod catalog;
mod error;
mod host;
mod instance;
mod layout;
mod overlay;
mod parallel;
mod ports;
mod read;
mod render;
mod schedule;
mod toml_fields;
mod tzdata;
mod values;

pub use calendar::Calendar;
pub use catalog::{Catalog, NameEntry, list_names, load_blueprint, load_host, load_instance};
pub use error::{ErrorKind, SpecError};
pub use host::{DEFAULT_STATE_DIR, DEFAULT_STEAM_WEB_API, HostConfig};
pub use instance::{
    Blueprint, DEFAULT_MAP, DEFAULT_READY_TIMEOUT, DEFAULT_WATCHDOG, Health, Instance,
    InstanceFile, MAX_LAYERS, Resources, Settings,
};
pub use layout::{
    ADMIN_DIR_ENV, CONFIG_DIR_ENV, DEFAULT_ADMIN_DIR, DEFAULT_CONFIG_DIR, Layout, STATE_DIR_ENV,
};
pub use left4me_contract::{check_name, is_valid_name};
pub use overlay::{MAX_WORKSHOP_IDS, OverlayDef, OverlayKind, OverlayRef, Refresh, ScriptLimits};
pub use parallel::map_chunks;
pub use ports::{
    Bind, CLIENT_PORT_OFFSET, MIN_EXTRA_PORT, PortKeys, Ports, Protocol, TV_PORT_OFFSET,
};
pub use read::{MAX_SPEC_BYTES, read_spec};
pub use render::{
    AliasCfg, GENERATED_HEADER, LEFT4MECTL, RCON_CFG, RCON_CFG_EXEC, RCON_LIMITS, RestartDropins,
    SCHEDULE_ANNOUNCE, SCHEDULE_ANNOUNCE_MAX_WAIT, SERVER_CFG, alias_cfgs, lower_layers,
    lower_layers_over, render_dropin, render_rcon_cfg, render_restart_dropins, render_server_cfg,
    render_slice_dropins, restart_argv, srcds_argv,
};
pub use schedule::{DEFAULT_MAX_WAIT, Schedule, ScheduleKeys};
pub use toml_fields::line_column;
pub use values::{CpuList, Duration, Size};
