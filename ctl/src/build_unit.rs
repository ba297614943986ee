//! The transient unit an overlay build runs in, as data: every property `systemd-run` gets, in
//! one place, so `overlay build`, `overlay build --dry-run` and the security-score test all see
//! the same list.
//!
//! The runner (`left4me-sandbox`) confines the script itself (its own root, idmapped `/overlay`,
//! no capabilities, Landlock, seccomp). The unit adds what only systemd can: cgroup limits, the
//! IP address filter, and a second, coarser sandbox around the runner. It runs the runner as
//! the game user with exactly the four capabilities it needs (mounts, the idmap user namespace,
//! the drop to the sandbox user) as ambient capabilities, not as root: the runner never holds
//! `CAP_DAC_*` and `systemd-analyze security` rates the unit 2.4 rather than 2.7. See
//! ctl/README.md ("Overlay builds") for the reasons behind each line.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use left4me_spec::ScriptLimits;

/// Where `make install` puts the runner.
pub const RUNNER: &str = "/usr/lib/left4me/left4me-sandbox";
/// The slice every build runs in (low CPU and IO weight, the system CPUs).
pub const SLICE: &str = "l4d2-build.slice";
/// The longest script `bash -c` can take: the kernel's limit for one argument.
pub const MAX_SCRIPT_BYTES: usize = 128 * 1024 - 1;

/// What the runner needs: `CAP_SYS_ADMIN` for its mount namespace, the idmapped `/overlay` and
/// `pivot_root`; `CAP_SETUID`/`CAP_SETGID` for the idmap user namespace's maps and the drop to
/// the sandbox user; `CAP_SETPCAP` to empty the bounding set before the script starts.
pub const RUNNER_CAPABILITIES: &str = "CAP_SYS_ADMIN CAP_SETUID CAP_SETGID CAP_SETPCAP";

/// The unit's system call allow-list: what `systemd` calls a service's normal set, plus the
/// mount API the runner uses and the Landlock and seccomp calls it makes last. The runner's own
/// seccomp filter for the script is far narrower; this one also holds for the runner.
pub const SYSCALL_FILTER: &str = "@system-service @mount landlock_create_ruleset \
    landlock_add_rule landlock_restrict_self seccomp";

/// IPv4 networks a build never reaches: (network, prefix length, what it is). The unit denies
/// everything and allows the complement of these ([`allowed_networks`]).
pub const DENIED_V4: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\""),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "RFC 1918 private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "CGNAT shared space"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        "link-local, cloud metadata",
    ),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "RFC 1918 private"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "RFC 1918 private"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved, broadcast"),
];

/// IPv6: only global unicast (2000::/3) is allowed at all, which leaves out loopback (::1),
/// link-local (fe80::/10), multicast (ff00::/8), unique local (fc00::/7) and IPv4-mapped
/// addresses (on an IPv6 socket those go out as IPv4 and meet the IPv4 rules). Inside it, these
/// tunnel prefixes embed IPv4 addresses and are denied too.
pub const IPV6_UNIVERSE: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);
pub const DENIED_V6: &[(Ipv6Addr, u8, &str)] = &[
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32, "Teredo"),
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16, "6to4"),
];

/// One network as `ADDRESS/PREFIX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub address: IpAddr,
    pub prefix: u8,
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl Network {
    /// Whether `address` lies in this network.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let (start, end) = range(u128::from(u32::from(net)), self.prefix, 32);
                (start..=end).contains(&u128::from(u32::from(a)))
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let (start, end) = range(u128::from(net), self.prefix, 128);
                (start..=end).contains(&u128::from(a))
            }
            _ => false,
        }
    }
}

/// First and last address of `start/prefix` in a `bits`-bit family.
fn range(start: u128, prefix: u8, bits: u8) -> (u128, u128) {
    let host_bits = u32::from(bits - prefix);
    let size_minus_one = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    (
        start & !size_minus_one,
        (start & !size_minus_one) | size_minus_one,
    )
}

