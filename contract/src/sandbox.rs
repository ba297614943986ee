//! The command line of `left4me-sandbox`, as one typed value.
//!
//! The job code builds a [`SandboxArgs`] and turns it into arguments with
//! [`SandboxArgs::to_args`]; the runner parses them back with [`SandboxFlags`] (a clap `Args`
//! it flattens into its own parser) and [`SandboxArgs::from`]. Neither side assembles or reads
//! an argument by hand, and a test checks that every value survives the trip.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::game::MAX_CHAIN;

/// Where `make install` puts the runner.
pub const RUNNER: &str = "/usr/lib/left4me/left4me-sandbox";

/// The TCP ports a build may connect to when nothing else is said (HTTP, HTTPS).
pub const DEFAULT_PORTS: [u16; 2] = [80, 443];

/// The sandbox user when `--user` is not given.
pub const DEFAULT_SANDBOX_USER: &str = "l4d2-sandbox";

/// The owner of `/overlay`'s files when `--owner` is not given.
pub const DEFAULT_OWNER: &str = "left4me";

/// The one owner that is not looked up in the passwd file: `--owner root` makes what the
/// command writes land as uid/gid 0 on disk (game versions, SteamCMD's home: root's, DESIGN §8).
/// Allowed only with [`Profile::Steamcmd`]; every other owner is looked up with
/// [`crate::passwd::lookup`], which refuses uid 0.
pub const ROOT_OWNER: &str = "root";

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
    /// The directory behind `/overlay`; must be owned by `owner`. With `lowers`, or with the
    /// owner [`ROOT_OWNER`], it holds `tree/` (what the command writes, the overlay's upper
    /// layer) and `work/` (overlayfs' work dir, needed with `lowers`), both owned by `owner`.
    pub output: PathBuf,
    /// The user the command runs as.
    pub user: String,
    /// The user files written to `/overlay` belong to on disk: the game user, or
    /// [`ROOT_OWNER`] (only with [`Profile::Steamcmd`]).
    pub owner: String,
    pub profile: Profile,
    pub network: Network,
    /// Extra directories whose programs may be read and executed.
    pub allow_exec: Vec<PathBuf>,
    /// Read-only lower layers of `/overlay`, topmost first (`--lower`, only with
    /// [`Profile::Steamcmd`], at most [`MAX_CHAIN`]): `/overlay` is then an overlayfs of these
    /// with `output/tree` as its upper layer.
    pub lowers: Vec<PathBuf>,
    /// A writable directory mounted at [`HOME_DIR`] and given as `$HOME` (`--home`, only with
    /// [`Profile::Steamcmd`]: SteamCMD's home); must be owned by `owner`.
    pub home: Option<PathBuf>,
    /// The command and its arguments.
    pub command: Vec<OsString>,
}

/// Where `--home` appears inside the sandbox (and `$HOME` then).
pub const HOME_DIR: &str = "/home/steamcmd";

/// A combination of settings the runner refuses (exit 125, before anything runs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxArgsError {
    /// A setting only the `steamcmd` profile has.
    #[error("{flag} is allowed only with --profile steamcmd (the profile is {profile})")]
    NeedsSteamcmd {
        /// The flag, e.g. `--lower`.
        flag: &'static str,
        /// The profile given.
        profile: Profile,
    },
    /// More lower layers than a version chain may have.
    #[error(
        "--lower given {count} times; a game version's chain has at most {MAX_CHAIN} layers \
         (squash it into a full tree)"
    )]
    TooManyLowers {
        /// How many were given.
        count: usize,
    },
    /// The same lower layer twice.
    #[error("--lower {path} is given twice")]
    RepeatedLower {
        /// The directory.
        path: PathBuf,
    },
    /// A path that is relative or has `.`/`..` components.
    #[error("{flag} {path} must be an absolute path without . or .. components")]
    NotAbsolute {
        /// The flag.
        flag: &'static str,
        /// The path given.
        path: PathBuf,
    },
}

/// Whether `path` is absolute and has only normal components.
fn is_plain_absolute(path: &Path) -> bool {
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && !path.as_os_str().as_encoded_bytes().ends_with(b"/.")
}

impl SandboxArgs {
    /// Whether the owner is [`ROOT_OWNER`].
    pub fn owner_is_root(&self) -> bool {
        self.owner == ROOT_OWNER
    }

