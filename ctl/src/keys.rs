//! `set KEY=VALUE` and `--unset KEY` on a spec document, through `toml_edit` so the operator's
//! comments and layout survive.

use std::path::Path;

use left4me_spec::{ErrorKind, SpecError};
use toml_edit::{DocumentMut, Item, Table, TableLike, Value};

/// Keys whose values are text: VALUE is taken as a string even when it looks like a number
/// (`health.watchdog=0` means `"0"`), unless it is a quoted TOML string.
pub const TEXT_KEYS: [&str; 11] = [
    "map",
    "blueprint",
    "game_version",
    "config",
    "resources.cpu_affinity",
    "resources.memory_high",
    "resources.memory_max",
    "health.ready_timeout",
    "health.watchdog",
    "schedule.restart",
    "schedule.max_wait",
];

/// A `set` request that is malformed before the spec rules are even asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("'{0}' is not KEY=VALUE; write e.g. map=c2m1_highway")]
    NotAssignment(String),
    #[error(
        "'{key}=' has no value; remove the key with --unset {key}, or write {key}='\"\"' for an empty string"
    )]
    EmptyValue { key: String },
    #[error(
        "'{key}' is not a key; use letters, digits, '_' and '-', dotted for tables (resources.nice)"
    )]
    BadKey { key: String },
    #[error("cannot set '{key}': '{parent}' is not a table")]
    NotATable { key: String, parent: String },
    #[error("key '{key}' is not set, so it cannot be unset")]
    NotSet { key: String },
}

/// One `KEY=VALUE` argument, parsed.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// The dotted key, split.
    pub path: Vec<String>,
    pub value: Value,
}

impl Assignment {
    pub fn parse(arg: &str) -> Result<Self, KeyError> {
        let Some((key, raw)) = arg.split_once('=') else {
            return Err(KeyError::NotAssignment(arg.to_owned()));
        };
        let path = parse_key(key)?;
        if raw.is_empty() {
            return Err(KeyError::EmptyValue {
                key: key.to_owned(),
            });
        }
        let parsed = raw.parse::<Value>().ok();
        let mut value = match parsed {
            Some(value @ Value::String(_)) => value,
            Some(value) if !TEXT_KEYS.contains(&key) => value,
            _ => Value::from(raw),
        };
        value.decor_mut().clear();
        Ok(Assignment { path, value })
    }

    pub fn key(&self) -> String {
        self.path.join(".")
    }
}

/// Splits a dotted key, checking each part is a bare TOML key.
pub fn parse_key(key: &str) -> Result<Vec<String>, KeyError> {
    let parts: Vec<String> = key.split('.').map(str::to_owned).collect();
    let bare = |part: &String| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    };
    if parts.iter().all(bare) {
        Ok(parts)
    } else {
        Err(KeyError::BadKey {
            key: key.to_owned(),
        })
    }
}

/// Sets one key, creating tables on the way; a replaced value keeps its trailing comment.
pub fn set(doc: &mut DocumentMut, assignment: &Assignment) -> Result<(), KeyError> {
    let (leaf, parents) = assignment.path.split_last().expect("keys have a part");
    let mut table: &mut dyn TableLike = doc.as_table_mut();
    for (depth, part) in parents.iter().enumerate() {
        let item = table
            .entry(part)
            .or_insert_with(|| Item::Table(Table::new()));
        table = item
            .as_table_like_mut()
            .ok_or_else(|| KeyError::NotATable {
                key: assignment.key(),
                parent: assignment.path[..=depth].join("."),
            })?;
    }
    let value = assignment.value.clone();
    match table.get_mut(leaf) {
        Some(Item::Value(old)) => {
            let decor = old.decor().clone();
            *old = value;
            *old.decor_mut() = decor;
        }
        Some(item) => *item = Item::Value(value),
        None => {
            table.insert(leaf, Item::Value(value));
        }
    }
    Ok(())
}

/// Removes one key; a key that is not there is an error (a typo would otherwise pass silently).
/// A table the removal leaves empty goes too: `--unset resources.nice` on a spec whose only
/// resource was `nice` leaves no `[resources]` header behind.
pub fn unset(doc: &mut DocumentMut, key: &str) -> Result<(), KeyError> {
    let path = parse_key(key)?;
    remove_path(doc.as_table_mut(), &path).ok_or_else(|| KeyError::NotSet {
        key: key.to_owned(),
    })?;
    Ok(())
}

/// Removes `path` below `table`; `None` when it is not there, else whether `table` is now
/// empty.
fn remove_path(table: &mut dyn TableLike, path: &[String]) -> Option<bool> {
    let (first, rest) = path.split_first()?;
    if rest.is_empty() {
        table.remove(first)?;
    } else {
        let child = table.get_mut(first).and_then(Item::as_table_like_mut)?;
        if remove_path(child, rest)? {
            table.remove(first);
        }
    }
    Some(table.is_empty())
}

