//! The transient unit a job runs in, as data: every property `systemd-run` gets, in
//! one place, so a run, `--dry-run` and the security-score test all see
//! the same list.
//!
//! The runner (`left4me-sandbox`) confines the script itself (its own root, idmapped `/overlay`,
//! no capabilities, Landlock, seccomp). The unit adds what only systemd can: cgroup limits, the
//! IP address filter, and a second, coarser sandbox around the runner. It runs the runner as
//! the game user with exactly the four capabilities it needs (mounts, the idmap user namespace,
//! the drop to the sandbox user) as ambient capabilities, not as root: the runner never holds
//! `CAP_DAC_*` and `systemd-analyze security` rates the unit 2.4 rather than 2.7. See
//! ctl/README.md ("Overlay builds") for the reasons behind each line.
//!
//! The runner's own command line is a [`SandboxArgs`] turned into arguments by
//! [`SandboxArgs::to_args`] (the runner parses it back with the same type); this module only
//! adds systemd's `$` escaping, which is the unit's concern.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::Path;

use left4me_contract::sandbox::{self, Profile, RUNNER, SandboxArgs};

use crate::job::{Job, JobKind, Limits, NetworkPolicy, Resolver};
use crate::netrange::allowed_networks;

/// The slice every build runs in (low CPU and IO weight, the system CPUs).
pub const SLICE: &str = "l4d2-build.slice";
/// The longest single argument the kernel takes (`MAX_ARG_STRLEN` less its NUL): a script
/// given to `bash -c` must fit, after [`escape_for_exec`].
pub const MAX_ARG_BYTES: usize = 128 * 1024 - 1;

/// What the runner needs: `CAP_SYS_ADMIN` for its mount namespace, the idmapped `/overlay` and
/// `pivot_root`; `CAP_SETUID`/`CAP_SETGID` for the idmap user namespace's maps and the drop to
/// the sandbox user; `CAP_SETPCAP` to empty the bounding set before the script starts.
pub const RUNNER_CAPABILITIES: &str = "CAP_SYS_ADMIN CAP_SETUID CAP_SETGID CAP_SETPCAP";

/// The unit's system call allow-list: what `systemd` calls a service's normal set, plus the
/// mount API the runner uses and the Landlock and seccomp calls it makes last. The runner's own
/// seccomp filter for the script is far narrower; this one also holds for the runner.
pub const SYSCALL_FILTER: &str = "@system-service @mount landlock_create_ruleset \
    landlock_add_rule landlock_restrict_self seccomp";

/// The unit of one run: its name and every property, then the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransientUnit {
    /// `left4me-build-NAME-ID.service`.
    pub unit: String,
    pub description: String,
    /// `(property, value)` in the order they are passed.
    pub properties: Vec<(&'static str, String)>,
    /// The runner's command line, every `$` doubled for systemd ([`escape_for_exec`]).
    pub command: Vec<OsString>,
}

/// systemd expands `$VAR`, `${VAR}` and `$$` in a transient unit's command line (systemd-run
/// 252 cannot turn that off): doubling every `$` gives the text back unchanged.
pub fn escape_for_exec(text: &str) -> String {
    text.replace('$', "$$")
}

/// [`escape_for_exec`] for one argument of any bytes.
fn escape_arg(arg: &OsStr) -> OsString {
    let mut out = Vec::with_capacity(arg.len());
    for &byte in arg.as_bytes() {
        out.push(byte);
        if byte == b'$' {
            out.push(b'$');
        }
    }
    OsString::from_vec(out)
}

/// The runner's invocation for `job` writing into `output`.
pub fn sandbox_args(job: &Job, output: &Path) -> SandboxArgs {
    SandboxArgs {
        output: output.to_path_buf(),
        user: job.sandbox_user.clone(),
        owner: job.game_user.clone(),
        profile: job.profile,
        network: sandbox_network(&job.network),
        allow_exec: Vec::new(),
        lowers: Vec::new(),
        home: None,
        command: job.command.clone(),
    }
}

/// The runner's network for a job's.
fn sandbox_network(network: &NetworkPolicy) -> sandbox::Network {
    match network {
        NetworkPolicy::Off => sandbox::Network::Off,
        NetworkPolicy::Public { ports } => sandbox::Network::Tcp {
            ports: ports.clone(),
        },
    }
}

/// A download: `command` in the `script` profile as the sandbox user, writing into `output`
/// (where files land as the game user's), with `network`'s public addresses and ports through
/// `resolver`. SteamCMD's bootstrap and workshop downloads are such jobs.
#[derive(Debug, Clone)]
pub(crate) struct Download<'a> {
    pub kind: JobKind,
    pub name: &'a str,
    pub id: &'a str,
    pub game_user: &'a str,
    pub sandbox_user: &'a str,
    pub limits: &'a Limits,
    pub output: &'a Path,
    pub network: &'a NetworkPolicy,
    pub resolver: &'a Resolver,
    pub command: Vec<OsString>,
}

