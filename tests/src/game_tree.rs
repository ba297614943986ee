//! A stand-in game install in a state directory: the `installation/` tree with
//! a given `srcds_run`, and the Steam client layout of DESIGN.md section 7
//! (`~/.steam/sdk32` and `sdk64` pointing at steamcmd's `linux32`/`linux64`).
//!
//! Everything is root's, as a game installed by hand is (DESIGN.md section 2:
//! the game user owns only the leaves it must write; it only reads the game).

use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

/// Errors of laying out the game tree.
#[derive(Debug, thiserror::Error)]
pub enum GameTreeError {
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot copy {from} to {to}: {source}")]
    Copy {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Where the pieces of the stand-in game install are, as paths inside the
/// booted system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameTree {
    /// `<state>/installation`, the read-only lower layer of every instance.
    pub installation: PathBuf,
    /// The stand-in steamcmd directory holding `linux32/` and `linux64/`.
    pub steamcmd: PathBuf,
}

/// Lays out the game tree in the state directory at `host_state` (a host
/// path), which the booted system sees at `state_inside`. `srcds_run` is
/// copied in as `installation/srcds_run`. The directories made are
/// `installation/`, `.steam/` and their contents, all owned by the caller
/// (root).
pub fn lay_out(
    host_state: &Path,
    state_inside: &Path,
    srcds_run: &Path,
) -> Result<GameTree, GameTreeError> {
    let installation = host_state.join("installation");
    for dir in ["left4dead2/cfg", "left4dead2/addons", "left4dead2/maps"] {
        create_dir(&installation.join(dir))?;
    }
    let game_srcds = installation.join("srcds_run");
    std::fs::copy(srcds_run, &game_srcds)
        .and_then(|_| std::fs::set_permissions(&game_srcds, PermissionsExt::from_mode(0o755)))
        .map_err(|source| GameTreeError::Copy {
            from: srcds_run.to_owned(),
            to: game_srcds.clone(),
            source,
        })?;
    write(
        &installation.join("left4dead2/gameinfo.txt"),
        "// left4me test stand-in: not the real game\n\"GameInfo\" { game \"Left 4 Dead 2\" }\n",
    )?;

    let steam = host_state.join(".steam");
    let steamcmd_inside = state_inside.join(".steam/steamcmd");
    for (arch, sdk) in [("linux32", "sdk32"), ("linux64", "sdk64")] {
        let dir = steam.join("steamcmd").join(arch);
        create_dir(&dir)?;
        write(
            &dir.join("steamclient.so"),
            &format!("left4me test stand-in steamclient.so ({arch})\n"),
        )?;
        let link = steam.join(sdk);
        if link.symlink_metadata().is_err() {
            symlink(steamcmd_inside.join(arch), &link).map_err(|source| GameTreeError::Create {
                path: link.clone(),
                source,
            })?;
        }
    }

    Ok(GameTree {
        installation: state_inside.join("installation"),
        steamcmd: steamcmd_inside,
    })
}

fn create_dir(path: &Path) -> Result<(), GameTreeError> {
    std::fs::create_dir_all(path).map_err(|source| GameTreeError::Create {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, contents: &str) -> Result<(), GameTreeError> {
    std::fs::write(path, contents).map_err(|source| GameTreeError::Create {
        path: path.to_owned(),
        source,
    })
}

/// The uid and gid of `user` in the `etc/passwd` beneath `root`.
pub fn lookup_user(root: &Path, user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            [name, _, uid, gid, ..] if *name == user => {
                Some((uid.parse().ok()?, gid.parse().ok()?))
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "left4me-tests-game-tree-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn lays_out_installation_and_steam_links() {
        let dir = scratch("layout");
        let server = dir.join("srcds-standin");
        std::fs::write(&server, "#!/bin/sh\n").unwrap();
        let state = dir.join("state");
        let tree = lay_out(&state, Path::new("/var/lib/left4me"), &server).unwrap();
        assert_eq!(
            tree.installation,
            Path::new("/var/lib/left4me/installation")
        );
        let srcds = state.join("installation/srcds_run");
        assert_eq!(std::fs::read_to_string(&srcds).unwrap(), "#!/bin/sh\n");
        assert_eq!(
            srcds.metadata().unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert!(state.join("installation/left4dead2/cfg").is_dir());
        assert_eq!(
            std::fs::read_link(state.join(".steam/sdk32")).unwrap(),
            Path::new("/var/lib/left4me/.steam/steamcmd/linux32")
        );
        assert_eq!(
            std::fs::read_link(state.join(".steam/sdk64")).unwrap(),
            Path::new("/var/lib/left4me/.steam/steamcmd/linux64")
        );
        assert!(
            state
                .join(".steam/steamcmd/linux64/steamclient.so")
                .is_file()
        );
        // Laying out twice is fine (a test may call it after a reboot).
        lay_out(&state, Path::new("/var/lib/left4me"), &server).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn looks_up_users() {
        let dir = scratch("passwd");
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nleft4me:x:998:997::/var/lib/left4me:/usr/sbin/nologin\n",
        )
        .unwrap();
        assert_eq!(lookup_user(&dir, "left4me"), Some((998, 997)));
        assert_eq!(lookup_user(&dir, "nobody"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
