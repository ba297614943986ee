//! `left4mectl`, the left4me operator CLI, as a library: [`Cli`] is the command line and
//! [`run`] carries out one verb. The binary only parses, calls [`run`] and maps errors to exit
//! statuses ([`exit_status`]). Nothing else is public but
//! [`complete`] (shell completion, also used to write the installed scripts): the modules serve
//! the binary alone.
//!
//! One module per command group, one function per verb, so `left4mectl X Y` is found in one
//! place: `verbs::instance` (create, edit, set, show, list, validate, render),
//! `verbs::lifecycle` (start, stop, restart — also `--when-empty`, on the `rollout` loop —
//! reset, delete, status, logs), `verbs::players` (players, and A2S counts), `verbs::rcon`
//! (rcon, rcon-password; its interactive console in `console`), `verbs::blueprint`
//! (`blueprint …`), `verbs::backup` (backup, restore; the archive format in `archive`),
//! `verbs::game` (`game …`: SteamCMD installs and updates, and the
//! `rollout` of instances onto a new version), `verbs::history` (history, diff, rollback)
//! and `verbs::overlay` (`overlay …`; `overlay build` and `jobs`, the clients
//! of the `left4me-jobs` pipeline, in `verbs::overlay::build`). They share `change` (the
//! create/set/edit machinery), `editor`, `keys`, `store` (spec files under the config-dir
//! lock), `reload`, `systemd`, `runtime` (an instance's runtime dir), `output` (every display
//! helper) and `error` (exit statuses).
//!
//! Verbs that read specs use the same `left4me-spec` code as the boot-time generator, so
//! `left4mectl validate` refuses exactly what the generator would skip. Verbs that change specs
//! validate the would-be file first, write it atomically under a lock and reload systemd. The
//! lifecycle verbs drive the instances' units through `systemctl` and `journalctl` and wait for
//! the outcome.

#![forbid(unsafe_code)]

mod archive;
mod change;
mod cli;
pub mod complete;
mod console;
mod content_view;
mod editor;
mod error;
mod game_view;
mod keys;
mod output;
mod reload;
mod rollout;
mod runtime;
mod store;
mod systemd;
mod verbs;

use std::path::PathBuf;

use left4me_spec::{Catalog, Layout, SpecError};

pub use cli::Cli;
pub use error::exit_status;

use cli::{BlueprintVerb, GameVerb, OverlayVerb, Verb};
use verbs::{backup, blueprint, game, history, instance, lifecycle, overlay, players, rcon};

/// What every verb needs to know: where the specs are and the global flags.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) verbose: u8,
    pub(crate) no_reload: bool,
    pub(crate) config_dir: PathBuf,
    /// `LEFT4ME_STATE_DIR`, overriding `state_dir` of host.toml.
    pub(crate) state_dir: Option<PathBuf>,
    /// Root's admin dir, home of the spec history.
    pub(crate) admin_dir: PathBuf,
    /// `-m MSG`: kept with the revisions this run records.
    pub(crate) message: Option<String>,
}

impl Ctx {
    /// The context for `cli`, with the config and state dirs from the environment.
    fn from_env(cli: &Cli) -> Self {
        Ctx {
            verbose: cli.verbose,
            no_reload: cli.no_reload,
            config_dir: Layout::config_dir_from_env(),
            state_dir: Layout::state_dir_from_env(),
            admin_dir: Layout::admin_dir_from_env(),
            message: cli.message.clone(),
        }
    }

    /// Loads every spec, as the generator does.
    pub(crate) fn catalog(&self) -> Result<Catalog, SpecError> {
        Catalog::load(&self.config_dir, self.state_dir.clone())
    }

    /// Takes the config dir's lock, saying so when it has to wait, and opens the spec history
    /// under it (recording what changed outside left4mectl since the last run).
    fn lock(&self) -> Result<store::Recorder, store::StoreError> {
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
        let recorder = store::Recorder::new(
            lock,
            &self.admin_dir,
            &self.config_dir,
            self.message.clone(),
        )?;
        if let Some(why) = recorder.unrecorded() {
            self.note(1, || {
                format!("not root: this change is not recorded ({why})")
            });
        }
        Ok(recorder)
    }

