//! What a build script may touch, as data.
//!
//! One [`Policy`] says which paths are readable, executable and writable, which devices exist and
//! which TCP ports may be connected to. It is compiled in exactly three places, all fed from the
//! same value: the sandbox's mount tree ([`crate::mounts::RootPlan`]), the Landlock ruleset
//! ([`crate::landlock`]) and the seccomp filter ([`crate::seccomp`]). Nothing else decides
//! access.

use std::io;
use std::path::{Path, PathBuf};

/// Where the output directory appears inside the sandbox (the script's working directory and
/// `$OVERLAY`).
pub const OVERLAY_DIR: &str = "/overlay";

/// The sandbox's private scratch directory (a fresh tmpfs per run).
pub const TMP_DIR: &str = "/tmp";

/// The TCP ports a build may connect to when the overlay definition names none (HTTP, HTTPS).
pub const DEFAULT_PORTS: [u16; 2] = [80, 443];

/// Directories whose files may be read and executed: the system's programs and libraries.
/// Entries that do not exist on the host are left out.
const SYSTEM_EXEC: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// Configuration the tools read (name service, TLS trust, locale, interpreters). A trailing `*`
/// matches every entry of the directory whose name starts with what precedes it. Symlinks are
/// followed: the rule lands on what the link points to.
const SYSTEM_READ: &[&str] = &[
    // the dynamic linker's cache and configuration
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    // Debian's alternatives (e.g. /usr/bin/awk -> /etc/alternatives/awk -> /usr/bin/mawk)
    "/etc/alternatives",
    // users and groups for `id`, `ls -l`, tar's owner names (files only, no NSS daemons)
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    // name resolution for curl, wget and python
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    // TLS trust stores and library configuration (Debian, Fedora, Arch layouts)
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/crypto-policies",
    "/etc/gnutls",
    // time zone, MIME and magic databases
    "/etc/localtime",
    "/etc/timezone",
    "/etc/mime.types",
    "/etc/magic",
    // per-tool system configuration
    "/etc/wgetrc",
    "/etc/python3*",
];

/// Device files present in the sandbox's `/dev`.
const DEVICES: &[(&str, bool)] = &[
    ("/dev/null", true),
    ("/dev/zero", true),
    ("/dev/full", true),
    ("/dev/random", false),
    ("/dev/urandom", false),
];

/// A device file the sandbox gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Its path, the same inside and outside.
    pub path: PathBuf,
    /// Whether it may be opened for writing (`/dev/null`), not only read (`/dev/urandom`).
    pub writable: bool,
}

/// Network access of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// No IP sockets at all (seccomp refuses `socket(AF_INET/AF_INET6)`).
    Off,
    /// TCP and UDP sockets; TCP `connect` only to these ports (Landlock), TCP `bind` never.
    /// UDP is not restricted by port (DNS needs it); the unit's `IPAddressDeny=` is what keeps
    /// it off private ranges.
    Tcp {
        /// Remote TCP ports `connect` may reach.
        connect_ports: Vec<u16>,
    },
}

/// Everything a sandboxed build may access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Directories whose files may be read and executed (mounted read-only, recursively).
    pub read_exec: Vec<PathBuf>,
    /// Further directories whose files may be read and executed, e.g. a tool kit in `/opt`
    /// (`--allow-exec`). Mounted read-only at the same path, exactly this directory.
    pub extra_exec: Vec<PathBuf>,
    /// Files and directories that may be read, not executed. Entries may end in `*` (see
    /// [`Policy::concrete`]).
    pub read_only: Vec<PathBuf>,
    /// Directories beneath which files may be read, written, created, renamed and removed, but
    /// never executed: [`OVERLAY_DIR`] and [`TMP_DIR`].
    pub read_write: Vec<PathBuf>,
    /// The sandbox's device files.
    pub devices: Vec<Device>,
    /// IP networking.
    pub network: Network,
}

