//! `left4mectl`: parse the command line, run the verb, map errors to exit statuses.

use std::process::ExitCode;

use clap::Parser as _;
use left4mectl::{Cli, exit_status, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(status) => ExitCode::from(status),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_status(&err))
        }
    }
}
