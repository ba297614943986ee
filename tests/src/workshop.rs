//! The stand-in Steam Workshop (`left4me-workshop-standin`) wired into a [`BootedSystem`], for
//! `booted_workshop` and the workshop benchmark: the stand-in Steam Web API and file server on
//! [`WORKSHOP_HOST`]:80 inside the system's own network namespace, named in host.toml as
//! `steam_web_api`.
//!
//! The address is a documentation address and the port 80: the download unit's sandbox allows
//! only public addresses and TCP 80/443, so the stand-in sits where a real CDN could. Nothing
//! here leaves the system: the server is bound in its namespace and stopped from inside it (its
//! stop wakes its accept with a connect to its own address).

use std::net::TcpListener;
use std::ops::Deref;
use std::path::Path;

use left4me_workshop_standin::fixture::Fixture;
use left4me_workshop_standin::server::WorkshopServer;

use crate::booted::io_error;
use crate::{BootError, BootedSystem};

/// The stand-in workshop's address (not the fake Steam's 192.0.2.10, so both can run).
pub const WORKSHOP_HOST: &str = "192.0.2.11";
/// Its base URL, host.toml's `steam_web_api`.
pub const WORKSHOP_URL: &str = "http://192.0.2.11:80";
/// host.toml inside the system.
pub const HOST_TOML: &str = "/etc/left4me/host.toml";

/// The stand-in workshop, serving a fixture inside a booted system; stopped when dropped.
/// Derefs to the [`WorkshopServer`] handle (`update_item`, `fail_next_api`, the counters).
#[derive(Debug)]
pub struct FakeWorkshop<'a> {
    sys: &'a BootedSystem,
    server: Option<WorkshopServer>,
}

impl<'a> FakeWorkshop<'a> {
    /// Gives the veth peer [`WORKSHOP_HOST`], serves `fixture` there on port 80 and adds
    /// `steam_web_api = WORKSHOP_URL` to host.toml (keeping what it says besides).
    pub fn start(sys: &'a BootedSystem, fixture: Fixture) -> Result<Self, BootError> {
        sys.add_peer_address(&format!("{WORKSHOP_HOST}/32"))?;
        let listener = sys
            .in_netns(|| TcpListener::bind((WORKSHOP_HOST, 80)))?
            .map_err(io_error(
                "bind the stand-in workshop on",
                Path::new(WORKSHOP_HOST),
            ))?;
        let server = WorkshopServer::serve(fixture, listener)
            .map_err(io_error("serve", Path::new(WORKSHOP_URL)))?;
        let host = sys.host_path(HOST_TOML);
        let before = std::fs::read_to_string(&host).unwrap_or_default();
        let kept: String = before
            .lines()
            .filter(|line| !line.trim_start().starts_with("steam_web_api"))
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::create_dir_all(host.parent().expect("a parent"))
            .and_then(|()| {
                std::fs::write(&host, format!("{kept}steam_web_api = \"{WORKSHOP_URL}\"\n"))
            })
            .map_err(io_error("write", &host))?;
        Ok(FakeWorkshop {
            sys,
            server: Some(server),
        })
    }
}

impl Deref for FakeWorkshop<'_> {
    type Target = WorkshopServer;

    fn deref(&self) -> &WorkshopServer {
        self.server.as_ref().expect("serving until dropped")
    }
}

impl Drop for FakeWorkshop<'_> {
    fn drop(&mut self) {
        let server = self.server.take();
        let _ = self.sys.in_netns(move || drop(server));
    }
}

/// `resolved N item(s) … ms of API round trips` from `overlay build`'s output: the
/// resolution's API time in milliseconds, if the line is there.
pub fn api_time_ms(build_output: &str) -> Option<f64> {
    build_output.lines().find_map(|line| {
        let rest = line.split(" API request(s), ").nth(1)?;
        rest.split(" ms of API round trips").next()?.parse().ok()
    })
}

/// The content job's own time from a workshop build's summary (`published in 91ms:` or
/// `nothing published (12ms)`, as `left4me_jobs::format_duration` writes it), milliseconds.
pub fn job_time_ms(build_output: &str) -> Option<f64> {
    let took = build_output.lines().find_map(|line| {
        line.split_once("published in ")
            .and_then(|(_, rest)| rest.split(':').next())
            .or_else(|| {
                line.split_once("nothing published (")
                    .and_then(|(_, rest)| rest.split(')').next())
            })
    })?;
    if let Some(ms) = took.strip_suffix("ms") {
        ms.parse().ok()
    } else {
        took.strip_suffix('s')?
            .parse::<f64>()
            .ok()
            .map(|s| s * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_api_time_line() {
        let out = "overlay x: resolving 0 item(s) and 1 collection(s) with http://h\n  \
                   resolved 200 item(s) with 3 API request(s), 12.5 ms of API round trips\n";
        assert_eq!(api_time_ms(out), Some(12.5));
        assert_eq!(api_time_ms("nothing"), None);
    }

    #[test]
    fn reads_the_job_time() {
        let published = "overlay x: 3 item(s); downloaded 1 file(s), 118 B; published in 91ms: …";
        assert_eq!(job_time_ms(published), Some(91.0));
        let unchanged = "overlay x: 200 item(s); nothing downloaded; unchanged upstream, nothing \
                         published (1.5s)";
        assert_eq!(job_time_ms(unchanged), Some(1500.0));
        assert_eq!(job_time_ms("overlay x: build failed after 3ms"), None);
    }
}