/// Parses a spec for editing; a syntax error becomes one line naming the line and column.
pub fn parse_document(file: &Path, text: &str) -> Result<DocumentMut, SpecError> {
    text.parse::<DocumentMut>().map_err(|err| {
        let location = err
            .span()
            .map(|span| left4me_spec::line_column(text, span.start))
            .unwrap_or_default();
        SpecError {
            kind: ErrorKind::Syntax,
            file: file.to_path_buf(),
            key: None,
            reason: format!(
                "{location}invalid TOML: {}; fix it with `edit`",
                err.message().trim().replace('\n', "; ")
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str, args: &[&str]) -> Result<String, KeyError> {
        let mut doc: DocumentMut = text.parse().unwrap();
        for arg in args {
            set(&mut doc, &Assignment::parse(arg)?)?;
        }
        Ok(doc.to_string())
    }

    #[test]
    fn values_are_toml_when_they_parse_and_strings_otherwise() {
        let out = apply(
            "port = 27015\n",
            &[
                "port=27016",
                "map=c2m1_highway",
                "maxplayers=8",
                r#"args=["-tickrate", "60"]"#,
                "config=\"sv_cheats 0\"",
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "port = 27016\nmap = \"c2m1_highway\"\nmaxplayers = 8\nargs = [\"-tickrate\", \"60\"]\nconfig = \"sv_cheats 0\"\n"
        );
    }

    #[test]
    fn text_keys_stay_strings() {
        let out = apply(
            "port = 27015\n",
            &["health.watchdog=0", "resources.cpu_affinity=2", "map=inf"],
        )
        .unwrap();
        assert!(out.contains("map = \"inf\""), "{out}");
        assert!(out.contains("[health]\nwatchdog = \"0\""), "{out}");
        assert!(out.contains("[resources]\ncpu_affinity = \"2\""), "{out}");
    }

    #[test]
    fn schedule_keys_stay_strings() {
        // A calendar expression can look like a TOML date-time, a span like an integer.
        let out = apply(
            "port = 27015\n",
            &[
                "schedule.restart=2026-12-24 18:00:00",
                "schedule.max_wait=90",
                "schedule.when_empty=false",
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "port = 27015\n\n[schedule]\nrestart = \"2026-12-24 18:00:00\"\nmax_wait = \"90\"\nwhen_empty = false\n"
        );
        let out = apply("port = 27015\n", &["schedule.restart=*-*-* 05:00:00"]).unwrap();
        assert!(out.contains("restart = \"*-*-* 05:00:00\""), "{out}");
    }

    #[test]
    fn comments_and_layout_survive() {
        let text = "# my server\nport = 27015 # the game port\n\n# limits\n[resources]\nnice = -5 # be nice\n";
        let out = apply(
            text,
            &["port=27016", "resources.memory_max=3G", "resources.nice=-2"],
        )
        .unwrap();
        assert_eq!(
            out,
            "# my server\nport = 27016 # the game port\n\n# limits\n[resources]\nnice = -2 # be nice\nmemory_max = \"3G\"\n"
        );
    }

    #[test]
    fn inline_tables_are_tables_too() {
        let out = apply(
            "port = 1\nhealth = { watchdog = \"5s\" }\n",
            &["health.watchdog=0"],
        )
        .unwrap();
        assert_eq!(out, "port = 1\nhealth = { watchdog = \"0\" }\n");
    }

    #[test]
    fn malformed_requests() {
        assert_eq!(
            Assignment::parse("map").unwrap_err(),
            KeyError::NotAssignment("map".into())
        );
        assert!(matches!(
            Assignment::parse("map=").unwrap_err(),
            KeyError::EmptyValue { .. }
        ));
        for key in ["", "a..b", ".a", "a b", "a.\"b\""] {
            assert!(
                matches!(
                    Assignment::parse(&format!("{key}=1")),
                    Err(KeyError::BadKey { .. })
                ),
                "{key:?}"
            );
        }
        assert_eq!(
            apply("port = 1\n", &["port.x=1"]).unwrap_err(),
            KeyError::NotATable {
                key: "port.x".into(),
                parent: "port".into()
            }
        );
    }

    #[test]
    fn unset_removes_or_refuses() {
        let mut doc: DocumentMut = "port = 1\nmap = \"x\"\n[resources]\nnice = 1\n"
            .parse()
            .unwrap();
        unset(&mut doc, "map").unwrap();
        unset(&mut doc, "resources.nice").unwrap();
        assert_eq!(doc.to_string(), "port = 1\n");
        assert!(matches!(
            unset(&mut doc, "map"),
            Err(KeyError::NotSet { .. })
        ));
        assert!(matches!(
            unset(&mut doc, "health.watchdog"),
            Err(KeyError::NotSet { .. })
        ));
    }

    #[test]
    fn unset_keeps_a_table_with_other_keys() {
        let mut doc: DocumentMut = "port = 1\n[resources]\nnice = 1\ntasks_max = 9\n"
            .parse()
            .unwrap();
        unset(&mut doc, "resources.nice").unwrap();
        assert_eq!(doc.to_string(), "port = 1\n[resources]\ntasks_max = 9\n");
        unset(&mut doc, "resources.tasks_max").unwrap();
        assert_eq!(doc.to_string(), "port = 1\n");
    }

    #[test]
    fn syntax_errors_are_one_line() {
        let err = parse_document(Path::new("/x.toml"), "port = 1\nmap = \n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("/x.toml: line 2, column"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }
}
