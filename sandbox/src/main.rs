//! `left4me-sandbox`: parses the command line and hands over to the library.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use left4me_contract::sandbox::{SandboxArgs, SandboxFlags};
use left4me_sandbox::runner::EXIT_SETUP_FAILED;
use left4me_sandbox::{Invocation, Layers, Outcome};

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
    #[command(flatten)]
    flags: SandboxFlags,
}

fn main() -> ExitCode {
    let invocation = Invocation::from(SandboxArgs::from(Cli::parse().flags));
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
    use left4me_contract::sandbox::{Network, Profile};

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_and_flags() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(args).map(|cli| Invocation::from(SandboxArgs::from(cli.flags)))
        };
        let inv = parse(&["x", "--output", "/o", "--", "/bin/bash", "s"]).unwrap();
        assert_eq!(inv.sandbox_user, "l4d2-sandbox");
        assert_eq!(inv.owner_user, "left4me");
        assert_eq!(inv.policy.connect_ports(), &[80, 443]);
        assert_eq!(inv.policy.profile, Profile::Script);
        assert_eq!(inv.command, ["/bin/bash", "s"]);

        let inv = parse(&["x", "--output", "/o", "--allow-port", "8080", "--", "true"]).unwrap();
        assert_eq!(inv.policy.connect_ports(), &[8080]);

        let inv = parse(&["x", "--output", "/o", "--no-network", "--", "true"]).unwrap();
        assert_eq!(inv.policy.network, Network::Off);

        let inv = parse(&["x", "--output", "/o", "--profile", "steamcmd", "--", "t"]).unwrap();
        assert_eq!(inv.policy.profile, Profile::Steamcmd);

        let inv = parse(&["x", "--output", "/o", "--allow-exec", "/opt/t", "--", "t"]).unwrap();
        assert_eq!(inv.policy.extra_exec, [std::path::PathBuf::from("/opt/t")]);

        // What the parser refuses is tested with the flags, in left4me-contract.
    }

    #[test]
    fn help_keeps_the_exit_codes_and_every_flag() {
        let help = Cli::command().render_long_help().to_string();
        for text in [
            "--output",
            "--user",
            "--owner",
            "--profile",
            "--allow-port",
            "--no-network",
            "--allow-exec",
            "--lower",
            "--home",
            "159: SIGSYS",
            "125      the sandbox could not be set up",
        ] {
            assert!(help.contains(text), "--help lacks {text:?}:\n{help}");
        }
    }
}
