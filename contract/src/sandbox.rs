//! The command line of `left4me-sandbox`, as one typed value.
//!
//! The job code builds a [`SandboxArgs`] and turns it into arguments with
//! [`SandboxArgs::to_args`]; the runner parses them back with [`SandboxFlags`] (a clap `Args`
//! it flattens into its own parser) and [`SandboxArgs::from`]. Neither side assembles or reads
//! an argument by hand, and a test checks that every value survives the trip.

use std::ffi::OsString;
use std::path::PathBuf;

/// Where `make install` puts the runner.
pub const RUNNER: &str = "/usr/lib/left4me/left4me-sandbox";

/// The TCP ports a build may connect to when nothing else is said (HTTP, HTTPS).
pub const DEFAULT_PORTS: [u16; 2] = [80, 443];

/// The sandbox user when `--user` is not given.
pub const DEFAULT_SANDBOX_USER: &str = "l4d2-sandbox";

/// The owner of `/overlay`'s files when `--owner` is not given.
pub const DEFAULT_OWNER: &str = "left4me";

/// Which of the runner's named policies confines the command. Each is one data definition in
/// `left4me-sandbox` (its `profile` module), with a reason for every rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum Profile {
    /// Overlay build scripts: bash and the usual download and unpack tools.
    #[default]
    Script,
    /// SteamCMD: a 32-bit (i386) program, so the x86 system call ABI is allowed too.
    Steamcmd,
}

impl Profile {
    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Script => "script",
            Profile::Steamcmd => "steamcmd",
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The command's network access.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Network {
    /// No IP sockets at all.
    Off,
    /// TCP `connect` only to these ports (never empty); UDP for DNS.
    Tcp { ports: Vec<u16> },
}

impl Default for Network {
    fn default() -> Self {
        Network::Tcp {
            ports: DEFAULT_PORTS.to_vec(),
        }
    }
}

/// One run of `left4me-sandbox`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SandboxArgs {
    /// The directory idmapped at `/overlay`; must be owned by `owner`.
    pub output: PathBuf,
    /// The user the command runs as.
    pub user: String,
    /// The user files written to `/overlay` belong to on disk (the game user).
    pub owner: String,
    pub profile: Profile,
    pub network: Network,
    /// Extra directories whose programs may be read and executed.
    pub allow_exec: Vec<PathBuf>,
    /// Read-only lower layers of `/overlay`, topmost first (`--lower`, repeatable): with any,
    /// `/overlay` is an overlayfs whose upper is `output/tree` and work dir `output/work`.
    pub lowers: Vec<PathBuf>,
    /// A writable directory idmapped at `/home/steamcmd` and made `$HOME` (`--home`).
    pub home: Option<PathBuf>,
    /// The command and its arguments.
    pub command: Vec<OsString>,
}

impl SandboxArgs {
    /// The runner's arguments (without the program itself), in a fixed order.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--output".into(),
            self.output.clone().into(),
            "--user".into(),
            self.user.clone().into(),
            "--owner".into(),
            self.owner.clone().into(),
            "--profile".into(),
            self.profile.as_str().into(),
        ];
        match &self.network {
            Network::Off => args.push("--no-network".into()),
            Network::Tcp { ports } => {
                for port in ports {
                    args.push("--allow-port".into());
                    args.push(port.to_string().into());
                }
            }
        }
        for dir in &self.allow_exec {
            args.push("--allow-exec".into());
            args.push(dir.clone().into());
        }
        for dir in &self.lowers {
            args.push("--lower".into());
            args.push(dir.clone().into());
        }
        if let Some(home) = &self.home {
            args.push("--home".into());
            args.push(home.clone().into());
        }
        args.push("--".into());
        args.extend(self.command.iter().cloned());
        args
    }
}

