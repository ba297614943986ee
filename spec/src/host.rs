//! Host settings: `host.toml` (optional; every key has a default).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{ErrorKind, SpecError};
use crate::layout::check_absolute_dir;
use crate::toml_fields::{Fields, parse_document};
use crate::values::CpuList;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/left4me";

/// Valve's SteamCMD for Linux, which `left4mectl game install` bootstraps when no SteamCMD is
/// installed (docs/game.md).
pub const DEFAULT_STEAMCMD_URL: &str =
    "https://steamcdn-a.akamaihd.net/client/installer/steamcmd_linux.tar.gz";

/// The Steam Web API workshop overlays are resolved with (no login, no key).
pub const DEFAULT_STEAM_WEB_API: &str = "https://api.steampowered.com";

/// The settings of `host.toml`, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostConfig {
    pub state_dir: PathBuf,
    /// The user the game runs as; owns the state dir.
    pub game_user: String,
    /// The user script overlays are built as.
    pub sandbox_user: String,
    /// Instance ports must lie in this inclusive range.
    pub port_range: (u16, u16),
    /// CPUs kept for the host and builds; `None` means the default split (CPU 0).
    pub system_cpus: Option<CpuList>,
    /// `steamcmd.sh` of an installed SteamCMD (its dir holds `linux32/`).
    pub steamcmd: Option<PathBuf>,
    /// Where SteamCMD is downloaded from when it has to be bootstrapped (an `https://` URL).
    pub steamcmd_url: String,
    /// The Steam Web API's base URL (`http://` or `https://`, no trailing `/`): workshop
    /// overlays resolve their items there.
    pub steam_web_api: String,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            game_user: "left4me".into(),
            sandbox_user: "l4d2-sandbox".into(),
            port_range: (27000, 27999),
            system_cpus: None,
            steamcmd: None,
            steamcmd_url: DEFAULT_STEAMCMD_URL.into(),
            steam_web_api: DEFAULT_STEAM_WEB_API.into(),
        }
    }
}

impl HostConfig {
    /// Reads `file`; a missing file means all defaults.
    pub fn load(file: &Path) -> Result<Self, SpecError> {
        match crate::read::read_spec(file) {
            Ok(text) => Self::parse(file, &text),
            Err(err) => match SpecError::read(file, &err) {
                e if e.kind == ErrorKind::NotFound => Ok(HostConfig::default()),
                e => Err(e),
            },
        }
    }

    pub fn parse(file: &Path, text: &str) -> Result<Self, SpecError> {
        let table = parse_document(file, text)?;
        let known = [
            "state_dir",
            "game_user",
            "sandbox_user",
            "port_range",
            "system_cpus",
            "steamcmd",
            "steamcmd_url",
            "steam_web_api",
        ];
        let mut fields = Fields::new(file, "", table, &known)?;
        let mut host = HostConfig::default();
        if let Some(dir) = fields.string("state_dir")? {
            check_absolute_dir(Path::new(&dir)).map_err(|why| fields.error("state_dir", why))?;
            host.state_dir = dir.into();
        }
        for (key, slot) in [
            ("game_user", &mut host.game_user),
            ("sandbox_user", &mut host.sandbox_user),
        ] {
            if let Some(user) = fields.string(key)? {
                check_user_name(&user).map_err(|why| fields.error(key, why))?;
                *slot = user;
            }
        }
        if host.game_user == host.sandbox_user {
            return Err(fields.error(
                "sandbox_user",
                "must differ from game_user, or builds could rewrite the game's files",
            ));
        }
        if let Some(value) = fields.take("port_range") {
            host.port_range = match value.as_array().map(Vec::as_slice).unwrap_or_default() {
                [
                    toml::Value::Integer(lo @ 1..=65535),
                    toml::Value::Integer(hi @ 1..=65535),
                ] if lo <= hi => (*lo as u16, *hi as u16),
                _ => {
                    return Err(fields.error(
                        "port_range",
                        "expected [FIRST, LAST] with 1 <= FIRST <= LAST <= 65535, e.g. [27000, 27999]",
                    ));
                }
            };
        }
        host.system_cpus = fields.parsed("system_cpus", CpuList::parse)?;
        if let Some(path) = fields.string("steamcmd")? {
            if !path.starts_with('/') {
                return Err(fields.error("steamcmd", format!("'{path}' must be an absolute path")));
            }
            host.steamcmd = Some(path.into());
        }
        if let Some(url) = fields.string("steamcmd_url")? {
            let plain = url.bytes().all(|b| b.is_ascii_graphic());
            if !url.starts_with("https://") || url.len() <= "https://".len() || !plain {
                return Err(fields.error(
                    "steamcmd_url",
                    format!(
                        "'{}' must be an https:// URL without spaces",
                        url.escape_debug()
                    ),
                ));
            }
            host.steamcmd_url = url;
        }
        if let Some(url) = fields.string("steam_web_api")? {
            host.steam_web_api =
                check_api_url(&url).map_err(|why| fields.error("steam_web_api", why))?;
        }
        Ok(host)
    }
}

