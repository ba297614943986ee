//! left4me-steam-standin: the fake Steam the stand-in SteamCMD downloads from.
//!
//! `left4me-steam-standin --depot DIR [--listen ADDR]` (default 127.0.0.1:0) prints
//! `listening on http://ADDR` and serves DIR (a `Depot`) until killed.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use left4me_steamcmd_standin::{Depot, serve_forever};

const USAGE: &str = "usage: left4me-steam-standin --depot DIR [--listen ADDR]";

fn main() -> ExitCode {
    let mut depot = None;
    let mut listen = "127.0.0.1:0".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--depot", Some(dir)) => depot = Some(PathBuf::from(dir)),
            ("--listen", Some(addr)) => listen = addr,
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(dir) = depot else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let listener = match TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on http://{addr}"),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    }
    if !dir.join("builds").is_dir() {
        eprintln!(
            "error: {} is not a depot (no builds/ in it); make one with Depot::create",
            dir.display()
        );
        return ExitCode::from(1);
    }
    match serve_forever(Depot::open(&dir), listener) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: serving {}: {e}", dir.display());
            ExitCode::from(1)
        }
    }
}
