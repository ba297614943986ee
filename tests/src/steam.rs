//! The stand-in Steam and SteamCMD wired into a [`BootedSystem`], for the game scenarios, the
//! game benchmark and the demo: the fake Steam (`left4me-steamcmd-standin`) serving a depot on
//! [`STEAM_HOST`]:80 inside the system's own network namespace, and the stand-in SteamCMD kit
//! installed as host.toml's `steamcmd`.
//!
//! Nothing here leaves the system: the server is bound in its namespace and stopped from inside
//! it (its stop wakes its accept with a connect to its own address).

use std::net::TcpListener;
use std::path::Path;

use left4me_steamcmd_standin::{Depot, DepotFile, SteamServer, install_kit, serve};

use crate::booted::io_error;
use crate::{BootError, BootedSystem, release_binary};

/// The fake Steam's address: a documentation address, not in the build units' denied ranges.
pub const STEAM_HOST: &str = "192.0.2.10";
/// Its base URL (port 80: one SteamCMD may connect to).
pub const STEAM_URL: &str = "http://192.0.2.10:80";
/// Where the stand-in SteamCMD kit lies inside the system (host.toml `steamcmd` points here).
pub const KIT: &str = "/opt/steamcmd-standin";

/// The fake Steam, serving a depot inside a booted system; stopped when dropped.
#[derive(Debug)]
pub struct FakeSteam<'a> {
    sys: &'a BootedSystem,
    server: Option<SteamServer>,
}

impl<'a> FakeSteam<'a> {
    /// Gives the veth peer [`STEAM_HOST`], serves `depot` there, installs the SteamCMD kit
    /// at [`KIT`] (throttled to `throttle` bytes/s if given) and names it in host.toml.
    pub fn start(
        sys: &'a BootedSystem,
        depot: Depot,
        throttle: Option<u64>,
    ) -> Result<Self, BootError> {
        sys.add_peer_address(&format!("{STEAM_HOST}/32"))?;
        let listener = sys
            .in_netns(|| TcpListener::bind((STEAM_HOST, 80)))?
            .map_err(io_error("bind the fake Steam on", Path::new(STEAM_HOST)))?;
        let server = serve(depot, listener).map_err(io_error("serve", Path::new(STEAM_URL)))?;
        let kit = sys.host_path(KIT);
        install_kit(&kit, STEAM_URL, throttle).map_err(io_error("install the kit in", &kit))?;
        let host = sys.host_path("/etc/left4me/host.toml");
        std::fs::create_dir_all(host.parent().expect("a parent"))
            .and_then(|()| std::fs::write(&host, format!("steamcmd = \"{KIT}/steamcmd.sh\"\n")))
            .map_err(io_error("write", &host))?;
        Ok(FakeSteam {
            sys,
            server: Some(server),
        })
    }
}

impl Drop for FakeSteam<'_> {
    fn drop(&mut self) {
        let server = self.server.take();
        let _ = self.sys.in_netns(move || drop(server));
    }
}

/// The files every stand-in build has: the stand-in game server as `srcds_run`, a cfg, and
/// `left4dead2/steam.inf` naming the build (it changes with each build, as the real one does).
pub fn base_files(build: u64) -> std::io::Result<Vec<DepotFile>> {
    let srcds = std::fs::read(release_binary("srcds-standin"))?;
    Ok(vec![
        DepotFile::bytes("srcds_run", 0o755, &srcds),
        DepotFile::bytes("left4dead2/cfg/valve.rc", 0o644, b"// stand-in\n"),
        DepotFile::bytes(
            "left4dead2/steam.inf",
            0o644,
            format!("PatchVersion={build}\n").as_bytes(),
        ),
    ])
}
