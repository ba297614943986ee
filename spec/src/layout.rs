//! Where everything lives: the config dir and the state dir, and the files of each instance.

use std::path::{Path, PathBuf};

use left4me_contract::RuntimeDirs;

/// Overrides the config dir in every binary (tests, the demo).
pub const CONFIG_DIR_ENV: &str = "LEFT4ME_CONFIG_DIR";
/// Overrides the state dir in every binary, over `state_dir` in host.toml.
pub const STATE_DIR_ENV: &str = "LEFT4ME_STATE_DIR";
pub const DEFAULT_CONFIG_DIR: &str = "/etc/left4me";
/// Overrides the root-only dir in every binary (tests, the demo).
pub const ADMIN_DIR_ENV: &str = "LEFT4ME_ADMIN_DIR";
/// Root's own state: the job ledger and spec history, secrets, locks. Mode 0700, root's; never
/// inside the state dir, whose directories the game user may own.
pub const DEFAULT_ADMIN_DIR: &str = "/var/lib/left4me-admin";

/// The paths of one host: a config dir, a state dir and root's own admin dir.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Layout {
    pub config_dir: PathBuf,
    pub state_dir: PathBuf,
    pub admin_dir: PathBuf,
}

impl Layout {
    /// The config dir from `LEFT4ME_CONFIG_DIR`, else `/etc/left4me`.
    pub fn config_dir_from_env() -> PathBuf {
        std::env::var_os(CONFIG_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIR), PathBuf::from)
    }

    /// The admin dir from `LEFT4ME_ADMIN_DIR`, else `/var/lib/left4me-admin`.
    pub fn admin_dir_from_env() -> PathBuf {
        std::env::var_os(ADMIN_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_ADMIN_DIR), PathBuf::from)
    }

    /// The state dir from `LEFT4ME_STATE_DIR`, if set.
    pub fn state_dir_from_env() -> Option<PathBuf> {
        std::env::var_os(STATE_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    pub fn host_file(&self) -> PathBuf {
        self.config_dir.join("host.toml")
    }
    pub fn instances_dir(&self) -> PathBuf {
        self.config_dir.join("instances")
    }
    pub fn blueprints_dir(&self) -> PathBuf {
        self.config_dir.join("blueprints")
    }
    pub fn overlay_defs_dir(&self) -> PathBuf {
        self.config_dir.join("overlays")
    }
    pub fn instance_file(&self, name: &str) -> PathBuf {
        self.instances_dir().join(format!("{name}.toml"))
    }
    pub fn blueprint_file(&self, name: &str) -> PathBuf {
        self.blueprints_dir().join(format!("{name}.toml"))
    }
    pub fn overlay_def_file(&self, name: &str) -> PathBuf {
        self.overlay_defs_dir().join(format!("{name}.toml"))
    }

    /// The game install, the lowest layer of every instance.
    pub fn installation(&self) -> PathBuf {
        self.state_dir.join("installation")
    }
    /// The content of overlay `name`.
    pub fn overlay_content(&self, name: &str) -> PathBuf {
        self.state_dir.join("overlays").join(name)
    }
    pub fn workshop_cache(&self) -> PathBuf {
        self.state_dir.join("workshop_cache")
    }
    pub fn runtime_root(&self) -> PathBuf {
        self.state_dir.join(left4me_contract::layout::RUNTIME)
    }
    /// `runtime/NAME/{upper,work,merged}` of instance `name`.
    pub fn runtime(&self, name: &str) -> RuntimeDirs {
        RuntimeDirs::new(&self.state_dir, name)
    }
    /// The SQLite database: spec history and the job ledger (root-only).
    pub fn database(&self) -> PathBuf {
        self.admin_dir.join("left4me.db")
    }
    /// Per-instance and per-overlay lock files (root-only).
    pub fn locks_dir(&self) -> PathBuf {
        self.admin_dir.join("locks")
    }
    /// What workshop overlay NAME's last build found: its items, their titles and states
    /// (root-only; `left4mectl overlay show` reads it).
    pub fn workshop_state_file(&self, name: &str) -> PathBuf {
        self.admin_dir.join("workshop").join(format!("{name}.json"))
    }
}

/// Paths that end up in unit files and mount options are kept plain: printable ASCII without
/// spaces, quotes, backslashes, commas, colons or semicolons, so no quoting is ever needed.
pub(crate) fn check_plain_path_chars(path: &str) -> Result<(), String> {
    match path
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "/._-+@%=~".contains(c)))
    {
        None => Ok(()),
        Some(c) => Err(format!(
            "contains {:?}; paths may use only letters, digits and / . _ - + @ % = ~",
            c
        )),
    }
}

/// An absolute, normalized directory path with plain characters (see above).
pub(crate) fn check_absolute_dir(path: &Path) -> Result<(), String> {
    let Some(text) = path.to_str() else {
        return Err("is not valid UTF-8".into());
    };
    check_plain_path_chars(text)?;
    if !text.starts_with('/') || text == "/" {
        return Err(format!("'{text}' must be an absolute path below /"));
    }
    if text[1..]
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "'{text}' must be normalized (no '.', '..', '//' or trailing '/')"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_paths() {
        let layout = Layout {
            config_dir: "/etc/left4me".into(),
            state_dir: "/var/lib/left4me".into(),
            admin_dir: "/var/lib/left4me-admin".into(),
        };
        assert_eq!(
            layout.instance_file("coop1"),
            Path::new("/etc/left4me/instances/coop1.toml")
        );
        assert_eq!(
            layout.blueprint_file("coop"),
            Path::new("/etc/left4me/blueprints/coop.toml")
        );
        assert_eq!(
            layout.runtime("coop1").upper,
            Path::new("/var/lib/left4me/runtime/coop1/upper")
        );
        assert_eq!(
            layout.runtime("c").merged,
            Path::new("/var/lib/left4me/runtime/c/merged")
        );
        assert_eq!(
            layout.database(),
            Path::new("/var/lib/left4me-admin/left4me.db")
        );
    }

    #[test]
    fn absolute_dirs() {
        assert!(check_absolute_dir(Path::new("/var/lib/left4me")).is_ok());
        assert!(check_absolute_dir(Path::new("/srv/l4d2-state_1")).is_ok());
        for bad in [
            "",
            "/",
            "var/lib",
            "/var/lib/",
            "/var//lib",
            "/var/../etc",
            "/a b",
            "/a:b",
            "/a,b",
        ] {
            assert!(check_absolute_dir(Path::new(bad)).is_err(), "{bad:?}");
        }
    }
}