    /// For a verb that reads specs: records what changed outside left4mectl since the last
    /// run, when the lock is free (a holder does it itself) and the admin dir is ours; a
    /// failure only shows with `-v` (an ordinary user may read specs but has no history).
    fn catch_up(&self) {
        if !self.config_dir.is_dir() {
            return;
        }
        match store::catch_up(&self.config_dir, &self.admin_dir) {
            Ok(Some(0) | None) => {}
            Ok(Some(n)) => self.note(1, || {
                format!("recorded {n} spec change(s) made outside left4mectl")
            }),
            Err(err) => self.note(1, || format!("spec history not updated: {err}")),
        }
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
    if verbs::history::reads_specs(&cli.verb) {
        ctx.catch_up();
    }
    match &cli.verb {
        Verb::Create(args) => instance::create(&ctx, args),
        Verb::Edit { name } => instance::edit(&ctx, name),
        Verb::Set(args) => instance::set(&ctx, args),
        Verb::Show { name, json } => instance::show(&ctx, name, *json),
        Verb::List { json } => instance::list(&ctx, *json),
        Verb::Validate { target } => instance::validate(&ctx, target.as_deref()),
        Verb::Render { name, json } => instance::render(&ctx, name, *json),
        Verb::Start { names } => lifecycle::start(&ctx, names),
        Verb::Stop { names, when } => lifecycle::stop(&ctx, names, when),
        Verb::Restart {
            names,
            when,
            if_running,
        } => lifecycle::restart(&ctx, names, when, *if_running),
        Verb::Reset { name } => lifecycle::reset(&ctx, name),
        Verb::Delete { name, yes } => lifecycle::delete(&ctx, name, *yes),
        Verb::Status { name, json } => lifecycle::status(&ctx, name, *json),
        Verb::Players { name, json } => players::players(&ctx, name, *json),
        Verb::Rcon {
            name,
            command,
            timeout,
        } => rcon::rcon(&ctx, name, command, *timeout),
        Verb::RconPassword {
            name,
            rotate,
            timeout,
        } => rcon::rcon_password(&ctx, name, *rotate, *timeout),
        Verb::Logs {
            name,
            follow,
            lines,
        } => lifecycle::logs(name, *follow, *lines),
        Verb::Backup {
            names,
            output,
            keep,
        } => backup::backup(&ctx, output.as_deref(), names, keep.map(|k| k as usize)),
        Verb::Restore {
            file,
            names,
            dry_run,
            replace,
        } => backup::restore::restore(&ctx, file, *dry_run, *replace, names),
        Verb::History {
            name,
            blueprint,
            overlay,
            limit,
            json,
        } => history::history(
            &ctx,
            history::target(name, blueprint, overlay),
            *limit,
            *json,
        ),
        Verb::Diff { spec, revs } => history::diff(&ctx, spec, revs),
        Verb::Rollback { spec, rev } => history::rollback(&ctx, spec, *rev),
        Verb::Blueprint(verb) => match verb {
            BlueprintVerb::Create(args) => blueprint::create(&ctx, args),
            BlueprintVerb::Edit { name } => blueprint::edit(&ctx, name),
            BlueprintVerb::Set(args) => blueprint::set(&ctx, args),
            BlueprintVerb::Show { name, json } => blueprint::show(&ctx, name, *json),
            BlueprintVerb::List { json } => blueprint::list(&ctx, *json),
            BlueprintVerb::Rm { name } => blueprint::remove(&ctx, name),
        },
        Verb::Game(verb) => match verb {
            GameVerb::Install(args) => game::install(&ctx, args),
            GameVerb::Update(args) => game::update(&ctx, args),
            GameVerb::Check { branch, json } => game::check(&ctx, branch.as_deref(), *json),
            GameVerb::Versions { json } => game::versions(&ctx, *json),
            GameVerb::Validate => game::validate(&ctx),
            GameVerb::Use { id } => game::use_version(&ctx, id),
            GameVerb::Gc => game::gc(&ctx),
            GameVerb::Jobs { json, log, lines } => overlay::build::list_jobs(
                &ctx,
                Some(left4me_jobs::steamcmd::LEDGER_NAME),
                *json,
                *log,
                *lines,
            ),
            GameVerb::Login { user } => game::login(&ctx, user),
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
                    (true, _) => overlay::build::Mode::DryRun,
                    (_, true) => overlay::build::Mode::UnitFile,
                    _ => overlay::build::Mode::Run,
                };
                overlay::build::build(&ctx, name, mode)
            }
            OverlayVerb::Jobs {
                name,
                json,
                log,
                lines,
            } => overlay::build::jobs(&ctx, name.as_deref(), *json, *log, *lines),
            OverlayVerb::Refresh { names, json } => overlay::refresh(&ctx, names, *json),
            OverlayVerb::Gc { dry_run, json } => overlay::gc(&ctx, *dry_run, *json),
        },
    }
}