/// Everything a unit is made from, whatever the job: overlay builds make it from a [`Job`]
/// ([`TransientUnit::new`]), SteamCMD runs from their own request (`crate::steamcmd`).
#[derive(Debug, Clone)]
pub struct UnitSpec<'a> {
    pub kind: JobKind,
    /// The job's name (the overlay's; game jobs have one name).
    pub name: &'a str,
    /// The run's id (8 hex digits).
    pub id: &'a str,
    /// The unit's `User=` (the game user: the runner opens its dirs with its rights).
    pub user: &'a str,
    pub limits: &'a Limits,
    pub network: &'a NetworkPolicy,
    /// The unit's `ReadWritePaths=`: what the runner writes.
    pub writable: Vec<&'a Path>,
    pub resolver: Option<&'a Resolver>,
    /// The runner's command line.
    pub sandbox: SandboxArgs,
}

impl TransientUnit {
    /// The unit of run `id` of `job`, writing into `output`, with `resolver` when the job has
    /// network.
    pub fn new(job: &Job, id: &str, output: &Path, resolver: Option<&Resolver>) -> Self {
        TransientUnit::from_spec(&UnitSpec {
            kind: job.kind,
            name: &job.name,
            id,
            user: &job.game_user,
            limits: &job.limits,
            network: &job.network,
            writable: vec![output],
            resolver,
            sandbox: sandbox_args(job, output),
        })
    }

    /// The unit of `download`.
    pub(crate) fn download(download: Download<'_>) -> Self {
        TransientUnit::from_spec(&UnitSpec {
            kind: download.kind,
            name: download.name,
            id: download.id,
            user: download.game_user,
            limits: download.limits,
            network: download.network,
            writable: vec![download.output],
            resolver: Some(download.resolver),
            sandbox: SandboxArgs {
                output: download.output.to_path_buf(),
                user: download.sandbox_user.to_owned(),
                owner: download.game_user.to_owned(),
                profile: Profile::Script,
                network: sandbox_network(download.network),
                allow_exec: Vec::new(),
                lowers: Vec::new(),
                home: None,
                command: download.command,
            },
        })
    }

    /// The same unit for an output that lies in a dir only root may enter: the runner also
    /// gets `CAP_DAC_READ_SEARCH` to open it, dropped with the rest before the command runs
    /// (the runner holds `CAP_SYS_ADMIN` until then anyway).
    pub(crate) fn reaching_through_root_dirs(mut self) -> Self {
        for (key, value) in &mut self.properties {
            if matches!(*key, "AmbientCapabilities" | "CapabilityBoundingSet") {
                value.push_str(" CAP_DAC_READ_SEARCH");
            }
        }
        self
    }