/// An `http://` or `https://` base URL of printable ASCII with a host, without its trailing
/// `/`.
fn check_api_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let plain = url.bytes().all(|b| b.is_ascii_graphic());
    match rest {
        Some(rest) if plain && !rest.is_empty() && !rest.starts_with('/') => {
            Ok(url.trim_end_matches('/').to_owned())
        }
        _ => Err(format!(
            "'{}' must be an http:// or https:// URL without spaces, e.g. \"{DEFAULT_STEAM_WEB_API}\"",
            url.escape_debug()
        )),
    }
}

/// A user name as useradd and systemd-sysusers accept it.
fn check_user_name(user: &str) -> Result<(), String> {
    let bytes = user.as_bytes();
    let valid = matches!(bytes.first(), Some(b'a'..=b'z' | b'_'))
        && bytes.len() <= 32
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a valid user name",
            user.escape_debug()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/left4me/host.toml";

    fn parse(text: &str) -> Result<HostConfig, SpecError> {
        HostConfig::parse(Path::new(FILE), text)
    }

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(parse("").unwrap(), HostConfig::default());
        let missing = HostConfig::load(Path::new("/nonexistent/left4me/host.toml")).unwrap();
        assert_eq!(missing, HostConfig::default());
    }

    #[test]
    fn every_key() {
        let host = parse(
            "state_dir = '/srv/l4d2'\ngame_user = 'srcds'\nsandbox_user = 'build'\n\
             port_range = [27015, 27030]\nsystem_cpus = '0-1'\nsteamcmd = '/usr/games/steamcmd'\n\
             steamcmd_url = 'https://mirror.example/steamcmd_linux.tar.gz'\n\
             steam_web_api = 'http://192.0.2.11:80/'\n",
        )
        .unwrap();
        assert_eq!(host.state_dir, Path::new("/srv/l4d2"));
        assert_eq!(host.game_user, "srcds");
        assert_eq!(host.port_range, (27015, 27030));
        assert_eq!(host.system_cpus.unwrap().cpus(), [0, 1]);
        assert_eq!(host.steamcmd.unwrap(), Path::new("/usr/games/steamcmd"));
        assert_eq!(
            host.steamcmd_url,
            "https://mirror.example/steamcmd_linux.tar.gz"
        );
        assert_eq!(HostConfig::default().steamcmd_url, DEFAULT_STEAMCMD_URL);
        assert_eq!(host.steam_web_api, "http://192.0.2.11:80");
        assert_eq!(HostConfig::default().steam_web_api, DEFAULT_STEAM_WEB_API);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("state_dir = 'relative'", "state_dir"),
            ("state_dir = '/a b'", "state_dir"),
            ("game_user = 'Root!'", "game_user"),
            ("sandbox_user = 'left4me'", "sandbox_user"),
            ("port_range = [28000, 27000]", "port_range"),
            ("port_range = [0, 10]", "port_range"),
            ("port_range = 27015", "port_range"),
            ("system_cpus = 'x'", "system_cpus"),
            ("steamcmd = 'steamcmd'", "steamcmd"),
            ("steamcmd_url = 'http://x/s.tgz'", "steamcmd_url"),
            ("steamcmd_url = 'https://x/a b'", "steamcmd_url"),
            ("statedir = '/x'", "statedir"),
            ("steam_web_api = 'ftp://x'", "steam_web_api"),
            ("steam_web_api = 'https://'", "steam_web_api"),
            ("steam_web_api = 'https://a b'", "steam_web_api"),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{text}: {err}");
        }
    }
}
