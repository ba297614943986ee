//! The interactive RCON console of `left4mectl rcon NAME` on a terminal: a `NAME> ` prompt with
//! line editing and history (`rustyline`), one command per line.
//!
//! Ctrl-C clears the line being typed and sends nothing (the terminal is in raw mode while a
//! line is edited, so Ctrl-C is a key, not a signal; LinuxGSM's tmux console kills the server on
//! it). Ctrl-D on an empty line leaves. A connection the server dropped (a restart) is made
//! again for the next command.
//!
//! History is kept per invoking user in `$XDG_STATE_HOME/left4me/rcon_history` (default
//! `~/.local/state/left4me/rcon_history`), 0600. As the ownership rule asks, it is used only when
//! every directory on the way belongs to the user running left4mectl (under `sudo` with a `HOME`
//! that is not root's, history is off for the session and a note says why).

use std::ffi::OsString;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use rustyline::error::ReadlineError;
use rustyline::{Config, DefaultEditor};

use crate::error::EXIT_OK;
use crate::output::emit;
use crate::verbs::rcon::{Target, with_newline};

/// The most lines kept in the history file.
const HISTORY_LINES: usize = 1000;

/// Runs the console until Ctrl-D; an error only when the first connection fails.
pub fn run(target: &Target) -> anyhow::Result<u8> {
    let mut client = Some(target.connect()?);
    let mut editor = DefaultEditor::with_config(
        Config::builder()
            .max_history_size(HISTORY_LINES)?
            .history_ignore_dups(true)?
            .auto_add_history(false)
            .build(),
    )?;
    let history = match history_file(
        std::env::var_os("XDG_STATE_HOME"),
        std::env::var_os("HOME"),
        rustix::process::geteuid().as_raw(),
    ) {
        Ok(file) => {
            // A missing file is a first session.
            let _ = editor.load_history(&file);
            Some(file)
        }
        Err(why) => {
            eprintln!("note: no command history this session: {why}");
            None
        }
    };
    eprintln!(
        "connected to {} ({}); Ctrl-D leaves, Ctrl-C clears the line",
        target.name, target.addr
    );
    let prompt = format!("{}> ", target.name);
    loop {
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let command = line.trim();
        if command.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(command);
        let connected = match client.take() {
            Some(c) => Ok(c),
            None => target.connect(),
        };
        let result = connected.and_then(|mut c| match c.exec(command) {
            Ok(reply) => Ok((c, reply)),
            Err(e) => Err(target.explain(e)),
        });
        match result {
            Ok((c, reply)) => {
                emit(&with_newline(reply))?;
                client = Some(c);
            }
            // Said, and the next command connects again.
            Err(e) => eprintln!("error: {e:#}"),
        }
    }
    if let Some(file) = history
        && let Err(e) = editor.save_history(&file)
    {
        eprintln!(
            "note: could not save the history to {}: {e}",
            file.display()
        );
    }
    Ok(EXIT_OK)
}

/// The history file of user `uid` from its `XDG_STATE_HOME` and `HOME`, its directory created
/// (0700); refused when a directory on the way is not that user's.
fn history_file(
    xdg_state_home: Option<OsString>,
    home: Option<OsString>,
    uid: u32,
) -> Result<PathBuf, String> {
    let (base, checked) = match xdg_state_home.filter(|v| !v.is_empty()) {
        Some(state) => {
            let state = PathBuf::from(state);
            (state.clone(), vec![state])
        }
        None => {
            let home = PathBuf::from(home.ok_or("HOME is not set")?);
            (
                home.join(".local/state"),
                vec![home.clone(), home.join(".local"), home.join(".local/state")],
            )
        }
    };
    if !base.is_absolute() {
        return Err(format!("{} is not an absolute path", base.display()));
    }
    let dir = base.join("left4me");
    for path in &checked {
        if path.exists() {
            owned_by(path, uid)?;
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for path in checked.iter().chain([&dir]) {
        owned_by(path, uid)?;
    }
    let file = dir.join("rcon_history");
    match std::fs::symlink_metadata(&file) {
        Ok(meta) if !meta.file_type().is_file() => {
            Err(format!("{} is not a regular file", file.display()))
        }
        Ok(meta) if meta.uid() != uid => Err(format!(
            "{} belongs to uid {}, not to you (uid {uid})",
            file.display(),
            meta.uid()
        )),
        _ => Ok(file),
    }
}

/// Refuses `path` unless it is a directory of `uid`.
fn owned_by(path: &Path, uid: u32) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", path.display()));
    }
    if meta.uid() != uid {
        return Err(format!(
            "{} belongs to uid {}, not to you (uid {uid}); run with sudo -H or set \
             XDG_STATE_HOME to a directory of yours",
            path.display(),
            meta.uid()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("left4me-console-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn me() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    #[test]
    fn history_goes_under_xdg_state_home_or_home_in_a_private_dir() {
        let base = temp("xdg");
        let file = history_file(Some(base.clone().into()), None, me()).unwrap();
        assert_eq!(file, base.join("left4me/rcon_history"));
        let mode = std::fs::metadata(base.join("left4me"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);

        let home = temp("home");
        let file = history_file(Some(OsString::new()), Some(home.clone().into()), me()).unwrap();
        assert_eq!(file, home.join(".local/state/left4me/rcon_history"));
        std::fs::remove_dir_all(&base).unwrap();
        std::fs::remove_dir_all(&home).unwrap();
    }

    #[test]
    fn history_is_off_when_a_directory_on_the_way_is_someone_elses() {
        let home = temp("other");
        // Seen as another user: every directory here is "not yours".
        let err = history_file(None, Some(home.clone().into()), me() + 1).unwrap_err();
        assert!(err.contains("not to you"), "{err}");
        assert!(
            !home.join(".local").exists(),
            "nothing created in another's home"
        );
        assert!(history_file(Some("relative".into()), None, me()).is_err());
        assert!(history_file(None, None, me()).unwrap_err().contains("HOME"));
        std::fs::remove_dir_all(&home).unwrap();
    }
}