    /// The unit `spec` describes. The steamcmd profile runs a 32-bit program, so its unit
    /// allows the x86 system call ABI and has no `MemoryDenyWriteExecute=` (SteamCMD, like
    /// srcds, maps writable code).
    pub fn from_spec(spec: &UnitSpec<'_>) -> Self {
        let (limits, resolver) = (spec.limits, spec.resolver);
        let steamcmd = spec.sandbox.profile == Profile::Steamcmd;
        let writable: Vec<String> = spec
            .writable
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let mut properties: Vec<(&'static str, String)> = vec![
            // Identity: the game user, so the runner can open its output dir (the state dir
            // is 0750 left4me) without CAP_DAC_*; the capabilities the runner needs, nothing
            // else, and no way to gain more.
            ("User", spec.user.to_owned()),
            ("AmbientCapabilities", RUNNER_CAPABILITIES.to_owned()),
            ("CapabilityBoundingSet", RUNNER_CAPABILITIES.to_owned()),
            ("NoNewPrivileges", "yes".into()),
            // Limits from the overlay definition. Swap would stretch MemoryMax=.
            ("MemoryMax", limits.memory_max.to_string()),
            ("MemorySwapMax", "0".into()),
            ("TasksMax", limits.tasks_max.to_string()),
            ("RuntimeMaxSec", limits.timeout.to_string()),
            ("TimeoutStopSec", "10s".into()),
            // Builds die first when memory is short; one process killed ends the build.
            ("OOMScoreAdjust", "500".into()),
            ("OOMPolicy", "stop".into()),
            ("LimitCORE", "0".into()),
            // File system: read-only host, writable only the fresh output dir.
            ("ProtectSystem", "strict".into()),
            ("ReadWritePaths", writable.join(" ")),
            ("ProtectHome", "yes".into()),
            ("PrivateTmp", "yes".into()),
            ("PrivateDevices", "yes".into()),
            ("PrivateIPC", "yes".into()),
            ("PrivateMounts", "yes".into()),
            ("ProtectKernelTunables", "yes".into()),
            ("ProtectKernelModules", "yes".into()),
            ("ProtectKernelLogs", "yes".into()),
            ("ProtectControlGroups", "yes".into()),
            ("ProtectClock", "yes".into()),
            ("ProtectHostname", "yes".into()),
            ("ProtectProc", "invisible".into()),
            ("ProcSubset", "pid".into()),
            ("DevicePolicy", "closed".into()),
            ("KeyringMode", "private".into()),
            // The runner makes its root's directories under this umask (0755 & ~umask must
            // stay traversable by the sandbox user); it sets 022 for the script itself.
            ("UMask", "0022".into()),
            ("NotifyAccess", "none".into()),
            // Kernel interfaces: the runner needs a mount and a user namespace, nothing else.
            ("RestrictNamespaces", "mnt user".into()),
            ("RestrictRealtime", "yes".into()),
            ("RestrictSUIDSGID", "yes".into()),
            ("LockPersonality", "yes".into()),
            ("MemoryDenyWriteExecute", "yes".into()),
            ("SystemCallArchitectures", "native".into()),
            ("SystemCallFilter", SYSCALL_FILTER.into()),
            ("SystemCallFilter", "~@resources".into()),
            ("SystemCallErrorNumber", "EPERM".into()),
            ("IPAccounting", "yes".into()),
            ("IPAddressDeny", "any".into()),
        ];
        if steamcmd {
            properties.retain(|(key, _)| *key != "MemoryDenyWriteExecute");
            for (key, value) in &mut properties {
                match *key {
                    "SystemCallArchitectures" => *value = "native x86".into(),
                    // The runner creates the overlay over the previous version with the sandbox
                    // user's file-system ids, and overlayfs then needs to write its root-owned
                    // work dir (sandbox/README.md); dropped with the rest before SteamCMD runs.
                    "AmbientCapabilities" | "CapabilityBoundingSet" => {
                        *value = format!("{RUNNER_CAPABILITIES} CAP_DAC_OVERRIDE");
                    }
                    _ => {}
                }
            }
        }
        match spec.network {
            NetworkPolicy::Off => {
                properties.push(("PrivateNetwork", "yes".into()));
                // The narrowest set systemd 252 takes for a transient unit (`none` is refused);
                // the runner's seccomp filter allows no sockets at all with --no-network.
                properties.push(("RestrictAddressFamilies", "AF_UNIX".into()));
            }
            NetworkPolicy::Public { .. } => {
                let mut allow: Vec<String> =
                    allowed_networks().iter().map(ToString::to_string).collect();
                let exceptions = resolver.map_or(&[][..], |r| &r.plan.exceptions[..]);
                allow.extend(exceptions.iter().map(|a| match a {
                    IpAddr::V4(_) => format!("{a}/32"),
                    IpAddr::V6(_) => format!("{a}/128"),
                }));
                properties.push(("IPAddressAllow", allow.join(" ")));
                properties.push(("RestrictAddressFamilies", "AF_INET AF_INET6".into()));
                if let Some(resolver) = resolver {
                    properties.push((
                        "BindReadOnlyPaths",
                        format!("{}:/etc/resolv.conf", resolver.path.display()),
                    ));
                }
            }
        }
        let mut command = vec![OsString::from(RUNNER)];
        command.extend(spec.sandbox.to_args());
        TransientUnit {
            unit: spec.kind.unit_name(spec.name, spec.id),
            description: spec.kind.describe(spec.name),
            properties,
            command: command.iter().map(|arg| escape_arg(arg)).collect(),
        }
    }