/// The last address of the block of `2^host_bits` addresses starting at `start`.
fn block_last(start: u128, host_bits: u32) -> Option<u128> {
    let size_minus_one = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    start.checked_add(size_minus_one)
}

/// The fewest CIDR blocks covering `[start, end]` of a `bits`-bit family.
fn cidr_blocks(mut start: u128, end: u128, bits: u8) -> Vec<(u128, u8)> {
    let mut blocks = Vec::new();
    loop {
        // The largest block that starts at `start` (aligned) and does not pass `end`.
        let mut host_bits = start.trailing_zeros().min(u32::from(bits));
        while host_bits > 0 && block_last(start, host_bits).is_none_or(|last| last > end) {
            host_bits -= 1;
        }
        blocks.push((start, bits - host_bits as u8));
        let last = block_last(start, host_bits).expect("checked in the loop above");
        if last >= end {
            return blocks;
        }
        start = last + 1;
    }
}

/// `universe` minus every network of `denied`, as CIDR blocks, in address order.
fn complement(universe: (u128, u8), denied: &[(u128, u8)], bits: u8) -> Vec<(u128, u8)> {
    let (first, last) = range(universe.0, universe.1, bits);
    let mut holes: Vec<(u128, u128)> = denied
        .iter()
        .map(|&(net, prefix)| range(net, prefix, bits))
        .collect();
    holes.sort();
    let mut blocks = Vec::new();
    let mut next = Some(first);
    for (hole_start, hole_end) in holes {
        let Some(from) = next else { break };
        if hole_end < from || hole_start > last {
            continue;
        }
        if hole_start > from {
            blocks.extend(cidr_blocks(from, hole_start - 1, bits));
        }
        next = hole_end.checked_add(1).filter(|n| *n <= last);
    }
    if let Some(from) = next {
        blocks.extend(cidr_blocks(from, last, bits));
    }
    blocks
}

/// The networks a build may reach: every IPv4 address outside [`DENIED_V4`] and the IPv6
/// global unicast range outside [`DENIED_V6`]. About 80 blocks.
pub fn allowed_networks() -> Vec<Network> {
    let v4: Vec<(u128, u8)> = DENIED_V4
        .iter()
        .map(|(net, prefix, _)| (u128::from(u32::from(*net)), *prefix))
        .collect();
    let v6: Vec<(u128, u8)> = DENIED_V6
        .iter()
        .map(|(net, prefix, _)| (u128::from(*net), *prefix))
        .collect();
    let mut out: Vec<Network> = complement((0, 0), &v4, 32)
        .into_iter()
        .map(|(start, prefix)| Network {
            address: IpAddr::V4(Ipv4Addr::from(start as u32)),
            prefix,
        })
        .collect();
    out.extend(
        complement((u128::from(IPV6_UNIVERSE.0), IPV6_UNIVERSE.1), &v6, 128)
            .into_iter()
            .map(|(start, prefix)| Network {
                address: IpAddr::V6(Ipv6Addr::from(start)),
                prefix,
            }),
    );
    out
}

/// Whether a build may reach `address` without an exception (see [`allowed_networks`]).
pub fn is_allowed(address: IpAddr) -> bool {
    let address = match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    };
    allowed_networks().iter().any(|n| n.contains(address))
}

/// The build's network access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkAccess {
    /// No network namespace of the host, no IP sockets.
    Off,
    /// The public internet, TCP only to `ports`.
    On {
        ports: Vec<u16>,
        /// The resolv.conf the unit shows the build at /etc/resolv.conf.
        resolv_conf: Option<PathBuf>,
        /// Name servers inside the denied ranges, allowed exactly (see the resolver).
        exceptions: Vec<IpAddr>,
    },
}

/// Everything that varies between builds.
#[derive(Debug, Clone)]
pub struct BuildRequest<'a> {
    pub overlay: &'a str,
    /// The build's short id (unit name, build dir).
    pub id: &'a str,
    /// The fresh directory the script fills (`/overlay` inside).
    pub output: &'a Path,
    pub game_user: &'a str,
    pub sandbox_user: &'a str,
    pub network: NetworkAccess,
    pub limits: &'a ScriptLimits,
    pub script: &'a str,
}

