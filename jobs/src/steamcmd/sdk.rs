//! `game/sdk/sdk32/steamclient.so` and `sdk64/steamclient.so`: the Steam client library the
//! game server loads through the game user's `~/.steam/sdk32` and `sdk64` (without it the
//! server is LAN-only, DESIGN §7), copied from the SteamCMD in use after a run (SteamCMD
//! updates it when it updates itself).
//!
//! Root copies by descriptor: the source is content SteamCMD wrote (root-owned on disk, but
//! untrusted), opened beneath the state dir without following links; the copy is written to
//! a temp file, synced and renamed over the old one, so a server starting meanwhile sees the
//! old library or the new one, never half of one.

use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use left4me_contract::game::SDK;
use left4me_statedir::{Dir, RESOLVE_STRICT, StateDir, openat2_retry};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::GameJobError;
use super::files::beneath;
use crate::PathIo;

/// The client library's name.
pub const STEAMCLIENT: &str = "steamclient.so";

/// `(SteamCMD's dir, sdk dir)` pairs.
const PAIRS: [(&str, &str); 2] = [("linux32", "sdk32"), ("linux64", "sdk64")];

fn io(action: &'static str, path: PathBuf) -> impl FnOnce(rustix::io::Errno) -> GameJobError {
    move |errno| {
        GameJobError::Io(PathIo {
            action,
            path,
            source: errno.into(),
        })
    }
}

fn open_or_create(dir: &Dir, name: &str) -> Result<Dir, GameJobError> {
    Ok(match dir.open_dir_if_exists(name)? {
        Some(found) => found,
        None => dir.create_dir(name, (0, 0), 0o755)?,
    })
}

/// Copies `linux32/steamclient.so` and `linux64/steamclient.so` of SteamCMD's `home` to
/// `sdk/sdk32` and `sdk/sdk64` beside it (the home's parent is `game/`); the paths written.
/// A library SteamCMD does not have (yet) is skipped.
pub fn install_sdk(state_dir: &Path, home: &Path) -> Result<Vec<PathBuf>, GameJobError> {
    let state = StateDir::open(state_dir)?;
    let rel = beneath(state_dir, home)?;
    let game_rel = rel
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| GameJobError::NotBeneath {
            path: home.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
        })?;
    let home = state.open_dir(rel)?;
    let game = state.open_dir(game_rel)?;
    let mut written = Vec::new();
    for (from, to) in PAIRS {
        let Some(source_dir) = home.open_dir_if_exists(from)? else {
            continue;
        };
        let source_path = source_dir.path().join(STEAMCLIENT);
        match rustix::fs::statat(source_dir.fd(), STEAMCLIENT, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => {}
            _ => continue,
        }
        let source: OwnedFd = openat2_retry(
            source_dir.fd(),
            Path::new(STEAMCLIENT),
            OFlags::RDONLY | OFlags::NOFOLLOW,
            Mode::empty(),
            RESOLVE_STRICT,
        )
        .map_err(io("open", source_path.clone()))?;
        let target_dir = open_or_create(&open_or_create(&game, SDK)?, to)?;
        let temp = format!(".{STEAMCLIENT}.new-{}", std::process::id());
        let temp_path = target_dir.path().join(&temp);
        let _ = rustix::fs::unlinkat(target_dir.fd(), temp.as_str(), AtFlags::empty());
        let dest: OwnedFd = rustix::fs::openat(
            target_dir.fd(),
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(io("create", temp_path.clone()))?;
        let mut dest = std::fs::File::from(dest);
        let copied = std::io::copy(&mut std::fs::File::from(source), &mut dest)
            .and_then(|_| dest.flush())
            .and_then(|()| dest.sync_all());
        if let Err(source) = copied {
            let _ = rustix::fs::unlinkat(target_dir.fd(), temp.as_str(), AtFlags::empty());
            return Err(GameJobError::Io(PathIo {
                action: "copy",
                path: source_path,
                source,
            }));
        }
        // Replacing: the statedir rename refuses an existing target.
        rustix::fs::renameat(target_dir.fd(), temp.as_str(), target_dir.fd(), STEAMCLIENT)
            .map_err(io("rename", temp_path))?;
        written.push(target_dir.path().join(STEAMCLIENT));
    }
    Ok(written)
}

#[cfg(test)]
mod privileged_tests {
    use std::fs;

    use super::*;
    use crate::testing::{TempDir, current_ids};

    #[test]
    fn privileged_copies_both_libraries_and_ignores_a_planted_link() {
        assert_eq!(current_ids().uid, 0, "privileged test: run as root");
        let dir = TempDir::new("sdk");
        let state = dir.path().join("state");
        let home = state.join("game/steamcmd");
        fs::create_dir_all(home.join("linux32")).unwrap();
        fs::create_dir_all(home.join("linux64")).unwrap();
        fs::write(home.join("linux32/steamclient.so"), "32").unwrap();
        // SteamCMD's content is untrusted: a link to a host file is not copied.
        std::os::unix::fs::symlink("/etc/hostname", home.join("linux64/steamclient.so")).unwrap();
        let written = install_sdk(&state, &home).unwrap();
        assert_eq!(written, [state.join("game/sdk/sdk32/steamclient.so")]);
        assert_eq!(fs::read_to_string(&written[0]).unwrap(), "32");
        fs::write(home.join("linux32/steamclient.so"), "32 again").unwrap();
        install_sdk(&state, &home).unwrap();
        assert_eq!(fs::read_to_string(&written[0]).unwrap(), "32 again");
        assert!(!state.join("game/sdk/sdk64/steamclient.so").exists());
    }
}
