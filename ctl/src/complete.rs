//! Shell completion: clap_complete's dynamic engine over the clap tree, with the names of
//! instances, blueprints and overlays read from the config dir at the moment Tab is pressed.
//!
//! The shell scripts (bash, zsh, fish; [`write_registration`]) are a few lines that call
//! `left4mectl` again with [`COMPLETE_VAR`] set to the shell's name and the words typed so
//! far; [`complete_from_env`], the first thing `main` does, answers such a call and exits. So
//! a new verb or flag completes without touching the scripts, and the three shells share one
//! implementation. The price is one short process per Tab, which reads only the config dir's
//! listings (never a spec's content, the state dir or systemd).
//!
//! Which argument takes which kind of name is decided by walking the tree once ([`command`]):
//! the positional `name`/`names`/`target` of a verb under `blueprint` completes blueprint
//! names, under `overlay` overlay names, under `game` nothing, and of any other verb instance
//! names; a verb that makes a new name (`create`) gets no completion for it. `--blueprint`
//! completes blueprint names and `--overlay` `overlays/NAME` paths everywhere.

use std::ffi::OsStr;
use std::io;

use clap::{Command, CommandFactory as _};
use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};
use clap_complete::env::{CompleteEnv, EnvCompleter, Shells};
use left4me_spec::{Layout, list_names};

use crate::Cli;

/// The environment variable that turns a `left4mectl` run into a completion request
/// (`LEFT4MECTL_COMPLETE=bash left4mectl` prints the bash script).
pub const COMPLETE_VAR: &str = "LEFT4MECTL_COMPLETE";

/// The installed program the scripts call back, found through `PATH`.
const BIN: &str = "left4mectl";

/// Argument ids that hold the name of an existing thing, completed by the kind of the verb.
const NAME_ARGS: &[&str] = &["name", "names", "target"];

/// A kind of named spec, and its dir under the config dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Instance,
    Blueprint,
    Overlay,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Instance => "instances",
            Kind::Blueprint => "blueprints",
            Kind::Overlay => "overlays",
        }
    }
}

/// The names of `kind` in the config dir (`LEFT4ME_CONFIG_DIR`, else `/etc/left4me`) that
/// start with `prefix`, each with `before` put in front (`overlays/` for `--overlay`). A file
/// whose stem is not a valid name, and an unreadable dir, yield nothing: completion never
/// prints an error into the operator's command line.
fn names(kind: Kind, before: &str, prefix: &OsStr) -> Vec<CompletionCandidate> {
    let Some(prefix) = prefix.to_str() else {
        return Vec::new();
    };
    let dir = Layout::config_dir_from_env().join(kind.dir());
    list_names(&dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, valid)| valid.is_ok())
        .map(|(name, _)| format!("{before}{name}"))
        .filter(|value| value.starts_with(prefix))
        .map(CompletionCandidate::new)
        .collect()
}

fn completer(kind: Kind, before: &'static str) -> ArgValueCompleter {
    ArgValueCompleter::new(move |current: &OsStr| names(kind, before, current))
}

/// `left4mectl`'s clap tree with a name completer on every argument that takes one.
pub fn command() -> Command {
    let cmd = Cli::command();
    let verbs: Vec<String> = cmd
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    verbs.into_iter().fold(cmd, |cmd, verb| {
        let kind = match verb.as_str() {
            "blueprint" => Some(Kind::Blueprint),
            "overlay" => Some(Kind::Overlay),
            "game" => None,
            _ => Some(Kind::Instance),
        };
        cmd.mut_subcommand(verb, |sub| attach(sub, kind))
    })
}

