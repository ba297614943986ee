//! Which game version each instance runs and which one a start would mount now, for `status`
//! and `list` (docs/game.md "Instances").
//!
//! The running version is read back from the mount table (the instance's tagged overlay and
//! its first `game/versions/ID/tree` lower: `left4me_game::store::running_versions`); what a
//! start would mount is the store's answer for the spec's pin or `game/current`. They differ
//! while the instance runs: "update pending", a restart moves it.

use std::collections::BTreeMap;
use std::path::Path;

use left4me_game::store::{self, GameLayers};
use left4me_spec::Instance;
use left4me_statedir::{Dir, StateDir};
use rustix::fs::{Mode, OFlags};
use serde::Serialize;

/// One instance's game, as `status --json` and `list --json` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GameView {
    /// The version its mount uses (`null`: not mounted, or mounted on `installation/`).
    pub game_version: Option<String>,
    /// The version a start would mount now (`null`: the hand-installed `installation/`, or
    /// unknown, see `game_error`).
    pub game_version_next: Option<String>,
    /// Whether `game_version` is pinned by the spec (`game_version =`).
    pub game_version_pinned: bool,
    /// It runs, and a restart would mount another version than the one it runs.
    pub update_pending: bool,
    /// Why the version a start would mount is unknown (a pin naming no version, a broken
    /// store).
    pub game_error: Option<String>,
}

/// The mount table and the store, read once for every instance shown.
#[derive(Debug)]
pub struct GameViews {
    running: BTreeMap<String, String>,
    state: Option<Dir>,
}

impl GameViews {
    /// Reads the running versions and opens the state dir; whatever cannot be read is shown
    /// as unknown, never an error (the listing is still useful without it).
    pub fn load(state_dir: &Path) -> GameViews {
        GameViews {
            running: running(state_dir),
            state: open_state(state_dir),
        }
    }

    /// The game layers a start of `instance` would mount now (its pin, else the current
    /// version, else `installation/`), or why that is unknown.
    pub fn layers(&self, instance: &Instance) -> Result<GameLayers, String> {
        let pin = instance.game_version.as_deref();
        match &self.state {
            Some(state) => store::resolve_in(state, pin).map_err(|e| e.to_string()),
            None => Err("the state dir cannot be opened".to_owned()),
        }
    }

    /// The game of `instance`; `active`: its unit is running (or starting).
    pub fn of(&self, instance: &Instance, active: bool) -> GameView {
        let running = self.running.get(&instance.name).cloned();
        let pin = instance.game_version.as_deref();
        let (next, error) = match self.layers(instance) {
            Ok(GameLayers::Installation) => (None, None),
            Ok(GameLayers::Version { id, .. }) => (Some(id), None),
            Err(error) => (None, Some(error)),
        };
        GameView {
            update_pending: active && error.is_none() && running != next,
            game_version: running,
            game_version_next: next,
            game_version_pinned: pin.is_some(),
            game_error: error,
        }
    }

    /// The running version of an instance whose spec is broken (nothing to compare with).
    pub fn running_only(&self, name: &str) -> GameView {
        GameView {
            game_version: self.running.get(name).cloned(),
            game_error: Some("the spec is invalid: what a start would mount is unknown".into()),
            ..GameView::default()
        }
    }
}

impl GameView {
    /// One line for `status`: what runs, and what a start would mount.
    pub fn describe(&self, name: &str, active: bool) -> String {
        let pinned = if self.game_version_pinned {
            ", pinned by game_version"
        } else {
            ""
        };
        let next = match &self.game_version_next {
            Some(id) => format!("game version {id}{pinned}"),
            None => "installation/".to_owned(),
        };
        if let Some(error) = &self.game_error {
            return match &self.game_version {
                Some(id) => format!("game version {id}; error: {error}"),
                None => format!("error: {error}"),
            };
        }
        let running = match &self.game_version {
            Some(id) => format!("game version {id}"),
            None => "installation/".to_owned(),
        };
        if !active {
            format!("- (not running; a start mounts {next})")
        } else if self.update_pending {
            format!(
                "{running}; update pending: a restart moves it to {next} (`left4mectl restart \
                 {name}`)"
            )
        } else {
            format!("{running}{pinned}")
        }
    }

    /// The `GAME` cell of `list`: the running version (or what a start mounts, in
    /// parentheses), with `*` when an update is pending.
    pub fn cell(&self, active: bool) -> String {
        let id = |v: &Option<String>| v.clone().unwrap_or_else(|| "installation".into());
        if self.game_error.is_some() {
            "error".into()
        } else if !active {
            format!("({})", id(&self.game_version_next))
        } else if self.update_pending {
            format!(
                "{} -> {}",
                id(&self.game_version),
                id(&self.game_version_next)
            )
        } else {
            id(&self.game_version)
        }
    }
}

/// Each instance's running version; PID 1's mount table, else (not root) the caller's, which is
/// the host's unless the caller sits in a private mount namespace.
fn running(state_dir: &Path) -> BTreeMap<String, String> {
    if let Ok(running) = store::running_versions(state_dir) {
        return running;
    }
    std::fs::read("/proc/self/mountinfo")
        .ok()
        .and_then(|text| left4me_overlay::mountinfo::parse(&text).ok())
        .map(|table| store::running_versions_in(&table, state_dir))
        .unwrap_or_default()
}

/// The state dir: checked as root (the ownership rule), plainly opened otherwise.
fn open_state(state_dir: &Path) -> Option<Dir> {
    if rustix::process::geteuid().is_root() {
        return StateDir::open(state_dir)
            .ok()
            .map(|state| Dir::from_fd(state.into_fd(), state_dir.to_owned()));
    }
    rustix::fs::open(
        state_dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()
    .map(|fd| Dir::from_fd(fd, state_dir.to_owned()))
}

/// Whether a unit in `active_state` runs (or is starting): the states in which its mount is
/// the one it runs on.
pub fn is_running(active_state: Option<&str>) -> bool {
    matches!(
        active_state,
        Some("active" | "activating" | "reloading" | "deactivating")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(running: Option<&str>, next: Option<&str>, pending: bool) -> GameView {
        GameView {
            game_version: running.map(str::to_owned),
            game_version_next: next.map(str::to_owned),
            game_version_pinned: false,
            update_pending: pending,
            game_error: None,
        }
    }

    #[test]
    fn lines_and_cells() {
        let v = view(Some("100"), Some("200"), true);
        assert_eq!(
            v.describe("coop1", true),
            "game version 100; update pending: a restart moves it to game version 200 \
             (`left4mectl restart coop1`)"
        );
        assert_eq!(v.cell(true), "100 -> 200");
        let v = view(Some("200"), Some("200"), false);
        assert_eq!(v.describe("coop1", true), "game version 200");
        assert_eq!(v.cell(true), "200");
        let v = view(None, None, false);
        assert_eq!(v.describe("coop1", true), "installation/");
        assert_eq!(
            v.describe("coop1", false),
            "- (not running; a start mounts installation/)"
        );
        assert_eq!(v.cell(false), "(installation)");
        let mut v = view(None, Some("7"), false);
        v.game_version_pinned = true;
        assert_eq!(
            v.describe("x", false),
            "- (not running; a start mounts game version 7, pinned by game_version)"
        );
        v.game_error = Some("game version 7 does not exist".into());
        assert_eq!(
            v.describe("x", true),
            "error: game version 7 does not exist"
        );
        assert_eq!(v.cell(true), "error");
        assert!(is_running(Some("active")) && !is_running(Some("failed")) && !is_running(None));
    }
}
