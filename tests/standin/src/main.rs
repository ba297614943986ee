//! srcds-standin: installed by tests as `srcds_run`; see the library and README.md.

use std::process::ExitCode;

use left4me_standin::args::{ArgsError, USAGE};
use left4me_standin::{server, signals};

fn main() -> ExitCode {
    signals::default_sigpipe();
    let argv: Vec<String> = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    match server::run(argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<ArgsError>() {
            Some(usage) => {
                eprintln!("srcds-standin: {usage}\n{USAGE}");
                ExitCode::from(2)
            }
            None => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}
