//! `left4mectl`, the left4me operator CLI, as a library: [`Cli`] is the command line and
//! [`run`] carries out one verb. The binary only parses, calls [`run`] and maps errors to exit
//! statuses ([`exit_status`]).
//!
//! Verbs that read specs use the same `left4me-spec` code as the boot-time generator, so
//! `left4mectl validate` refuses exactly what the generator would skip. Verbs that change specs
//! validate the would-be file first, write it atomically under a lock ([`store`]) and reload
//! systemd ([`reload`]). The lifecycle verbs ([`lifecycle`]) drive the instances' units through
//! `systemctl` and `journalctl` ([`systemd`]) and wait for the outcome.

#![forbid(unsafe_code)]

mod blueprint;
pub mod build;
mod change;
pub mod cli;
mod editor;
pub mod error;
mod instance;
pub mod keys;
pub mod lifecycle;
pub mod output;
pub mod overlay;
pub mod reload;
pub mod store;
pub mod systemd;

use std::path::PathBuf;

use left4me_spec::{Catalog, Layout, SpecError};

pub use cli::{BlueprintVerb, Cli, OverlayVerb, Verb};
pub use error::{EXIT_INVALID, EXIT_OK, EXIT_RUNTIME, UsageError, exit_status};

/// What every verb needs to know: where the specs are and the global flags.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub verbose: u8,
    pub no_reload: bool,
    pub config_dir: PathBuf,
    /// `LEFT4ME_STATE_DIR`, overriding `state_dir` of host.toml.
    pub state_dir: Option<PathBuf>,
}

impl Ctx {
    /// The context for `cli`, with the config and state dirs from the environment.
    pub fn from_env(cli: &Cli) -> Self {
        Ctx {
            verbose: cli.verbose,
            no_reload: cli.no_reload,
            config_dir: Layout::config_dir_from_env(),
            state_dir: Layout::state_dir_from_env(),
        }
    }

    /// Loads every spec, as the generator does.
    pub fn catalog(&self) -> Result<Catalog, SpecError> {
        Catalog::load(&self.config_dir, self.state_dir.clone())
    }

    /// Takes the config dir's lock, saying so when it has to wait.
    fn lock(&self) -> Result<store::SpecLock, store::StoreError> {
        let lock = store::lock(&self.config_dir, |path| {
            eprintln!(
                "waiting for the lock {}: another left4mectl is changing specs",
                path.display()
            );
        })?;
        self.note(2, || {
            format!(
                "locked {}",
                self.config_dir.join(store::LOCK_FILE).display()
            )
        });
        Ok(lock)
    }

    /// A progress note on stderr, shown with `-v` (level 1) or more.
    fn note(&self, level: u8, message: impl FnOnce() -> String) {
        if self.verbose >= level {
            eprintln!("{}", message());
        }
    }
}

/// Carries out the verb of `cli`; `Ok` holds the exit status (2 when `validate` found problems).
pub fn run(cli: &Cli) -> anyhow::Result<u8> {
    let ctx = Ctx::from_env(cli);
    ctx.note(1, || {
        format!(
            "config dir {}, state dir {}",
            ctx.config_dir.display(),
            ctx.state_dir
                .as_ref()
                .map_or("from host.toml".into(), |d| d.display().to_string())
        )
    });
    match &cli.verb {
        Verb::Create(args) => instance::create(&ctx, args),
        Verb::Edit { name } => change::edit(&ctx, change::SpecKind::Instance, name),
        Verb::Set(args) => change::set(&ctx, change::SpecKind::Instance, args),
        Verb::Show { name, json } => instance::show(&ctx, name, *json),
        Verb::List { json } => instance::list(&ctx, *json),
        Verb::Validate { target } => instance::validate(&ctx, target.as_deref()),
        Verb::Render { name, json } => instance::render(&ctx, name, *json),
        Verb::Start { names } => lifecycle::start(&ctx, names),
        Verb::Stop { names } => lifecycle::stop(&ctx, names),
        Verb::Restart { names } => lifecycle::restart(&ctx, names),
        Verb::Reset { name } => lifecycle::reset(&ctx, name),
        Verb::Delete { name, yes } => lifecycle::delete(&ctx, name, *yes),
        Verb::Status { name, json } => lifecycle::status(&ctx, name, *json),
        Verb::Logs {
            name,
            follow,
            lines,
        } => lifecycle::logs(name, *follow, *lines),
        Verb::Blueprint(verb) => match verb {
            BlueprintVerb::Create(args) => blueprint::create(&ctx, args),
            BlueprintVerb::Edit { name } => change::edit(&ctx, change::SpecKind::Blueprint, name),
            BlueprintVerb::Set(args) => change::set(&ctx, change::SpecKind::Blueprint, args),
            BlueprintVerb::Show { name, json } => blueprint::show(&ctx, name, *json),
            BlueprintVerb::List { json } => blueprint::list(&ctx, *json),
        },
        Verb::Overlay(verb) => match verb {
            OverlayVerb::Create(args) => overlay::create(&ctx, args),
            OverlayVerb::Edit { name } => overlay::edit(&ctx, name),
            OverlayVerb::Show { name, json } => overlay::show(&ctx, name, *json),
            OverlayVerb::List { json } => overlay::list(&ctx, *json),
            OverlayVerb::Rm {
                name,
                keep_content,
                yes,
            } => overlay::remove(&ctx, name, *keep_content, *yes),
            OverlayVerb::Build {
                name,
                dry_run,
                unit_file,
            } => {
                let mode = match (dry_run, unit_file) {
                    (true, _) => build::Mode::DryRun,
                    (_, true) => build::Mode::UnitFile,
                    _ => build::Mode::Run,
                };
                build::build(&ctx, name, mode)
            }
            OverlayVerb::Jobs {
                name,
                json,
                log,
                lines,
            } => build::jobs(&ctx, name.as_deref(), *json, *log, *lines),
        },
    }
}
