//! `left4mectl`: parse the command line, run the verb, map errors to exit statuses.

use std::process::ExitCode;

use clap::Parser as _;
use left4mectl::{Cli, exit_status, run};

fn main() -> ExitCode {
    // A Tab press in a shell whose completion script calls back: answer it and exit.
    left4mectl::complete::complete_from_env();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(status) => ExitCode::from(status),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_status(&err))
        }
    }
}
