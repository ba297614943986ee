//! How a job ended: systemd-run's summary of the unit, judged into a [`Status`].

use crate::format_bytes;
use crate::job::Limits;
use crate::ledger::LedgerStatus;

/// systemd-run's summary of the ended unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// `success`, `exit-code`, `signal`, `timeout`, `oom-kill`, …
    pub result: Option<String>,
    /// The main process's exit status, when it exited.
    pub exit_status: Option<i64>,
    /// The signal that killed it (`TERM`, `KILL`, …), when one did.
    pub signal: Option<String>,
    /// The other summary lines (runtime, traffic), as printed.
    pub lines: Vec<String>,
}

impl Summary {
    pub fn parse(lines: &[String]) -> Self {
        let mut summary = Summary::default();
        for line in lines {
            if let Some(result) = line.strip_prefix("Finished with result: ") {
                summary.result = Some(result.trim().to_owned());
            } else if let Some(how) = line.strip_prefix("Main processes terminated with: ") {
                // code=exited/status=3 or code=killed/status=TERM
                let (code, status) = how.split_once('/').unwrap_or((how, ""));
                let status = status.trim_start_matches("status=").trim();
                match code {
                    "code=exited" => summary.exit_status = status.parse().ok(),
                    _ => summary.signal = Some(status.to_owned()),
                }
            } else {
                summary.lines.push(line.clone());
            }
        }
        summary
    }
}

/// What the runner's exit status means.
pub fn describe_exit(status: i64) -> String {
    match status {
        125 => "the sandbox could not be set up (left4me-sandbox exit status 125; its error is \
                in the output above)"
            .into(),
        126 => "the script could not be executed (exit status 126)".into(),
        127 => "the script's interpreter was not found (exit status 127)".into(),
        159 => {
            "the script was killed by SIGSYS: it used a forbidden system call architecture".into()
        }
        s if s > 128 => format!("the script was killed by signal {}", s - 128),
        s => format!("the script exited with status {s}"),
    }
}

/// Why a job failed. Its `Display` is the one line the ledger and the operator see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error(
        "the state dir's file system ran low ({} free, builds keep {} free): the build was killed",
        format_bytes(*free),
        format_bytes(*reserve)
    )]
    DiskRanLow { free: u64, reserve: u64 },
    #[error(
        "the build left the state dir's file system with {} free, less than the {} builds keep \
         free",
        format_bytes(*free),
        format_bytes(*reserve)
    )]
    DiskLeftLow { free: u64, reserve: u64 },
    #[error(
        "the state dir's file system ran out of inodes ({free} free, builds keep {reserve} free; \
         too many files): the build was killed"
    )]
    InodesRanLow { free: u64, reserve: u64 },
    #[error(
        "the build left the state dir's file system with {free} free inodes, less than the \
         {reserve} builds keep free (too many files)"
    )]
    InodesLeftLow { free: u64, reserve: u64 },
    /// The kernel's OOM killer sends SIGKILL; when it hits the runner's direct child, systemd
    /// sees an exit status (137), not an oom-kill result.
    #[error(
        "the script was killed by SIGKILL: usually the memory limit ([limits] memory_max = \
         \"{memory_max}\")"
    )]
    Sigkill { memory_max: String },
    #[error("{}", describe_exit(*.0))]
    Exit(i64),
    #[error("the build ran past its time limit ([limits] timeout = \"{timeout}\") and was stopped")]
    Timeout { timeout: String },
    #[error("the build ran out of memory ([limits] memory_max = \"{memory_max}\") and was stopped")]
    OutOfMemory { memory_max: String },
    #[error("the build was killed by signal {}", .0.as_deref().unwrap_or("?"))]
    Signal(Option<String>),
    #[error("systemd ended the build with result '{0}'")]
    Result(String),
    #[error(
        "systemd-run failed (exit status {}) before the build ran; see its message above",
        .0.map_or("?".into(), |s| s.to_string())
    )]
    SystemdRun(Option<i32>),
    /// The output check's problems ([`crate::check::check_output`]).
    #[error("the output was refused: {}", .0.join("; "))]
    Refused(Vec<String>),
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The command succeeded and its output was published.
    Succeeded,
    /// Nothing was published.
    Failed(Failure),
    /// A signal to this process stopped the job; nothing was published.
    Interrupted,
}

impl Status {
    /// What the ledger stores.
    pub fn ledger_status(&self) -> LedgerStatus {
        match self {
            Status::Succeeded => LedgerStatus::Success,
            Status::Failed(_) => LedgerStatus::Failed,
            Status::Interrupted => LedgerStatus::Interrupted,
        }
    }

