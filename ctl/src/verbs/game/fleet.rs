//! The rollout's view of the host: which instances run which version (the mount table, through
//! `crate::game_view`), their players (A2S_INFO on the loopback address, all at once) and
//! `systemctl restart`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use left4me_spec::Catalog;

use crate::game_view::GameViews;
use crate::rollout::{Action, Fleet, Players, Running};
use crate::systemd::{self, unit_name};
use crate::verbs::players::{humans, query_infos};

/// How long a player count may take (the game answers in milliseconds when it is up; the
/// rollout asks every few seconds, so a slow answer costs nobody's reaction).
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The instances of `catalog`, as systemd and the mount table show them.
pub struct SystemdFleet {
    config_dir: PathBuf,
    state_dir: PathBuf,
    ports: Vec<(String, u16)>,
}

impl SystemdFleet {
    pub fn new(catalog: &Catalog, state_dir: &Path) -> Self {
        SystemdFleet {
            config_dir: catalog.layout.config_dir.clone(),
            state_dir: state_dir.to_owned(),
            ports: catalog.valid().map(|i| (i.name.clone(), i.port)).collect(),
        }
    }
}

impl Fleet for SystemdFleet {
    fn running(&mut self) -> anyhow::Result<Vec<Running>> {
        // Specs are read again each round: a pin changed meanwhile counts.
        let catalog = Catalog::load(&self.config_dir, Some(self.state_dir.clone()))?;
        let names: Vec<&str> = catalog.valid().map(|i| i.name.as_str()).collect();
        let Some(live) = systemd::live_states(&names) else {
            return Ok(Vec::new());
        };
        let views = GameViews::load(&self.state_dir);
        Ok(catalog
            .valid()
            .zip(live)
            .filter(|(_, live)| live.active_state.as_deref() == Some("active"))
            .map(|(instance, _)| {
                let view = views.of(instance, true);
                Running {
                    name: instance.name.clone(),
                    version: view.game_version,
                    target: view.game_version_next,
                }
            })
            .collect())
    }

    fn players(&mut self, names: &[String]) -> anyhow::Result<Vec<Players>> {
        let ports: Vec<Option<u16>> = names
            .iter()
            .map(|name| {
                self.ports
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, port)| *port)
            })
            .collect();
        let asked: Vec<u16> = ports.iter().flatten().copied().collect();
        let mut answers = query_infos(&asked, QUERY_TIMEOUT).into_iter();
        // One that stopped meanwhile leaves the selection at the next `running`.
        Ok(ports
            .iter()
            .map(|port| match port.and_then(|_| answers.next()) {
                Some(Ok(info)) => Players::Count(humans(&info)),
                _ => Players::NoAnswer,
            })
            .collect())
    }

    fn act(&mut self, name: &str, action: Action) -> anyhow::Result<()> {
        let unit = unit_name(name);
        if action == Action::Stop {
            systemd::systemctl(&["stop", &unit])?;
            return Ok(());
        }
        // A rollout's restarts are deliberate, not a crash loop: they must not use up the
        // unit's start limit (StartLimitBurst=), which `reset-failed` re-arms.
        systemd::systemctl(&["reset-failed", &unit])?;
        // Waits for the start job: active means the game answers (Type=notify, READY=1).
        systemd::systemctl(&["restart", &unit])?;
        let state = systemd::show_one(&unit)?;
        anyhow::ensure!(
            state.active_state == "active",
            "{unit} is {} after the restart: `left4mectl status {name}` says why",
            state.describe()
        );
        Ok(())
    }

    fn announce(&mut self, name: &str, _message: &str) -> anyhow::Result<()> {
        anyhow::bail!("the game update's rollout announces nothing (on {name})")
    }
}