/// The runner's flags, for its clap parser (`#[command(flatten)]`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct SandboxFlags {
    /// Directory the command writes into, seen as /overlay; must be owned by --owner
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,

    /// User the command runs as
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SANDBOX_USER)]
    pub user: String,

    /// User that files written to /overlay belong to on disk (the game user)
    #[arg(long, value_name = "NAME", default_value = DEFAULT_OWNER)]
    pub owner: String,

    /// The policy that confines the command
    #[arg(long, value_enum, default_value_t = Profile::Script)]
    pub profile: Profile,

    /// TCP port the command may connect to (repeatable; default 80 and 443)
    #[arg(
        long = "allow-port",
        value_name = "PORT",
        value_parser = clap::value_parser!(u16).range(1..),
        conflicts_with = "no_network"
    )]
    pub allow_ports: Vec<u16>,

    /// No network at all (no IP sockets)
    #[arg(long)]
    pub no_network: bool,

    /// Extra directory whose programs may be read and executed (repeatable)
    #[arg(long = "allow-exec", value_name = "DIR")]
    pub allow_exec: Vec<PathBuf>,

    /// Read-only lower layer of /overlay, topmost first (repeatable)
    #[arg(long = "lower", value_name = "DIR")]
    pub lowers: Vec<PathBuf>,

    /// Writable directory seen as /home/steamcmd and made $HOME
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

impl From<SandboxFlags> for SandboxArgs {
    fn from(flags: SandboxFlags) -> Self {
        let network = if flags.no_network {
            Network::Off
        } else if flags.allow_ports.is_empty() {
            Network::default()
        } else {
            Network::Tcp {
                ports: flags.allow_ports,
            }
        };
        SandboxArgs {
            output: flags.output,
            user: flags.user,
            owner: flags.owner,
            profile: flags.profile,
            network,
            allow_exec: flags.allow_exec,
            lowers: flags.lowers,
            home: flags.home,
            command: flags.command,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory as _, Parser};

    #[derive(Debug, Parser)]
    struct Runner {
        #[command(flatten)]
        flags: SandboxFlags,
    }

    fn parse(args: impl IntoIterator<Item = OsString>) -> Result<SandboxArgs, clap::Error> {
        let argv = std::iter::once(OsString::from("left4me-sandbox")).chain(args);
        Runner::try_parse_from(argv).map(|r| r.flags.into())
    }

    fn strs(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn parser_is_consistent() {
        Runner::command().debug_assert();
    }

    #[test]
    fn every_value_survives_the_round_trip() {
        let base = SandboxArgs {
            output: "/var/lib/left4me/overlays/.maps.build-0a1b2c3d".into(),
            user: "l4d2-sandbox".into(),
            owner: "left4me".into(),
            profile: Profile::Script,
            network: Network::default(),
            allow_exec: Vec::new(),
            lowers: Vec::new(),
            home: None,
            command: strs(&["/bin/bash", "-c", "echo --no-network $HOME -- x"]),
        };
        let variants = [
            base.clone(),
            SandboxArgs {
                network: Network::Off,
                profile: Profile::Steamcmd,
                ..base.clone()
            },
            SandboxArgs {
                profile: Profile::Steamcmd,
                owner: "root".into(),
                lowers: vec![
                    "/s/game/versions/2/tree".into(),
                    "/s/game/versions/1/tree".into(),
                ],
                home: Some("/s/game/steamcmd".into()),
                ..base.clone()
            },
            SandboxArgs {
                network: Network::Tcp {
                    ports: vec![27015, 443],
                },
                allow_exec: vec!["/opt/tools".into(), "/srv/with space".into()],
                user: "other".into(),
                owner: "owner".into(),
                ..base.clone()
            },
        ];
        for args in variants {
            assert_eq!(parse(args.to_args()).unwrap(), args);
        }
    }

    #[test]
    fn defaults_and_refusals() {
        let args = parse(strs(&["--output", "/o", "--", "true"])).unwrap();
        assert_eq!(args.user, DEFAULT_SANDBOX_USER);
        assert_eq!(args.owner, DEFAULT_OWNER);
        assert_eq!(args.profile, Profile::Script);
        assert_eq!(
            args.network,
            Network::Tcp {
                ports: vec![80, 443]
            }
        );
        for bad in [
            &[
                "--output",
                "/o",
                "--no-network",
                "--allow-port",
                "1",
                "--",
                "t",
            ][..],
            &["--output", "/o", "--allow-port", "0", "--", "t"],
            &["--output", "/o", "--profile", "nope", "--", "t"],
            &["--output", "/o"],
            &["--", "true"],
        ] {
            assert!(parse(strs(bad)).is_err(), "{bad:?}");
        }
    }
}
