//! Editing a spec in the operator's editor: a hidden copy next to the spec, validated when the
//! editor exits, "Edit again?" while it is invalid. The spec itself is never touched here; the
//! caller installs the result.

use std::io::{self, BufRead as _, IsTerminal as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use crate::error::{EXIT_INVALID, UsageError, exit_status};
use crate::store::{StoreError, TempFile};

#[derive(Debug, thiserror::Error)]
pub enum EditorError {
    #[error("cannot run the editor `{editor}`: {source}; set $EDITOR to an editor that exists")]
    Spawn { editor: String, source: io::Error },
    #[error("the editor `{editor}` failed ({status}); {} is unchanged", file.display())]
    Failed {
        editor: String,
        status: ExitStatus,
        file: PathBuf,
    },
    #[error("cannot read your answer: {0}")]
    Prompt(io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome of an editing session.
#[derive(Debug)]
pub enum Edited {
    /// The operator saved the text unchanged (or did not save).
    Unchanged,
    /// Valid new text; `draft` is the hidden copy, removed when dropped.
    Changed { text: String, draft: TempFile },
}

/// `$VISUAL`, else `$EDITOR`, else `editor` when it is on `$PATH`, else `vi`.
pub fn choose_editor() -> String {
    for var in ["VISUAL", "EDITOR"] {
        if let Ok(value) = std::env::var(var)
            && !value.trim().is_empty()
        {
            return value;
        }
    }
    if on_path("editor") {
        "editor".into()
    } else {
        "vi".into()
    }
}

fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Runs `editor` on `path` the way git does: through `sh`, so `EDITOR="code --wait"` works.
fn run_editor(editor: &str, path: &Path, file: &Path) -> Result<(), EditorError> {
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{editor} \"$@\""))
        .arg(editor)
        .arg(path)
        .status()
        .map_err(|source| EditorError::Spawn {
            editor: editor.to_owned(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(EditorError::Failed {
            editor: editor.to_owned(),
            status,
            file: file.to_path_buf(),
        })
    }
}

/// Asks a yes/no question on stderr, `default` on an empty answer; end of input means no.
fn ask(question: &str, default: bool) -> Result<bool, EditorError> {
    let stdin = io::stdin();
    loop {
        eprint!("{question}");
        let _ = io::stderr().flush();
        let mut answer = String::new();
        if stdin
            .lock()
            .read_line(&mut answer)
            .map_err(EditorError::Prompt)?
            == 0
        {
            eprintln!();
            return Ok(false);
        }
        match answer.trim().to_ascii_lowercase().as_str() {
            "" => return Ok(default),
            "y" | "yes" => return Ok(true),
            "n" | "no" => return Ok(false),
            _ => eprintln!("Please answer y or n."),
        }
    }
}

/// Lets the operator edit a copy of `original` (the text of `file`) until `check` accepts it or
/// they give up. `check` returns a validation error (exit status 2) to ask again; any other
/// error ends the session.
pub fn edit_until_valid(
    file: &Path,
    original: &str,
    mut check: impl FnMut(&str) -> anyhow::Result<()>,
    verbose: u8,
) -> anyhow::Result<Edited> {
    let dir = file.parent().expect("spec paths have a parent dir");
    let name = file
        .file_name()
        .expect("spec paths have a file name")
        .to_string_lossy();
    let (draft, mut handle) = TempFile::create(dir, &name, 0o600)?;
    let write_error = |source| StoreError::Write {
        path: draft.path().to_path_buf(),
        source,
    };
    handle.write_all(original.as_bytes()).map_err(write_error)?;
    drop(handle);
    let editor = choose_editor();
    loop {
        if verbose > 0 {
            eprintln!("running {editor} {}", draft.path().display());
        }
        run_editor(&editor, draft.path(), file)?;
        let text = crate::store::read(draft.path())?;
        if text == original {
            return Ok(Edited::Unchanged);
        }
        let Err(err) = check(&text) else {
            return Ok(Edited::Changed { text, draft });
        };
        if exit_status(&err) != EXIT_INVALID || !io::stdin().is_terminal() {
            return Err(err);
        }
        eprintln!("error: {err:#}");
        if !ask("Edit again? [Y/n] ", true)? {
            // A usage error: exit status 2, nothing was changed.
            let abandoned = format!("edit abandoned; {} is unchanged", file.display());
            return Err(UsageError::new(abandoned).into());
        }
    }
}
