//! `left4me-sandbox`: parses the command line and hands over to the library.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use left4me_sandbox::runner::EXIT_SETUP_FAILED;
use left4me_sandbox::{Invocation, Layers, Network, Outcome, Policy};

const EXIT_CODES: &str = "\
Exit status:
  N        the command's own exit status
  128+N    the command was killed by signal N (159: SIGSYS, a forbidden architecture)
  125      the sandbox could not be set up; the command did not run
  126      the command could not be executed
  127      the command was not found
  2        usage error";

/// Runs CMD as the sandbox user with DIR idmapped at /overlay (its working directory),
/// behind a private read-only root, Landlock and seccomp. Must start as root.
#[derive(Debug, Parser)]
#[command(name = "left4me-sandbox", version, after_help = EXIT_CODES)]
struct Cli {
    /// Directory the command writes into, seen as /overlay; must be owned by --owner
    #[arg(long, value_name = "DIR")]
    output: PathBuf,

    /// User the command runs as
    #[arg(long, value_name = "NAME", default_value = "l4d2-sandbox")]
    user: String,

    /// User that files written to /overlay belong to on disk (the game user)
    #[arg(long, value_name = "NAME", default_value = "left4me")]
    owner: String,

    /// TCP port the command may connect to (repeatable; default 80 and 443)
    #[arg(
        long = "allow-port",
        value_name = "PORT",
        value_parser = clap::value_parser!(u16).range(1..),
        conflicts_with = "no_network"
    )]
    allow_ports: Vec<u16>,

    /// No network at all (no IP sockets)
    #[arg(long)]
    no_network: bool,

    /// Extra directory whose programs may be read and executed (repeatable)
    #[arg(long = "allow-exec", value_name = "DIR")]
    allow_exec: Vec<PathBuf>,

    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

impl Cli {
    fn invocation(self) -> Invocation {
        let network = if self.no_network {
            Network::Off
        } else if self.allow_ports.is_empty() {
            Policy::default().network
        } else {
            Network::Tcp {
                connect_ports: self.allow_ports,
            }
        };
        let mut policy = Policy::with_network(network);
        policy.extra_exec = self.allow_exec;
        Invocation {
            output: self.output,
            sandbox_user: self.user,
            owner_user: self.owner,
            policy,
            command: self.command,
        }
    }
}

fn main() -> ExitCode {
    let invocation = Cli::parse().invocation();
    match left4me_sandbox::run(&invocation, Layers::ALL) {
        Ok(outcome) => {
            if let Outcome::Failed { message, .. } = &outcome {
                eprintln!("error: {message}");
            }
            ExitCode::from(outcome.exit_code())
        }
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::from(e));
            ExitCode::from(EXIT_SETUP_FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_and_flags() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(Cli::invocation);
        let inv = parse(&["x", "--output", "/o", "--", "/bin/bash", "s"]).unwrap();
        assert_eq!(inv.sandbox_user, "l4d2-sandbox");
        assert_eq!(inv.owner_user, "left4me");
        assert_eq!(inv.policy.connect_ports(), &[80, 443]);
        assert_eq!(inv.command, ["/bin/bash", "s"]);

        let inv = parse(&["x", "--output", "/o", "--allow-port", "8080", "--", "true"]).unwrap();
        assert_eq!(inv.policy.connect_ports(), &[8080]);

        let inv = parse(&["x", "--output", "/o", "--no-network", "--", "true"]).unwrap();
        assert_eq!(inv.policy.network, Network::Off);

        assert!(
            parse(&[
                "x",
                "--output",
                "/o",
                "--no-network",
                "--allow-port",
                "1",
                "--",
                "t"
            ])
            .is_err()
        );
        assert!(parse(&["x", "--output", "/o", "--allow-port", "0", "--", "t"]).is_err());
        assert!(parse(&["x", "--output", "/o"]).is_err());
        assert!(parse(&["x", "--", "true"]).is_err());
    }
}
