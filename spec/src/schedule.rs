//! `[schedule]`: a restart at calendar times, by default only once nobody plays.
//!
//! ```toml
//! [schedule]
//! restart = "*-*-* 05:00:00"   # systemd calendar expression (systemd.time(7)); required
//! when_empty = true            # default: wait until the A2S player count is 0
//! max_wait = "2h"              # default: then restart anyway, announced
//! ```
//!
//! The generator turns it into `left4me-restart@NAME.timer` (`OnCalendar=`) and the restart
//! arguments of `left4me-restart@NAME.service` ([`crate::restart_argv`]).

use serde::Serialize;

use crate::calendar::Calendar;
use crate::error::SpecError;
use crate::toml_fields::Fields;
use crate::values::Duration;

/// `schedule.max_wait` when the spec leaves it out.
pub const DEFAULT_MAX_WAIT: &str = "2h";

/// The keys of `[schedule]`.
const SCHEDULE_KEYS: [&str; 3] = ["restart", "when_empty", "max_wait"];

/// `[schedule]` as one file (an instance or a blueprint) writes it; merged key by key.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScheduleKeys {
    /// Whether the file has a `[schedule]` table at all (then `restart` must be set, here or
    /// in the blueprint).
    #[serde(skip)]
    pub present: bool,
    pub restart: Option<Calendar>,
    pub when_empty: Option<bool>,
    pub max_wait: Option<Duration>,
}

impl ScheduleKeys {
    pub(crate) fn read(fields: &mut Fields<'_>) -> Result<Self, SpecError> {
        let Some(mut table) = fields.table("schedule", &SCHEDULE_KEYS)? else {
            return Ok(ScheduleKeys::default());
        };
        let keys = ScheduleKeys {
            present: true,
            restart: table.parsed("restart", Calendar::parse)?,
            when_empty: table.boolean("when_empty")?,
            max_wait: table.parsed("max_wait", Duration::parse)?,
        };
        if keys.max_wait.as_ref().is_some_and(Duration::is_zero) {
            return Err(table.error(
                "max_wait",
                "0 would not wait at all; write when_empty = false to restart at once",
            ));
        }
        Ok(keys)
    }

    /// `self` (a blueprint's) under `over` (an instance's): the instance's keys win.
    pub(crate) fn merged_under(self, over: ScheduleKeys) -> ScheduleKeys {
        ScheduleKeys {
            present: self.present || over.present,
            restart: over.restart.or(self.restart),
            when_empty: over.when_empty.or(self.when_empty),
            max_wait: over.max_wait.or(self.max_wait),
        }
    }

    /// The effective schedule, `None` without a `[schedule]` table; `error(key, why)` builds
    /// the error against the instance file.
    pub(crate) fn resolve(
        self,
        error: impl Fn(&str, String) -> SpecError,
    ) -> Result<Option<Schedule>, SpecError> {
        if !self.present {
            return Ok(None);
        }
        let Some(restart) = self.restart else {
            return Err(error(
                "schedule.restart",
                "missing; [schedule] needs a calendar expression, e.g. restart = \"*-*-* 05:00:00\""
                    .into(),
            ));
        };
        let when_empty = self.when_empty.unwrap_or(true);
        if !when_empty && self.max_wait.is_some() {
            return Err(error(
                "schedule.max_wait",
                "applies only with when_empty = true (how long to wait for the players to \
                 leave); remove it or set when_empty = true"
                    .into(),
            ));
        }
        Ok(Some(Schedule {
            restart,
            when_empty,
            max_wait: when_empty.then(|| {
                self.max_wait
                    .unwrap_or_else(|| Duration::parse(DEFAULT_MAX_WAIT).expect("valid default"))
            }),
        }))
    }
}