impl Default for Policy {
    /// The build policy: system programs, the configuration they read, `/overlay` and `/tmp`
    /// writable, TCP to ports 80 and 443.
    fn default() -> Self {
        Self {
            read_exec: SYSTEM_EXEC.iter().map(PathBuf::from).collect(),
            extra_exec: Vec::new(),
            read_only: SYSTEM_READ.iter().map(PathBuf::from).collect(),
            read_write: vec![PathBuf::from(OVERLAY_DIR), PathBuf::from(TMP_DIR)],
            devices: DEVICES
                .iter()
                .map(|&(path, writable)| Device {
                    path: PathBuf::from(path),
                    writable,
                })
                .collect(),
            network: Network::Tcp {
                connect_ports: DEFAULT_PORTS.to_vec(),
            },
        }
    }
}

impl Policy {
    /// The build policy with the given network access.
    pub fn with_network(network: Network) -> Self {
        Self {
            network,
            ..Self::default()
        }
    }

    /// Whether IP sockets may be created at all.
    pub fn network_enabled(&self) -> bool {
        matches!(self.network, Network::Tcp { .. })
    }

    /// The TCP ports `connect` may reach (empty when the network is off).
    pub fn connect_ports(&self) -> &[u16] {
        match &self.network {
            Network::Off => &[],
            Network::Tcp { connect_ports } => connect_ports,
        }
    }

    /// This policy with its system paths checked against the host tree at `root` (`/` in
    /// production, a fixture in tests): `*` patterns expanded, entries that do not exist left
    /// out, everything sorted. `extra_exec` and `read_write` are kept as given (they are the
    /// caller's own and must exist).
    pub fn concrete(&self, root: &Path) -> io::Result<Self> {
        let existing = |paths: &[PathBuf]| -> io::Result<Vec<PathBuf>> {
            let mut out = Vec::new();
            for path in paths {
                out.extend(expand(root, path)?);
            }
            out.sort();
            out.dedup();
            Ok(out)
        };
        Ok(Self {
            read_exec: existing(&self.read_exec)?,
            extra_exec: self.extra_exec.clone(),
            read_only: existing(&self.read_only)?,
            read_write: self.read_write.clone(),
            devices: self
                .devices
                .iter()
                .filter(|d| exists(root, &d.path))
                .cloned()
                .collect(),
            network: self.network.clone(),
        })
    }
}

/// `root` joined with the absolute `path`.
pub fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Whether `path` exists below `root`, following symlinks (a dangling link does not count:
/// there would be nothing to grant access to).
fn exists(root: &Path, path: &Path) -> bool {
    under(root, path).exists()
}

/// The existing paths `pattern` names below `root`: itself, or with a trailing `*`, every entry
/// of its directory that starts with the rest of the last component.
fn expand(root: &Path, pattern: &Path) -> io::Result<Vec<PathBuf>> {
    let text = pattern.to_string_lossy();
    let Some(prefix) = text.strip_suffix('*') else {
        return Ok(if exists(root, pattern) {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        });
    };
    let (dir, start) = match prefix.rsplit_once('/') {
        Some((dir, start)) => (if dir.is_empty() { "/" } else { dir }, start),
        None => return Ok(Vec::new()),
    };
    let entries = match std::fs::read_dir(under(root, Path::new(dir))) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        if name.to_string_lossy().starts_with(start) {
            out.push(Path::new(dir).join(name));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn fixture() -> TempDir {
        let dir = TempDir::new();
        for d in ["usr/bin", "etc/python3", "etc/python3.11", "etc/ssl/certs"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("etc/passwd"), "").unwrap();
        std::os::unix::fs::symlink("usr/bin", dir.path().join("bin")).unwrap();
        dir
    }

    #[test]
    fn concrete_keeps_what_exists_and_expands_patterns() {
        let root = fixture();
        let policy = Policy::default().concrete(root.path()).unwrap();
        let paths = |v: &[PathBuf]| {
            v.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(paths(&policy.read_exec), ["/bin", "/usr"]);
        assert_eq!(
            paths(&policy.read_only),
            ["/etc/passwd", "/etc/python3", "/etc/python3.11", "/etc/ssl"]
        );
        assert_eq!(paths(&policy.read_write), ["/overlay", "/tmp"]);
        assert!(policy.devices.is_empty());
    }

    #[test]
    fn network_defaults_and_off() {
        assert_eq!(Policy::default().connect_ports(), &[80, 443]);
        let off = Policy::with_network(Network::Off);
        assert!(!off.network_enabled());
        assert!(off.connect_ports().is_empty());
    }
}