/// The unit of one build: its name and every property, then the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildUnit {
    /// `left4me-build-NAME-ID.service`.
    pub unit: String,
    pub description: String,
    /// `(property, value)` in the order they are passed.
    pub properties: Vec<(&'static str, String)>,
    /// The runner's command line (the script is its last argument, `$` doubled for systemd).
    pub command: Vec<String>,
}

/// The name of build `id` of overlay `name`.
pub fn unit_name(name: &str, id: &str) -> String {
    format!("left4me-build-{name}-{id}.service")
}

/// systemd expands `$VAR`, `${VAR}` and `$$` in a transient unit's command line (systemd-run
/// 252 cannot turn that off): doubling every `$` gives the script back unchanged.
pub fn escape_for_exec(text: &str) -> String {
    text.replace('$', "$$")
}

impl BuildUnit {
    pub fn new(request: &BuildRequest<'_>) -> Self {
        let limits = request.limits;
        let output = request.output.display().to_string();
        let mut properties: Vec<(&'static str, String)> = vec![
            // Identity: the game user, so the runner can open its output dir (the state dir
            // is 0750 left4me) without CAP_DAC_*; the capabilities the runner needs, nothing
            // else, and no way to gain more.
            ("User", request.game_user.to_owned()),
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
            ("ReadWritePaths", output),
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
        let mut command = vec![
            RUNNER.to_owned(),
            "--output".to_owned(),
            request.output.display().to_string(),
            "--user".to_owned(),
            request.sandbox_user.to_owned(),
            "--owner".to_owned(),
            request.game_user.to_owned(),
        ];
        match &request.network {
            NetworkAccess::Off => {
                properties.push(("PrivateNetwork", "yes".into()));
                // The narrowest set systemd 252 takes for a transient unit (`none` is refused);
                // the runner's seccomp filter allows no sockets at all with --no-network.
                properties.push(("RestrictAddressFamilies", "AF_UNIX".into()));
                command.push("--no-network".into());
            }
            NetworkAccess::On {
                ports,
                resolv_conf,
                exceptions,
            } => {
                let mut allow: Vec<String> =
                    allowed_networks().iter().map(ToString::to_string).collect();
                allow.extend(exceptions.iter().map(|a| match a {
                    IpAddr::V4(_) => format!("{a}/32"),
                    IpAddr::V6(_) => format!("{a}/128"),
                }));
                properties.push(("IPAddressAllow", allow.join(" ")));
                properties.push(("RestrictAddressFamilies", "AF_INET AF_INET6".into()));
                if let Some(resolv) = resolv_conf {
                    properties.push((
                        "BindReadOnlyPaths",
                        format!("{}:/etc/resolv.conf", resolv.display()),
                    ));
                }
                for port in ports {
                    command.push("--allow-port".into());
                    command.push(port.to_string());
                }
            }
        }
        command.extend([
            "--".to_owned(),
            "/bin/bash".to_owned(),
            "-c".to_owned(),
            escape_for_exec(request.script),
        ]);
        BuildUnit {
            unit: unit_name(request.overlay, request.id),
            description: format!("left4me build of overlay {}", request.overlay),
            properties,
            command,
        }
    }

    /// The `systemd-run` arguments (without the program itself).
    pub fn systemd_run_args(&self) -> Vec<String> {
        let mut args = vec![
            "--wait".to_owned(),
            "--pipe".to_owned(),
            "--collect".to_owned(),
            format!("--unit={}", self.unit),
            format!("--slice={SLICE}"),
            format!("--description={}", self.description),
        ];
        for (key, value) in &self.properties {
            args.push("-p".to_owned());
            args.push(format!("{key}={value}"));
        }
        args.extend(self.command.iter().cloned());
        args
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
        let shown: Vec<&str> = self
            .command
            .iter()
            .take(self.command.len() - 1)
            .map(String::as_str)
            .collect();
        let _ = writeln!(text, "ExecStart={} SCRIPT", shown.join(" "));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> IpAddr {
        IpAddr::V4(text.parse().unwrap())
    }

    fn v6(text: &str) -> IpAddr {
        IpAddr::V6(text.parse().unwrap())
    }

    #[test]
    fn cidr_blocks_are_minimal() {
        assert_eq!(cidr_blocks(0, u128::from(u32::MAX), 32), [(0, 0)]);
        assert_eq!(cidr_blocks(1, 6, 32), [(1, 32), (2, 31), (4, 31), (6, 32)]);
        assert_eq!(cidr_blocks(0, u128::MAX, 128), [(0, 0)]);
    }

    #[test]
    fn denied_ranges_are_not_allowed() {
        let allowed = allowed_networks();
        for (net, prefix, what) in DENIED_V4 {
            let (first, last) = range(u128::from(u32::from(*net)), *prefix, 32);
            for address in [first, first + 1, (first + last) / 2, last] {
                let address = v4(&Ipv4Addr::from(address as u32).to_string());
                assert!(!is_allowed(address), "{address} ({what})");
            }
        }
        for address in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.251",
        ] {
            assert!(!is_allowed(v4(address)), "{address}");
        }
        for address in [
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2002:a00:1::1",
            "2001:0:a00:1::1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_allowed(v6(address)), "{address}");
        }
        // The list is the exact complement: no block touches a denied one.
        for block in &allowed {
            for (net, prefix, _) in DENIED_V4 {
                let denied = Network {
                    address: IpAddr::V4(*net),
                    prefix: *prefix,
                };
                assert!(!denied.contains(block.address), "{block}");
            }
        }
    }

    #[test]
    fn public_and_documentation_addresses_are_allowed() {
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.2.10",
            "192.167.255.255",
            "192.169.0.0",
            "223.255.255.255",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "169.255.0.0",
        ] {
            assert!(is_allowed(v4(address)), "{address}");
        }
        for address in ["2606:4700::1111", "2001:db8::1", "2a00::1", "3fff::1"] {
            assert!(is_allowed(v6(address)), "{address}");
        }
        assert!(allowed_networks().len() < 100);
    }

