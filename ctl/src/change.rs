//! What the instance and blueprint verbs share: the two kinds of spec, the naming and
//! missing-spec errors, a face read of a spec that does not validate ([`peek`]), and the
//! machinery of the verbs that change a spec file — create, set, edit — for both kinds.
//!
//! Each changing verb builds the would-be text first, validates it against the host and the other specs,
//! and only then installs it atomically under the config-dir lock and reloads systemd. A refused
//! change leaves every file byte-identical.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use left4me_history::Kind;
use left4me_spec::{Catalog, Layout, check_name, read_spec};
use toml_edit::{Array, DocumentMut, InlineTable, Value};

use crate::cli::{OverlayArg, SetArgs};
use crate::editor::{Edited, edit_until_valid};
use crate::error::{EXIT_OK, UsageError};
use crate::keys::{self, Assignment};
use crate::output::emit;
use crate::store;
use crate::{Ctx, reload};

/// Which kind of spec a verb changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecKind {
    Instance,
    Blueprint,
}

impl SpecKind {
    pub fn noun(self) -> &'static str {
        match self {
            SpecKind::Instance => "instance",
            SpecKind::Blueprint => "blueprint",
        }
    }

    /// The kind the spec history records.
    pub fn history_kind(self) -> Kind {
        match self {
            SpecKind::Instance => Kind::Instance,
            SpecKind::Blueprint => Kind::Blueprint,
        }
    }

    /// The verb `verb` of this kind as the history names it: `set`, `blueprint set`.
    pub fn verb(self, verb: &str) -> String {
        match self {
            SpecKind::Instance => verb.to_owned(),
            SpecKind::Blueprint => format!("blueprint {verb}"),
        }
    }

    /// Writes `new` as spec `name` (which held `old`) under `lock`, recorded as this kind's
    /// `verb`.
    fn install(
        self,
        lock: &store::Recorder,
        name: &str,
        file: &Path,
        (old, new): (Option<&str>, &str),
        verb: &str,
    ) -> Result<i64, store::StoreError> {
        lock.write(self.history_kind(), name, file, old, new, &self.verb(verb))
    }

    pub fn file(self, layout: &Layout, name: &str) -> PathBuf {
        match self {
            SpecKind::Instance => layout.instance_file(name),
            SpecKind::Blueprint => layout.blueprint_file(name),
        }
    }

    /// Validates `text` as the would-be spec `name` (at `file`) against everything else; for a
    /// blueprint, also against every valid instance that uses it.
    pub fn check(
        self,
        catalog: &Catalog,
        name: &str,
        file: &Path,
        text: &str,
    ) -> anyhow::Result<()> {
        match self {
            SpecKind::Instance => drop(catalog.check_instance_text(name, file, text)?),
            SpecKind::Blueprint => drop(catalog.check_blueprint_text(name, file, text)?),
        }
        Ok(())
    }

    /// How to create a missing spec of this kind.
    fn create_hint(self, name: &str) -> String {
        match self {
            SpecKind::Instance => format!("left4mectl create {name} --port PORT"),
            SpecKind::Blueprint => format!("left4mectl blueprint create {name}"),
        }
    }
}

/// Refuses a name that breaks the naming rule, naming the rule.
pub fn check_spec_name(kind: SpecKind, name: &str) -> Result<(), UsageError> {
    check_name(name).map_err(|why| UsageError::new(format!("{} name {why}", kind.noun())))
}

/// The error for a spec that does not exist.
pub fn missing(kind: SpecKind, name: &str, file: &Path) -> UsageError {
    UsageError::new(format!(
        "no {noun} '{name}': {file} does not exist; create it with `{hint}`",
        noun = kind.noun(),
        file = file.display(),
        hint = kind.create_hint(name),
    ))
}

/// What a spec file says on its face, read without validation, for listing a bad spec.
#[derive(Debug, Default)]
pub struct Peek {
    pub port: Option<u16>,
    pub map: Option<String>,
    pub blueprint: Option<String>,
}

/// Reads `file` for [`Peek`]; what cannot be read is `None`.
pub fn peek(file: &Path) -> Peek {
    let Ok(text) = read_spec(file) else {
        return Peek::default();
    };
    let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
        return Peek::default();
    };
    let string = |key: &str| doc.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    Peek {
        port: doc
            .get("port")
            .and_then(|v| v.as_integer())
            .and_then(|p| u16::try_from(p).ok()),
        map: string("map"),
        blueprint: string("blueprint"),
    }
}

/// Reads the current text of spec `name`, which must exist.
fn read_existing(kind: SpecKind, name: &str, file: &Path) -> anyhow::Result<String> {
    match read_spec(file) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Err(missing(kind, name, file).into())
        }
        Err(source) => Err(store::StoreError::Read {
            path: file.to_path_buf(),
            source,
        }
        .into()),
    }
}

/// The keys `create` may set, in file order.
#[derive(Debug, Default)]
pub struct NewSpec<'a> {
    pub blueprint: Option<&'a str>,
    pub port: Option<u16>,
    pub map: Option<&'a str>,
    pub maxplayers: Option<u8>,
    pub overlays: &'a [OverlayArg],
}

