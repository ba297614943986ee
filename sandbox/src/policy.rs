//! What a sandboxed command may touch, as data.
//!
//! One [`Policy`] says which paths are readable, executable and writable, which devices exist,
//! which TCP ports may be connected to and which profile's system calls are allowed. It is made
//! from a profile ([`crate::profile`]) and the run's own settings, and compiled in exactly three
//! places, all fed from the same value: the sandbox's mount tree ([`crate::mounts::RootPlan`]),
//! the Landlock ruleset ([`crate::landlock`]) and the seccomp filter ([`crate::seccomp`]).
//! Nothing else decides access.

use std::io;
use std::path::{Path, PathBuf};

pub use left4me_contract::sandbox::{DEFAULT_PORTS, HOME_DIR, Network, Profile};

use crate::profile;

/// Where the output directory appears inside the sandbox (the script's working directory and
/// `$OVERLAY`).
pub const OVERLAY_DIR: &str = "/overlay";

/// The sandbox's private scratch directory (a fresh tmpfs per run).
pub const TMP_DIR: &str = "/tmp";

/// A device file the sandbox gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Its path, the same inside and outside.
    pub path: PathBuf,
    /// Whether it may be opened for writing (`/dev/null`), not only read (`/dev/urandom`).
    pub writable: bool,
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
    /// A writable home directory inside the sandbox ([`HOME_DIR`], `--home`), where files
    /// may also be executed (SteamCMD updates itself there and runs from there); `None`
    /// without `--home`.
    pub home: Option<PathBuf>,
    /// The sandbox's device files.
    pub devices: Vec<Device>,
    /// IP networking: no IP sockets at all (seccomp refuses `socket(AF_INET/AF_INET6)`), or TCP
    /// and UDP sockets with TCP `connect` only to the given ports (Landlock) and TCP `bind`
    /// never. UDP is not restricted by port (DNS needs it); the unit's `IPAddressDeny=` is what
    /// keeps it off private ranges.
    pub network: Network,
    /// Whose system call allow-list and ABIs the seccomp filter has.
    pub profile: Profile,
}

impl Default for Policy {
    /// The `script` profile with TCP to ports 80 and 443.
    fn default() -> Self {
        Self::new(Profile::Script, Network::default())
    }
}

impl Policy {
    /// The policy of `profile` with the given network access: its system programs, the
    /// configuration they read and its devices; `/overlay` and `/tmp` writable.
    pub fn new(profile: Profile, network: Network) -> Self {
        let def = profile::definition(profile);
        let paths =
            |rules: &[profile::PathRule]| rules.iter().map(|r| PathBuf::from(r.path)).collect();
        Self {
            read_exec: paths(def.read_exec),
            extra_exec: Vec::new(),
            read_only: paths(def.read_only),
            read_write: vec![PathBuf::from(OVERLAY_DIR), PathBuf::from(TMP_DIR)],
            home: None,
            devices: def
                .devices
                .iter()
                .map(|d| Device {
                    path: PathBuf::from(d.path),
                    writable: d.writable,
                })
                .collect(),
            network,
            profile,
        }
    }

    /// The `script` profile with the given network access.
    pub fn with_network(network: Network) -> Self {
        Self::new(Profile::Script, network)
    }

    /// Whether IP sockets may be created at all.
    pub fn network_enabled(&self) -> bool {
        matches!(self.network, Network::Tcp { .. })
    }

    /// The TCP ports `connect` may reach (empty when the network is off).
    pub fn connect_ports(&self) -> &[u16] {
        match &self.network {
            Network::Off => &[],
            Network::Tcp { ports } => ports,
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
            home: self.home.clone(),
            devices: self
                .devices
                .iter()
                .filter(|d| exists(root, &d.path))
                .cloned()
                .collect(),
            network: self.network.clone(),
            profile: self.profile,
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