/// Attaches completers to `cmd`'s arguments and, recursively, its subcommands'. `kind` is the
/// kind of name the positional name arguments of `cmd` and its subcommands take.
fn attach(cmd: Command, kind: Option<Kind>) -> Command {
    let creates = cmd.get_name() == "create";
    let ids: Vec<String> = cmd
        .get_arguments()
        .map(|arg| arg.get_id().as_str().to_owned())
        .collect();
    // `mut_arg` moves the argument to the end, and positionals take their index from the
    // order: every argument is passed through it, in order, so the order stays.
    let cmd = ids.into_iter().fold(cmd, |cmd, id| {
        let completer = match id.as_str() {
            "blueprint" => Some(completer(Kind::Blueprint, "")),
            "overlays" => Some(completer(Kind::Overlay, "overlays/")),
            id if NAME_ARGS.contains(&id) && !creates => kind.map(|kind| completer(kind, "")),
            _ => None,
        };
        cmd.mut_arg(id, |arg| match completer {
            Some(completer) => arg.add(completer),
            None => arg,
        })
    });
    let subcommands: Vec<String> = cmd
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    subcommands.into_iter().fold(cmd, |cmd, name| {
        cmd.mut_subcommand(name, |sub| attach(sub, kind))
    })
}

/// Answers a completion request when [`COMPLETE_VAR`] is set (printing the candidates or the
/// registration script, then exiting); returns at once otherwise.
pub fn complete_from_env() {
    CompleteEnv::with_factory(command)
        .var(COMPLETE_VAR)
        .bin(BIN)
        .completer(BIN)
        .complete();
}

/// The shells scripts are made for, by the name clap_complete gives them.
pub const SHELLS: &[&str] = &["bash", "zsh", "fish"];

/// Writes the completion script of `shell` (one of [`SHELLS`]) for the installed `left4mectl`.
pub fn write_registration(shell: &str, out: &mut dyn io::Write) -> io::Result<()> {
    let shells = Shells::builtins();
    let completer: &dyn EnvCompleter = shells.completer(shell).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "no completion for shell {shell:?}; one of {}",
                SHELLS.join(", ")
            ),
        )
    })?;
    completer.write_registration(COMPLETE_VAR, BIN, BIN, BIN, out)?;
    if shell == "zsh" {
        // Installed as `_left4mectl` in $fpath, the file is autoloaded as that function on the
        // first Tab: complete that Tab too, not only the ones after it.
        writeln!(
            out,
            "if [ \"${{funcstack[1]}}\" = \"_{BIN}\" ]; then\n    \
             _clap_dynamic_completer_{BIN} \"$@\"\nfi"
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(path: &[&str], id: &str) -> bool {
        let mut cmd = command();
        for word in path {
            cmd = cmd
                .find_subcommand(word)
                .unwrap_or_else(|| panic!("no subcommand {word}"))
                .clone();
        }
        let arg = cmd
            .get_arguments()
            .find(|arg| arg.get_id() == id)
            .unwrap_or_else(|| panic!("no argument {id} in {path:?}"));
        arg.get::<ArgValueCompleter>().is_some()
    }

    #[test]
    fn the_tree_with_completers_is_still_valid() {
        command().debug_assert();
    }

    #[test]
    fn names_of_existing_things_complete_new_ones_do_not() {
        assert!(kind_of(&["start"], "names"));
        assert!(kind_of(&["status"], "name"));
        assert!(kind_of(&["blueprint", "show"], "name"));
        assert!(kind_of(&["overlay", "build"], "name"));
        assert!(kind_of(&["create"], "blueprint"));
        assert!(kind_of(&["create"], "overlays"));
        assert!(!kind_of(&["create"], "name"));
        assert!(!kind_of(&["blueprint", "create"], "name"));
        assert!(!kind_of(&["overlay", "create"], "name"));
    }

    #[test]
    fn every_shell_has_a_script_that_calls_back() {
        for shell in SHELLS {
            let mut script = Vec::new();
            write_registration(shell, &mut script).unwrap();
            let script = String::from_utf8(script).unwrap();
            assert!(script.contains(COMPLETE_VAR), "{shell}: {script}");
        }
        assert!(write_registration("csh", &mut Vec::new()).is_err());
    }
}