impl NewSpec<'_> {
    /// The text of a new spec file: a short header comment, then the keys given.
    pub fn render(&self, kind: SpecKind, name: &str) -> String {
        let mut doc = DocumentMut::new();
        if let Some(blueprint) = self.blueprint {
            doc["blueprint"] = toml_edit::value(blueprint);
        }
        if let Some(port) = self.port {
            doc["port"] = toml_edit::value(i64::from(port));
        }
        if let Some(map) = self.map {
            doc["map"] = toml_edit::value(map);
        }
        if let Some(max) = self.maxplayers {
            doc["maxplayers"] = toml_edit::value(i64::from(max));
        }
        if !self.overlays.is_empty() {
            let mut list = Array::new();
            for overlay in self.overlays {
                let mut entry: Value = match &overlay.alias {
                    None => overlay.path.as_str().into(),
                    Some(alias) => {
                        let mut table = InlineTable::new();
                        table.insert("path", overlay.path.as_str().into());
                        table.insert("alias", alias.as_str().into());
                        Value::InlineTable(table)
                    }
                };
                entry.decor_mut().set_prefix("\n  ");
                list.push_formatted(entry);
            }
            list.set_trailing_comma(true);
            list.set_trailing("\n");
            doc["overlays"] = toml_edit::value(list);
        }
        let (change, show) = match kind {
            SpecKind::Instance => (
                format!("left4mectl edit {name}"),
                format!("left4mectl show {name}"),
            ),
            SpecKind::Blueprint => (
                format!("left4mectl blueprint edit {name}"),
                format!("left4mectl blueprint show {name}"),
            ),
        };
        format!(
            "# left4me {noun} '{name}', created by left4mectl.\n\
             # Change it with `{change}` (or `set`); `{show}` shows the result.\n{doc}",
            noun = kind.noun(),
        )
    }
}

/// Writes a new spec file `name` with `text` after validating it.
pub fn create(ctx: &Ctx, kind: SpecKind, name: &str, text: &str) -> anyhow::Result<u8> {
    check_spec_name(kind, name)?;
    let lock = ctx.lock()?;
    let catalog = ctx.catalog()?;
    let file = kind.file(&catalog.layout, name);
    if file.exists() {
        return Err(store::StoreError::Exists { path: file }.into());
    }
    kind.check(&catalog, name, &file, text)?;
    ctx.note(1, || format!("{} is valid; installing it", file.display()));
    kind.install(&lock, name, &file, (None, text), "create")?;
    emit(&format!(
        "created {} {name} ({})\n",
        kind.noun(),
        file.display()
    ))?;
    finish(ctx)
}

/// `set NAME KEY=VALUE… --unset KEY…`.
pub fn set(ctx: &Ctx, kind: SpecKind, args: &SetArgs) -> anyhow::Result<u8> {
    let name = &args.name;
    check_spec_name(kind, name)?;
    let assignments = args
        .assignments
        .iter()
        .map(|arg| Assignment::parse(arg))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| UsageError::new(err.to_string()))?;
    let lock = ctx.lock()?;
    let catalog = ctx.catalog()?;
    let file = kind.file(&catalog.layout, name);
    let original = read_existing(kind, name, &file)?;
    let mut doc = keys::parse_document(&file, &original)?;
    let in_file = |err: keys::KeyError| UsageError::new(format!("{}: {err}", file.display()));
    for assignment in &assignments {
        keys::set(&mut doc, assignment).map_err(in_file)?;
    }
    for key in &args.unset {
        keys::unset(&mut doc, key).map_err(in_file)?;
    }
    let text = doc.to_string();
    if text == original {
        emit(&format!("no changes to {} {name}\n", kind.noun()))?;
        return Ok(EXIT_OK);
    }
    kind.check(&catalog, name, &file, &text)?;
    ctx.note(1, || format!("{} is valid; installing it", file.display()));
    kind.install(&lock, name, &file, (Some(&original), &text), "set")?;
    let changed: Vec<String> = assignments
        .iter()
        .map(Assignment::key)
        .chain(args.unset.iter().map(|k| format!("-{k}")))
        .collect();
    emit(&format!(
        "updated {} {name} ({}): {}\n",
        kind.noun(),
        file.display(),
        changed.join(" ")
    ))?;
    finish(ctx)
}

/// `edit NAME`: the editor loop, then the install under the lock.
pub fn edit(ctx: &Ctx, kind: SpecKind, name: &str) -> anyhow::Result<u8> {
    check_spec_name(kind, name)?;
    let layout = ctx.catalog()?.layout;
    let file = kind.file(&layout, name);
    let original = read_existing(kind, name, &file)?;
    let check = |text: &str| kind.check(&ctx.catalog()?, name, &file, text);
    let (text, draft) = match edit_until_valid(&file, &original, check, ctx.verbose)? {
        Edited::Unchanged => {
            emit(&format!("no changes to {} {name}\n", kind.noun()))?;
            return Ok(EXIT_OK);
        }
        Edited::Changed { text, draft } => (text, draft),
    };
    let lock = ctx.lock()?;
    let current = read_existing(kind, name, &file)?;
    if current != original {
        let kept = draft.keep();
        return Err(UsageError::new(format!(
            "{} was changed by someone else while you edited it; your version is kept in {}; \
             merge it with `left4mectl edit`",
            file.display(),
            kept.display()
        ))
        .into());
    }
    // The others may have changed while the editor ran (a port taken); check again.
    if let Err(err) = kind.check(&ctx.catalog()?, name, &file, &text) {
        let kept = draft.keep();
        return Err(err.context(format!("your version is kept in {}", kept.display())));
    }
    kind.install(&lock, name, &file, (Some(&original), &text), "edit")?;
    drop(draft);
    emit(&format!(
        "updated {} {name} ({})\n",
        kind.noun(),
        file.display()
    ))?;
    finish(ctx)
}

/// After an installed change: reload systemd and say what happened.
pub fn finish(ctx: &Ctx) -> anyhow::Result<u8> {
    let line = reload::daemon_reload(ctx.no_reload)?;
    emit(&format!("{line}\n")).context("cannot write to stdout")?;
    Ok(EXIT_OK)
}