    /// Refuses the combinations the runner refuses: `--lower`, `--home` or `--owner root`
    /// without `--profile steamcmd`, more than [`MAX_CHAIN`] lowers or one twice, and a
    /// relative `--output`, `--lower` or `--home`.
    pub fn check(&self) -> Result<(), SandboxArgsError> {
        if self.profile != Profile::Steamcmd {
            let given = [
                ("--lower", !self.lowers.is_empty()),
                ("--home", self.home.is_some()),
                ("--owner root", self.owner_is_root()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
                return Err(SandboxArgsError::NeedsSteamcmd {
                    flag,
                    profile: self.profile,
                });
            }
        }
        if self.lowers.len() > MAX_CHAIN {
            return Err(SandboxArgsError::TooManyLowers {
                count: self.lowers.len(),
            });
        }
        let paths = std::iter::once(("--output", &self.output))
            .chain(self.lowers.iter().map(|l| ("--lower", l)))
            .chain(self.home.iter().map(|h| ("--home", h)));
        for (flag, path) in paths {
            if !is_plain_absolute(path) {
                return Err(SandboxArgsError::NotAbsolute {
                    flag,
                    path: path.clone(),
                });
            }
        }
        for (i, lower) in self.lowers.iter().enumerate() {
            if self.lowers[..i].contains(lower) {
                return Err(SandboxArgsError::RepeatedLower {
                    path: lower.clone(),
                });
            }
        }
        Ok(())
    }

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
                for range in PortRange::runs(ports) {
                    args.push("--allow-port".into());
                    args.push(range.to_string().into());
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

/// An `--allow-port` value: one port (`443`) or an inclusive range (`27015-27050`, Steam's
/// content and connection-manager ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// The first port (≥ 1).
    pub first: u16,
    /// The last port (≥ `first`).
    pub last: u16,
}

impl PortRange {
    /// The ports, in order.
    pub fn ports(self) -> impl Iterator<Item = u16> {
        self.first..=self.last
    }

    /// `ports` as ranges: each run of consecutive ascending ports becomes one range, so
    /// flattening them gives `ports` back exactly (order and repeats kept).
    pub fn runs(ports: &[u16]) -> Vec<PortRange> {
        let mut out: Vec<PortRange> = Vec::new();
        for &port in ports {
            match out.last_mut() {
                Some(run) if run.last.checked_add(1) == Some(port) => run.last = port,
                _ => out.push(PortRange {
                    first: port,
                    last: port,
                }),
            }
        }
        out
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let port = |s: &str| match s.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!(
                "{s:?} is not a port (1 to 65535; a range is FIRST-LAST)"
            )),
            Ok(p) => Ok(p),
        };
        let (first, last) = match text.split_once('-') {
            Some((first, last)) => (port(first)?, port(last)?),
            None => (port(text)?, port(text)?),
        };
        if first > last {
            return Err(format!(
                "{text:?}: the range's first port is above its last"
            ));
        }
        Ok(PortRange { first, last })
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

    /// User that files written to /overlay belong to on disk (the game user); `root` only with
    /// --profile steamcmd
    #[arg(long, value_name = "NAME", default_value = DEFAULT_OWNER)]
    pub owner: String,

    /// The policy that confines the command
    #[arg(long, value_enum, default_value_t = Profile::Script)]
    pub profile: Profile,

    /// TCP port (or range FIRST-LAST) the command may connect to (repeatable; default 80 and 443)
    #[arg(
        long = "allow-port",
        value_name = "PORT",
        value_parser = clap::value_parser!(PortRange),
        conflicts_with = "no_network"
    )]
    pub allow_ports: Vec<PortRange>,

    /// No network at all (no IP sockets)
    #[arg(long)]
    pub no_network: bool,

    /// Extra directory whose programs may be read and executed (repeatable)
    #[arg(long = "allow-exec", value_name = "DIR")]
    pub allow_exec: Vec<PathBuf>,

    /// Read-only lower layer of /overlay, topmost first (repeatable; --profile steamcmd only):
    /// /overlay becomes an overlayfs with DIR/tree of --output as its upper layer
    #[arg(long = "lower", value_name = "DIR")]
    pub lowers: Vec<PathBuf>,

    /// Writable directory mounted at /home/steamcmd and given as $HOME (--profile steamcmd
    /// only); must be owned by --owner
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
                ports: flags
                    .allow_ports
                    .into_iter()
                    .flat_map(PortRange::ports)
                    .collect(),
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
                network: Network::Tcp {
                    ports: vec![27015, 443],
                },
                allow_exec: vec!["/opt/tools".into(), "/srv/with space".into()],
                user: "other".into(),
                owner: "owner".into(),
                ..base.clone()
            },
            // What the SteamCMD job passes: root's layers, Steam's ports as ranges.
            SandboxArgs {
                output: "/var/lib/left4me/game/versions/.new-0a1b2c3d".into(),
                owner: ROOT_OWNER.into(),
                profile: Profile::Steamcmd,
                network: Network::Tcp {
                    ports: [80, 443].into_iter().chain(27015..=27050).collect(),
                },
                lowers: vec![
                    "/var/lib/left4me/game/versions/2-2/tree".into(),
                    "/var/lib/left4me/game/versions/1 a/tree".into(),
                ],
                home: Some("/var/lib/left4me/game/steamcmd".into()),
                ..base.clone()
            },
            // A first install: no lowers; ports out of order and repeated.
            SandboxArgs {
                owner: ROOT_OWNER.into(),
                profile: Profile::Steamcmd,
                network: Network::Tcp {
                    ports: vec![443, 80, 81, 81, 65535],
                },
                home: Some("/h".into()),
                ..base.clone()
            },
        ];
        for args in variants {
            args.check().unwrap();
            assert_eq!(parse(args.to_args()).unwrap(), args);
        }
    }

    #[test]
    fn port_ranges() {
        let args = parse(strs(&[
            "--output",
            "/o",
            "--allow-port",
            "27015-27017",
            "--allow-port",
            "443",
            "--",
            "t",
        ]))
        .unwrap();
        assert_eq!(
            args.network,
            Network::Tcp {
                ports: vec![27015, 27016, 27017, 443]
            }
        );
        let steam: Vec<u16> = [80, 443].into_iter().chain(27015..=27050).collect();
        let runs: Vec<String> = PortRange::runs(&steam)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(runs, ["80", "443", "27015-27050"]);
        for bad in ["0", "1-0", "27050-27015", "x", "1-", "-5", "65536", "1-2-3"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn refused_combinations() {
        let base = parse(strs(&["--output", "/o", "--", "t"])).unwrap();
        let steamcmd = SandboxArgs {
            profile: Profile::Steamcmd,
            owner: ROOT_OWNER.into(),
            ..base.clone()
        };
        let too_many: Vec<PathBuf> = (0..=MAX_CHAIN).map(|i| format!("/l{i}").into()).collect();
        let cases = [
            (
                SandboxArgs {
                    lowers: vec!["/l".into()],
                    ..base.clone()
                },
                "--lower is allowed only with --profile steamcmd",
            ),
            (
                SandboxArgs {
                    home: Some("/h".into()),
                    ..base.clone()
                },
                "--home is allowed only with --profile steamcmd",
            ),
            (
                SandboxArgs {
                    owner: ROOT_OWNER.into(),
                    ..base.clone()
                },
                "--owner root is allowed only with --profile steamcmd",
            ),
            (
                SandboxArgs {
                    lowers: too_many,
                    ..steamcmd.clone()
                },
                "--lower given 5 times",
            ),
            (
                SandboxArgs {
                    lowers: vec!["/a".into(), "/b".into(), "/a".into()],
                    ..steamcmd.clone()
                },
                "--lower /a is given twice",
            ),
            (
                SandboxArgs {
                    lowers: vec!["rel/tree".into()],
                    ..steamcmd.clone()
                },
                "--lower rel/tree must be an absolute path",
            ),
            (
                SandboxArgs {
                    home: Some("/h/../etc".into()),
                    ..steamcmd.clone()
                },
                "--home /h/../etc must be an absolute path",
            ),
            (
                SandboxArgs {
                    output: "o".into(),
                    ..base.clone()
                },
                "--output o must be an absolute path",
            ),
        ];
        for (args, want) in cases {
            let err = args.check().unwrap_err().to_string();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
            assert!(!err.contains('\n'), "one line: {err:?}");
        }
        let mut steamcmd_user = steamcmd.clone();
        steamcmd_user.owner = "left4me".into();
        steamcmd_user.lowers = vec!["/a".into()];
        steamcmd_user.check().unwrap();
        steamcmd.check().unwrap();
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