    /// The `systemd-run` arguments (without the program itself).
    pub fn systemd_run_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--wait".into(),
            "--pipe".into(),
            "--collect".into(),
            format!("--unit={}", self.unit).into(),
            format!("--slice={SLICE}").into(),
            format!("--description={}", self.description).into(),
        ];
        for (key, value) in &self.properties {
            args.push("-p".into());
            args.push(format!("{key}={value}").into());
        }
        args.extend(self.command.iter().cloned());
        args
    }

    /// The `systemd-run` arguments of an interactive run: `--pty` (the command gets this
    /// process's terminal, and its output goes to it, not to the journal) instead of
    /// `--pipe`.
    pub fn interactive_args(&self) -> Vec<OsString> {
        self.systemd_run_args()
            .into_iter()
            .map(|arg| if arg == "--pipe" { "--pty".into() } else { arg })
            .collect()
    }

    /// The same unit as a unit file, for `systemd-analyze security` (the command is shown with
    /// the script replaced by a placeholder: unit-file quoting is not the point here).
    pub fn unit_file(&self) -> String {
        let mut text = format!(
            "# {} (generated by left4mectl overlay build --dry-run)\n[Unit]\nDescription={}\n\n\
             [Service]\nSlice={SLICE}\n",
            self.unit, self.description
        );
        for (key, value) in &self.properties {
            let _ = writeln!(text, "{key}={value}");
        }
        let shown: Vec<String> = self
            .command
            .iter()
            .take(self.command.len() - 1)
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        let _ = writeln!(text, "ExecStart={} SCRIPT", shown.join(" "));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(network: NetworkPolicy) -> Job {
        Job {
            kind: crate::JobKind::OverlayBuild,
            name: "maps".into(),
            command: ["/bin/bash", "-c", "echo ${OVERLAY} $HOME $$"]
                .map(OsString::from)
                .to_vec(),
            profile: left4me_contract::Profile::Script,
            network,
            limits: crate::Limits {
                memory_max: "4G".into(),
                tasks_max: 512,
                timeout: "1h".into(),
            },
            output: crate::OverlayDirs::new(Path::new("/var/lib/left4me"), "maps"),
            game_user: "left4me".into(),
            sandbox_user: "l4d2-sandbox".into(),
        }
    }

    fn unit(network: NetworkPolicy, resolver: Option<&Resolver>) -> TransientUnit {
        let job = job(network);
        TransientUnit::new(&job, "1a2b3c4d", &job.output.build("1a2b3c4d"), resolver)
    }

    #[test]
    fn unit_with_network() {
        let resolver = Resolver {
            path: "/run/left4me/builds/maps-1a2b3c4d.resolv.conf".into(),
            plan: crate::resolver::plan("nameserver 10.255.255.53\n", None),
        };
        let unit = unit(
            NetworkPolicy::Public {
                ports: vec![80, 443],
            },
            Some(&resolver),
        );
        assert_eq!(unit.unit, "left4me-build-maps-1a2b3c4d.service");
        let args: Vec<String> = unit
            .systemd_run_args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            &args[..6],
            [
                "--wait",
                "--pipe",
                "--collect",
                "--unit=left4me-build-maps-1a2b3c4d.service",
                "--slice=l4d2-build.slice",
                "--description=left4me build of overlay maps"
            ]
        );
        let has = |p: &str| args.iter().any(|a| a == p);
        assert!(has("MemoryMax=4G"));
        assert!(has("TasksMax=512"));
        assert!(has("RuntimeMaxSec=1h"));
        assert!(has("User=left4me"));
        assert!(has("IPAddressDeny=any"));
        assert!(has(
            "ReadWritePaths=/var/lib/left4me/overlays/.maps.build-1a2b3c4d"
        ));
        assert!(has(
            "BindReadOnlyPaths=/run/left4me/builds/maps-1a2b3c4d.resolv.conf:/etc/resolv.conf"
        ));
        let allow = args
            .iter()
            .find_map(|a| a.strip_prefix("IPAddressAllow="))
            .unwrap();
        assert!(allow.starts_with("1.0.0.0/8 2.0.0.0/7 "), "{allow}");
        assert!(allow.ends_with(" 10.255.255.53/32"), "{allow}");
        let tail: Vec<&str> = args[args.len() - 17..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                RUNNER,
                "--output",
                "/var/lib/left4me/overlays/.maps.build-1a2b3c4d",
                "--user",
                "l4d2-sandbox",
                "--owner",
                "left4me",
                "--profile",
                "script",
                "--allow-port",
                "80",
                "--allow-port",
                "443",
                "--",
                "/bin/bash",
                "-c",
                "echo $${OVERLAY} $$HOME $$$$",
            ]
        );
    }

    #[test]
    fn unit_without_network() {
        let unit = unit(NetworkPolicy::Off, None);
        let args = unit.systemd_run_args();
        let has = |p: &str| args.iter().any(|a| a == p);
        assert!(has("PrivateNetwork=yes"));
        assert!(has("RestrictAddressFamilies=AF_UNIX"));
        assert!(has("--no-network"));
        assert!(
            !args
                .iter()
                .any(|a| a.to_string_lossy().starts_with("IPAddressAllow="))
        );
        let file = unit.unit_file();
        assert!(file.contains("\n[Service]\nSlice=l4d2-build.slice\nUser=left4me\n"));
        assert!(file.contains("\nExecStart=/usr/lib/left4me/left4me-sandbox --output "));
        assert!(
            file.ends_with(" --no-network -- /bin/bash -c SCRIPT\n"),
            "{file}"
        );
    }
}
