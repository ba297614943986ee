//! Where the supervisor's messages go: the journal, with fields that say which instance and phase
//! they are about, or plain lines on stderr.
//!
//! Under systemd stderr is a journal stream (`$JOURNAL_STREAM` names its device and inode), and
//! the supervisor then writes its entries through the journal's native protocol instead
//! (`systemd-journal-logger`), each carrying [`Fields`] — `LEFT4ME_INSTANCE=coop1`,
//! `LEFT4ME_PHASE=prepare` — so `journalctl LEFT4ME_INSTANCE=coop1` finds every phase of one
//! instance. Anywhere else (a terminal, a test capturing stderr) it prints the same messages as
//! plain lines on stderr. The fields are set once on the logger, so a plain `log::info!` from
//! any module carries them.
//!
//! Messages are written as they read on stderr (`left4me-supervisor: …`), the journal entry's
//! `MESSAGE=` included, so `systemctl status` shows the lines it showed before the journal
//! logger. Entries of the root phases (`prepare`, `cleanup`) also carry `OBJECT_SYSTEMD_UNIT=`:
//! see [`Fields::pairs`].

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};
use systemd_journal_logger::JournalLog;

/// The journal field naming the instance.
pub const INSTANCE_FIELD: &str = "LEFT4ME_INSTANCE";
/// The journal field naming the phase.
pub const PHASE_FIELD: &str = "LEFT4ME_PHASE";
/// The identifier journal lines are shown with (`journalctl -t left4me-supervisor`).
pub const IDENTIFIER: &str = "left4me-supervisor";

/// The three phases of `left4me-server@NAME.service`, one per verb of the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `ExecStartPre=+`, as root: mount the instance's game tree.
    Prepare,
    /// `ExecStart=`, as the game user: run and watch the game.
    Run,
    /// `ExecStopPost=+`, as root: unmount.
    Cleanup,
}

impl Phase {
    /// The phase a verb of the command line names.
    pub fn from_verb(verb: &str) -> Option<Phase> {
        match verb {
            "prepare" => Some(Phase::Prepare),
            "run" => Some(Phase::Run),
            "cleanup" => Some(Phase::Cleanup),
            _ => None,
        }
    }

    /// The verb, which is also the value of `LEFT4ME_PHASE=`.
    pub fn verb(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::Run => "run",
            Phase::Cleanup => "cleanup",
        }
    }
}

/// The journal fields every entry of one supervisor process carries. (`prepare` adds
/// `LEFT4ME_GAME_VERSION=ID` to its line naming the game version it mounts, so
/// `journalctl LEFT4ME_GAME_VERSION=ID` lists the starts on a version.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// The instance name from the command line; left out when it is not a valid name (the
    /// phase then fails on it and says so).
    pub instance: Option<String>,
    pub phase: Phase,
}

impl Fields {
    /// The fields of `phase` for the instance `name`.
    pub fn new(name: &str, phase: Phase) -> Fields {
        Fields {
            instance: left4me_contract::is_valid_name(name).then(|| name.to_owned()),
            phase,
        }
    }

    /// The fields as journal name/value pairs.
    ///
    /// journald attributes a native-protocol entry to its unit (`_SYSTEMD_UNIT=`) by reading the
    /// sender's cgroup from `/proc` when it gets to the entry; a sender that has exited by then
    /// is not attributed (systemd issue #2913, open). `prepare` and `cleanup` exit right after
    /// their last line, which would then be missing from `systemctl status` and
    /// `journalctl -u`. Both also match `OBJECT_SYSTEMD_UNIT=` on entries from uid 0 ("messages
    /// from authorized daemons about this unit"), which the root phases are, so they name their
    /// unit there. `run` is not root; journald keeps the unit it read for a sender's earlier
    /// entries (up to 5 minutes), which covers `run`'s last line in practice, and
    /// `journalctl LEFT4ME_INSTANCE=` finds every line regardless.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(instance) = &self.instance {
            pairs.push((INSTANCE_FIELD, instance.clone()));
        }
        pairs.push((PHASE_FIELD, self.phase.verb().to_owned()));
        if let Some(instance) = &self.instance
            && self.phase != Phase::Run
        {
            pairs.push((
                "OBJECT_SYSTEMD_UNIT",
                format!("left4me-server@{instance}.service"),
            ));
        }
        pairs
    }
}

/// Where [`init`] sends the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The journal's native protocol, with [`Fields`].
    Journal,
    /// Plain lines on stderr.
    Stderr,
}

/// Installs the process's logger: the journal with `fields` when stderr is connected to it,
/// plain lines on stderr otherwise. Messages at `info` and above are kept. Call once, first.
pub fn init(fields: &Fields) -> Destination {
    log::set_max_level(LevelFilter::Info);
    if systemd_journal_logger::connected_to_journal()
        && let Ok(journal) = JournalLog::new()
    {
        let journal = journal
            .with_syslog_identifier(IDENTIFIER.to_owned())
            .with_extra_fields(fields.pairs());
        if journal.install().is_ok() {
            return Destination::Journal;
        }
    }
    let _ = log::set_logger(&StderrLog);
    Destination::Stderr
}

/// Plain lines on stderr: each message as it is, one line each.
#[derive(Debug)]
struct StderrLog;

impl Log for StderrLog {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            let _ = writeln!(std::io::stderr().lock(), "{}", record.args());
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_name_the_phases() {
        for phase in [Phase::Prepare, Phase::Run, Phase::Cleanup] {
            assert_eq!(Phase::from_verb(phase.verb()), Some(phase));
        }
        assert_eq!(Phase::from_verb("start"), None);
    }

    #[test]
    fn fields_name_instance_phase_and_the_unit_of_root_phases() {
        assert_eq!(
            Fields::new("coop1", Phase::Prepare).pairs(),
            [
                ("LEFT4ME_INSTANCE", "coop1".to_owned()),
                ("LEFT4ME_PHASE", "prepare".to_owned()),
                (
                    "OBJECT_SYSTEMD_UNIT",
                    "left4me-server@coop1.service".to_owned()
                ),
            ]
        );
        assert_eq!(
            Fields::new("coop1", Phase::Run).pairs(),
            [
                ("LEFT4ME_INSTANCE", "coop1".to_owned()),
                ("LEFT4ME_PHASE", "run".to_owned()),
            ]
        );
        assert_eq!(
            Fields::new("../etc", Phase::Cleanup).pairs(),
            [("LEFT4ME_PHASE", "cleanup".to_owned())]
        );
    }
}