    fn request<'a>(network: NetworkAccess, limits: &'a ScriptLimits) -> BuildRequest<'a> {
        BuildRequest {
            overlay: "maps",
            id: "1a2b3c4d",
            output: Path::new("/var/lib/left4me/overlays/.maps.build-1a2b3c4d"),
            game_user: "left4me",
            sandbox_user: "l4d2-sandbox",
            network,
            limits,
            script: "echo ${OVERLAY} $HOME $$",
        }
    }

    #[test]
    fn unit_with_network() {
        let limits = ScriptLimits::default();
        let unit = BuildUnit::new(&request(
            NetworkAccess::On {
                ports: vec![80, 443],
                resolv_conf: Some(PathBuf::from(
                    "/run/left4me/builds/maps-1a2b3c4d.resolv.conf",
                )),
                exceptions: vec![v4("10.255.255.53")],
            },
            &limits,
        ));
        assert_eq!(unit.unit, "left4me-build-maps-1a2b3c4d.service");
        let args = unit.systemd_run_args();
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
        let tail: Vec<&str> = args[args.len() - 15..].iter().map(String::as_str).collect();
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
        let limits = ScriptLimits::default();
        let unit = BuildUnit::new(&request(NetworkAccess::Off, &limits));
        let args = unit.systemd_run_args();
        let has = |p: &str| args.iter().any(|a| a == p);
        assert!(has("PrivateNetwork=yes"));
        assert!(has("RestrictAddressFamilies=AF_UNIX"));
        assert!(has("--no-network"));
        assert!(!args.iter().any(|a| a.starts_with("IPAddressAllow=")));
        let file = unit.unit_file();
        assert!(file.contains("\n[Service]\nSlice=l4d2-build.slice\nUser=left4me\n"));
        assert!(file.contains("\nExecStart=/usr/lib/left4me/left4me-sandbox --output "));
        assert!(
            file.ends_with(" --no-network -- /bin/bash -c SCRIPT\n"),
            "{file}"
        );
    }
}
