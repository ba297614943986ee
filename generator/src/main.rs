//! `left4me-generator NORMAL_DIR [EARLY_DIR LATE_DIR]` — see systemd.generator(7).

use std::path::PathBuf;
use std::process::ExitCode;

use left4me_generator::{Logger, Outcome, generate, online_cpus};
use left4me_spec::Layout;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let mut log = Logger::for_environment();
    let normal_dir = match &args[..] {
        [normal] | [normal, _, _] => normal,
        _ => {
            log.error("usage: left4me-generator NORMAL_DIR [EARLY_DIR LATE_DIR]");
            return ExitCode::from(2);
        }
    };
    let config_dir = Layout::config_dir_from_env();
    match generate(
        &config_dir,
        Layout::state_dir_from_env(),
        normal_dir,
        online_cpus(),
        &mut log,
    ) {
        Outcome::AllWritten => ExitCode::SUCCESS,
        Outcome::SomeRefused | Outcome::Failed => ExitCode::from(1),
    }
}
