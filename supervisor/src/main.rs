//! `left4me-supervisor prepare|run|cleanup NAME` — the three phases of
//! `left4me-server@NAME.service`. See the library for what each does.

use std::process::ExitCode;

use left4me_supervisor::exit::{EXIT_RUNTIME, EXIT_USAGE};
use left4me_supervisor::journal::{self, Fields, Phase};
use left4me_supervisor::notify::Notifier;
use left4me_supervisor::phases::{cleanup, prepare, run_instance};

const USAGE: &str = "\
usage: left4me-supervisor prepare|run|cleanup NAME

The per-instance supervisor of left4me, run by left4me-server@NAME.service:
  prepare NAME   (ExecStartPre, as root; waits for the instance lock) join PID 1's mount
                 namespace, check the spec and the game install,
                 stage server.cfg into the upper dir and mount the instance's overlay
  run NAME       (ExecStart, as the game user) run merged/srcds_run, send READY=1 once
                 the game answers A2S queries, keep STATUS= current, feed the watchdog
  cleanup NAME   (ExecStopPost, as root) unmount the overlay (found by its mount tag,
                 wherever it is) and remove work/work

Environment: LEFT4ME_CONFIG_DIR (default /etc/left4me), LEFT4ME_STATE_DIR, LEFT4ME_ADMIN_DIR
(default /var/lib/left4me-admin: the instance locks).
Log: to the journal with LEFT4ME_INSTANCE=NAME and LEFT4ME_PHASE=prepare|run|cleanup
when stderr is a journal stream ($JOURNAL_STREAM), else plain lines on stderr.
Exit codes: 0 ok, 1 runtime error, 2 usage, 3 bad spec, 4 bad layer, 5 mount failed,
6 the game never answered; run otherwise exits with the game's status: 0 also when the
stop signal it forwarded killed the game (a stop is never a failure), 128+N when any
other signal N did (a crash).";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (phase, name) = match &args[..] {
        [flag] if flag == "-h" || flag == "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [flag] if flag == "--version" => {
            println!("left4me-supervisor {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        [verb, name] => match Phase::from_verb(verb) {
            Some(phase) => (phase, name.as_str()),
            None => return usage_error(),
        },
        _ => return usage_error(),
    };
    journal::init(&Fields::new(name, phase));
    let verb = phase.verb();
    // The privileged phases join PID 1's mount namespace first thing, while single-threaded.
    if phase != Phase::Run
        && let Err(err) = left4me_overlay::join_pid1_mount_namespace()
    {
        log::error!("left4me-supervisor {verb} {name}: error: {err}");
        return code(EXIT_RUNTIME);
    }
    let result = match phase {
        Phase::Prepare => prepare(name).map(|report| {
            log::info!("left4me-supervisor: {report}");
            0
        }),
        Phase::Cleanup => cleanup(name).map(|report| {
            log::info!("left4me-supervisor: {report}");
            0
        }),
        Phase::Run => run_instance(name, &Notifier::from_env()),
    };
    match result {
        Ok(status) => code(status),
        Err(err) => {
            log::error!("left4me-supervisor {verb} {name}: error: {err}");
            code(err.exit_code())
        }
    }
}

fn usage_error() -> ExitCode {
    eprintln!("{USAGE}");
    code(EXIT_USAGE)
}

fn code(status: i32) -> ExitCode {
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}