/// An instance's effective `[schedule]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    /// `OnCalendar=` of `left4me-restart@NAME.timer`.
    pub restart: Calendar,
    /// Restart only once the A2S player count is 0.
    pub when_empty: bool,
    /// How long to wait for that before restarting anyway; `Some` exactly when `when_empty`.
    pub max_wait: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::error::SpecError;
    use crate::host::HostConfig;
    use crate::instance::{Blueprint, Instance, InstanceFile};

    fn resolve(inst: &str, bp: Option<&str>) -> Result<Instance, SpecError> {
        let file = InstanceFile::parse(
            "coop1",
            Path::new("/etc/left4me/instances/coop1.toml"),
            inst,
        )?;
        let bp = bp.map(|t| Blueprint::parse("coop", Path::new("/b/coop.toml"), t).unwrap());
        Instance::resolve(file, bp.as_ref(), &HostConfig::default())
    }

    #[test]
    fn defaults_and_absence() {
        assert_eq!(resolve("port = 27015", None).unwrap().schedule, None);
        let s = resolve("port = 27015\n[schedule]\nrestart = '*-*-* 05:00:00'", None)
            .unwrap()
            .schedule
            .unwrap();
        assert_eq!(s.restart.to_string(), "*-*-* 05:00:00");
        assert!(s.when_empty);
        assert_eq!(s.max_wait.unwrap().to_string(), "2h");
        let s = resolve(
            "port = 27015\n[schedule]\nrestart = 'daily'\nwhen_empty = false",
            None,
        )
        .unwrap()
        .schedule
        .unwrap();
        assert_eq!((s.when_empty, s.max_wait), (false, None));
    }

    #[test]
    fn blueprint_and_instance_merge_key_by_key() {
        let bp = "[schedule]\nrestart = 'Mon 04:00'\nmax_wait = '90min'";
        let s = resolve("blueprint = 'coop'\nport = 27015", Some(bp))
            .unwrap()
            .schedule
            .unwrap();
        assert_eq!(
            (
                s.restart.to_string().as_str(),
                s.max_wait.unwrap().to_string().as_str()
            ),
            ("Mon 04:00", "90min")
        );
        let s = resolve(
            "blueprint = 'coop'\nport = 27015\n[schedule]\nrestart = 'daily'",
            Some(bp),
        )
        .unwrap()
        .schedule
        .unwrap();
        assert_eq!(s.restart.to_string(), "daily");
        assert_eq!(s.max_wait.unwrap().to_string(), "90min");
    }

    #[test]
    fn bad_schedules_name_their_key() {
        for (text, key, why) in [
            (
                "[schedule]\nwhen_empty = true",
                "schedule.restart",
                "missing",
            ),
            ("[schedule]", "schedule.restart", "missing"),
            (
                "[schedule]\nrestart = '*-*-* 25:00'",
                "schedule.restart",
                "hour 25 is out of range (0-23)",
            ),
            (
                "[schedule]\nrestart = 5",
                "schedule.restart",
                "expected a string",
            ),
            (
                "[schedule]\nrestart = 'daily'\nmax_wait = 'soon'",
                "schedule.max_wait",
                "not a time span",
            ),
            (
                "[schedule]\nrestart = 'daily'\nmax_wait = '0'",
                "schedule.max_wait",
                "would not wait",
            ),
            (
                "[schedule]\nrestart = 'daily'\nwhen_empty = false\nmax_wait = '1h'",
                "schedule.max_wait",
                "only with when_empty",
            ),
            (
                "[schedule]\nrestart = 'daily'\nwhen_empty = 'yes'",
                "schedule.when_empty",
                "true or false",
            ),
            (
                "[schedule]\nrestart = 'daily'\nat = '05:00'",
                "schedule.at",
                "unknown key",
            ),
        ] {
            let err = resolve(&format!("port = 27015\n{text}"), None).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{text:?}: {err}");
            assert!(err.reason.contains(why), "{text:?}: {err}");
            assert!(!err.to_string().contains('\n'), "{err}");
        }
        let err = resolve("port = 27015\n[schedule]\nrestart = '*-*-* 25:00'", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/left4me/instances/coop1.toml: key 'schedule.restart': \"*-*-* 25:00\" is not a \
             systemd calendar expression: hour 25 is out of range (0-23); write e.g. \
             \"*-*-* 05:00:00\", \"Mon..Fri 04:30\" or \"daily\" (systemd.time(7))"
        );
    }
}
