//! Running `server.cfg` the way srcds does when a map loads: `exec NAME` runs
//! `<game>/cfg/NAME.cfg` in place (recursively, in order), `name value` sets a cvar, `//` starts a
//! comment, `;` separates commands, `"..."` quotes a value.

use std::collections::BTreeMap;
use std::path::Path;

/// Nesting limit for `exec`, so a cfg that execs itself ends.
const MAX_DEPTH: usize = 16;

/// What running the cfg chain did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CfgRun {
    /// Cvars set, by lower-case name; later lines win.
    pub cvars: BTreeMap<String, String>,
    /// The cfg files that ran, in the order they *finished*: an exec'd file finishes before the
    /// file that exec'd it, so `server.cfg` that execs `server_overlay_x` first gives
    /// `["server_overlay_x.cfg", "server.cfg"]`.
    pub finished: Vec<String>,
    /// One line per thing worth logging, in order (`exec NAME`, missing files, ...).
    pub events: Vec<String>,
}

/// Run `<cfg_dir>/server.cfg` and everything it execs, on top of `cvars` (the command line's).
pub fn run_server_cfg(cfg_dir: &Path, cvars: BTreeMap<String, String>) -> CfgRun {
    let mut run = CfgRun {
        cvars,
        ..CfgRun::default()
    };
    if !cfg_dir.join("server.cfg").is_file() {
        run.events
            .push("'server.cfg' not present; not executing.".to_owned());
        return run;
    }
    exec(cfg_dir, "server.cfg", 0, &mut run);
    run
}

fn exec(cfg_dir: &Path, name: &str, depth: usize, run: &mut CfgRun) {
    let name = if name.ends_with(".cfg") {
        name.to_owned()
    } else {
        format!("{name}.cfg")
    };
    if name.split('/').any(|part| part == "..") || name.starts_with('/') {
        run.events
            .push(format!("exec {name}: refused, outside the cfg directory"));
        return;
    }
    if depth >= MAX_DEPTH {
        run.events.push(format!(
            "exec {name}: refused, nested deeper than {MAX_DEPTH}"
        ));
        return;
    }
    let text = match std::fs::read(cfg_dir.join(&name)) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            run.events.push(format!("couldn't exec {name}: {e}"));
            return;
        }
    };
    run.events.push(format!("exec {name}"));
    for command in commands(&text) {
        let (head, args) = command.split_first().expect("commands are never empty");
        let head = head.to_ascii_lowercase();
        match (head.as_str(), args) {
            ("exec", [target, ..]) => exec(cfg_dir, target, depth + 1, run),
            // A cvar name alone asks for its value: nothing to set.
            (_, []) => {}
            (_, values) => {
                run.cvars.insert(head, values.join(" "));
            }
        }
    }
    run.finished.push(name);
}

/// Split cfg or console text into commands, each a non-empty list of words.
pub(crate) fn commands(text: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    for line in text.lines() {
        let mut words = Vec::new();
        let mut rest = line;
        loop {
            rest = rest.trim_start();
            if rest.is_empty() || rest.starts_with("//") {
                break;
            }
            if let Some(after) = rest.strip_prefix(';') {
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
                rest = after;
            } else if let Some(after) = rest.strip_prefix('"') {
                // An unterminated quote runs to the end of the line.
                let end = after.find('"').unwrap_or(after.len());
                words.push(after[..end].to_owned());
                rest = after.get(end + 1..).unwrap_or("");
            } else {
                let end = rest
                    .find(|c: char| c.is_whitespace() || c == ';' || c == '"')
                    .unwrap_or(rest.len());
                let word = &rest[..end];
                if let Some(comment) = word.find("//") {
                    if comment > 0 {
                        words.push(word[..comment].to_owned());
                    }
                    break;
                }
                words.push(word.to_owned());
                rest = &rest[end..];
            }
        }
        if !words.is_empty() {
            commands.push(words);
        }
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn words(line: &str) -> Vec<Vec<String>> {
        commands(line)
    }

    #[test]
    fn splits_commands_like_the_console() {
        assert_eq!(
            words("hostname \"Coop #1\" // the name\nsv_consistency 0; sv_tags coop"),
            vec![
                vec!["hostname".to_owned(), "Coop #1".to_owned()],
                vec!["sv_consistency".to_owned(), "0".to_owned()],
                vec!["sv_tags".to_owned(), "coop".to_owned()],
            ]
        );
        assert_eq!(
            words("  // only a comment\n\n;;\nsv_password \"\"\nexec\tx//y"),
            vec![
                vec!["sv_password".to_owned(), String::new()],
                vec!["exec".to_owned(), "x".to_owned()],
            ]
        );
        assert_eq!(
            words("say \"a;b // c\" tail"),
            vec![vec![
                "say".to_owned(),
                "a;b // c".to_owned(),
                "tail".to_owned()
            ]]
        );
    }

    #[test]
    fn runs_the_exec_chain_in_order() {
        let dir = std::env::temp_dir().join(format!("standin-cfg-unit-{}", std::process::id()));
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(
            dir.join("server.cfg"),
            "exec server_overlay_a\nhostname \"From server.cfg\"\nexec sub/b.cfg\nexec missing\n\
             exec ../escape\nexec loop\n",
        )
        .unwrap();
        fs::write(dir.join("server_overlay_a.cfg"), "hostname A\nsv_tags a\n").unwrap();
        fs::write(dir.join("sub/b.cfg"), "sv_tags b\n").unwrap();
        fs::write(dir.join("loop.cfg"), "exec loop\n").unwrap();
        let cmdline = BTreeMap::from([("hostname".to_owned(), "cmdline".to_owned())]);
        let run = run_server_cfg(&dir, cmdline);
        fs::remove_dir_all(&dir).unwrap();

        let mut expected = vec!["server_overlay_a.cfg", "sub/b.cfg"];
        expected.extend(std::iter::repeat_n("loop.cfg", MAX_DEPTH - 1));
        expected.push("server.cfg");
        assert_eq!(run.finished, expected);
        assert_eq!(run.cvars["hostname"], "From server.cfg");
        assert_eq!(run.cvars["sv_tags"], "b");
        let events = run.events.join("\n");
        assert!(events.starts_with("exec server.cfg\nexec server_overlay_a.cfg\n"));
        assert!(events.contains("couldn't exec missing.cfg"), "{events}");
        assert!(events.contains("exec ../escape.cfg: refused"), "{events}");
        assert!(
            events.contains("exec loop.cfg: refused, nested deeper"),
            "{events}"
        );
    }

    #[test]
    fn a_missing_server_cfg_is_not_an_error() {
        let run = run_server_cfg(Path::new("/nonexistent/cfg"), BTreeMap::new());
        assert!(run.finished.is_empty());
        assert_eq!(run.events, ["'server.cfg' not present; not executing."]);
    }
}