    /// The ledger's one line about it.
    pub fn detail(&self) -> String {
        match self {
            Status::Succeeded => "the script succeeded".into(),
            Status::Failed(failure) => failure.to_string(),
            Status::Interrupted => "stopped by a signal to left4mectl (Ctrl-C?)".into(),
        }
    }
}

/// The status of a run from systemd-run's `summary` and exit status, whether a signal
/// `interrupted` it, and what the disk guard found (`guard`).
pub fn judge(
    summary: &Summary,
    run_status: Option<i32>,
    limits: &Limits,
    interrupted: bool,
    guard: Option<Failure>,
) -> Status {
    if let Some(failure) = guard {
        return Status::Failed(failure);
    }
    if interrupted {
        return Status::Interrupted;
    }
    let failure = match summary.result.as_deref() {
        Some("success") if run_status == Some(0) => return Status::Succeeded,
        Some("exit-code") if summary.exit_status == Some(137) => Failure::Sigkill {
            memory_max: limits.memory_max.clone(),
        },
        Some("exit-code") => Failure::Exit(summary.exit_status.unwrap_or(1)),
        Some("timeout") => Failure::Timeout {
            timeout: limits.timeout.clone(),
        },
        Some("oom-kill") => Failure::OutOfMemory {
            memory_max: limits.memory_max.clone(),
        },
        Some("signal") => Failure::Signal(summary.signal.clone()),
        Some(other) => Failure::Result(other.to_owned()),
        None => Failure::SystemdRun(run_status),
    };
    Status::Failed(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    fn limits() -> Limits {
        Limits {
            memory_max: "4G".into(),
            tasks_max: 512,
            timeout: "1h".into(),
        }
    }

    #[test]
    fn parses_systemd_run_summaries() {
        let s = Summary::parse(&lines(
            "Finished with result: exit-code\nMain processes terminated with: \
             code=exited/status=3\nService runtime: 2ms\nIP traffic received: 0B",
        ));
        assert_eq!(s.result.as_deref(), Some("exit-code"));
        assert_eq!(s.exit_status, Some(3));
        assert_eq!(s.signal, None);
        assert_eq!(s.lines, ["Service runtime: 2ms", "IP traffic received: 0B"]);
        let s = Summary::parse(&lines(
            "Finished with result: timeout\nMain processes terminated with: \
             code=killed/status=TERM",
        ));
        assert_eq!(s.result.as_deref(), Some("timeout"));
        assert_eq!(s.signal.as_deref(), Some("TERM"));
    }

    #[test]
    fn judges_outcomes() {
        let limits = limits();
        let summary = |text: &str| Summary::parse(&lines(text));
        let ok = summary(
            "Finished with result: success\nMain processes terminated with: code=exited/status=0",
        );
        assert_eq!(judge(&ok, Some(0), &limits, false, None), Status::Succeeded);
        assert_eq!(
            judge(&ok, Some(0), &limits, true, None),
            Status::Interrupted
        );
        let disk = Failure::DiskRanLow {
            free: 1,
            reserve: 2,
        };
        let full = judge(&ok, Some(0), &limits, false, Some(disk.clone()));
        assert_eq!(full, Status::Failed(disk));
        assert_eq!(full.ledger_status(), LedgerStatus::Failed);
        let timeout = judge(
            &summary("Finished with result: timeout"),
            Some(1),
            &limits,
            false,
            None,
        );
        assert!(
            timeout.detail().contains("timeout = \"1h\""),
            "{}",
            timeout.detail()
        );
        let oom = judge(
            &summary("Finished with result: oom-kill"),
            Some(1),
            &limits,
            false,
            None,
        );
        assert!(oom.detail().contains("memory_max = \"4G\""));
        let exit = summary(
            "Finished with result: exit-code\nMain processes terminated with: code=exited/status=125",
        );
        assert!(
            judge(&exit, Some(125), &limits, false, None)
                .detail()
                .contains("could not be set up")
        );
        let none = judge(&Summary::default(), Some(1), &limits, false, None);
        assert!(
            none.detail()
                .starts_with("systemd-run failed (exit status 1)")
        );
        assert_eq!(describe_exit(3), "the script exited with status 3");
        assert!(describe_exit(159).contains("SIGSYS"));
        assert_eq!(describe_exit(137), "the script was killed by signal 9");
    }
}
