//! The policy compiled into a Landlock ruleset and enforced on the calling thread (and so on the
//! command it executes and everything that starts).
//!
//! Compatibility is chosen on purpose: the file system rights of ABI 3 and the TCP rights of
//! ABI 4 (Linux 6.7) are a **hard requirement** (without them a build script could read the
//! host or connect anywhere, so the runner refuses to start); what came later (device ioctls,
//! ABI 5; signal and abstract-socket scoping, ABI 6) is **best effort** and shows up as
//! `partially enforced` in the log line. The ABI the rules were vetted against is
//! [`TARGET_ABI`]; on it the status is `fully enforced`, which the tests demand.

use std::fmt;
use std::path::{Path, PathBuf};

use ::landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus, NetPort,
    PathBeneath, PathFd, PathFdError, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError,
    RulesetStatus, Scope,
};

use crate::policy::Policy;

/// The newest Landlock ABI whose rights this ruleset asks for.
pub const TARGET_ABI: ABI = ABI::V7;

/// The oldest ABI the runner accepts: TCP connect/bind rules (4) and signal and
/// abstract-socket scoping (6).
pub const REQUIRED_ABI: ABI = ABI::V6;

/// Errors building or enforcing the ruleset.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// The kernel lacks what [`REQUIRED_ABI`] offers.
    #[error(
        "this kernel's Landlock cannot restrict files, TCP, signals and abstract sockets (needs ABI {REQUIRED_ABI}, Linux 6.12, with `landlock` in the lsm= list); refusing to run a build unconfined"
    )]
    TooOld(#[source] RulesetError),
    /// A policy path could not be opened for its rule.
    #[error("cannot open {path} for its Landlock rule")]
    Path {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: PathFdError,
    },
    /// Any other failure of the ruleset calls.
    #[error("Landlock: {0}")]
    Ruleset(#[from] RulesetError),
    /// `restrict_self` reported nothing enforced.
    #[error("Landlock is not enforced on this kernel")]
    NotEnforced,
}

/// What `restrict_self` reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforcement {
    /// `true` for `FullyEnforced`, `false` for `PartiallyEnforced`.
    pub full: bool,
    /// The ABI the kernel offers (as far as the landlock crate knows it).
    pub abi: String,
}

impl fmt::Display for Enforcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.full {
            "FullyEnforced"
        } else {
            "PartiallyEnforced"
        };
        write!(
            f,
            "{status} (kernel ABI {}, rules for ABI {TARGET_ABI})",
            self.abi
        )
    }
}

/// Rights beneath the read-write directories: everything but executing, device nodes and
/// socket files.
fn read_write_access() -> BitFlags<AccessFs> {
    AccessFs::from_all(TARGET_ABI)
        & !(AccessFs::Execute
            | AccessFs::MakeChar
            | AccessFs::MakeBlock
            | AccessFs::MakeSock
            | AccessFs::IoctlDev)
}

fn read_access() -> BitFlags<AccessFs> {
    AccessFs::ReadFile | AccessFs::ReadDir
}

fn exec_access() -> BitFlags<AccessFs> {
    AccessFs::from_read(TARGET_ABI)
}

/// One rule: `access` beneath `path`, narrowed to file rights when it is not a directory.
fn rule(path: &Path, access: BitFlags<AccessFs>) -> Result<PathBeneath<PathFd>, LandlockError> {
    let fd = PathFd::new(path).map_err(|source| LandlockError::Path {
        path: path.to_owned(),
        source,
    })?;
    let is_dir = rustix::fs::fstat(&fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
    });
    let access = if is_dir {
        access
    } else {
        access & AccessFs::from_file(TARGET_ABI)
    };
    Ok(PathBeneath::new(fd, access))
}

/// The rules of `policy`: path and access, in the order they are added (for the README and the
/// tests).
pub fn rules(policy: &Policy) -> Vec<(PathBuf, BitFlags<AccessFs>)> {
    let mut out = Vec::new();
    for path in policy.read_exec.iter().chain(&policy.extra_exec) {
        out.push((path.clone(), exec_access()));
    }
    for path in &policy.read_only {
        out.push((path.clone(), read_access()));
    }
    for path in &policy.read_write {
        out.push((path.clone(), read_write_access()));
    }
    if let Some(home) = &policy.home {
        out.push((home.clone(), read_write_access() | AccessFs::Execute));
    }
    for device in &policy.devices {
        let access = if device.writable {
            AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate
        } else {
            AccessFs::ReadFile.into()
        };
        out.push((device.path.clone(), access));
    }
    out
}

/// Builds the ruleset for `policy` (paths as seen from the calling process, i.e. inside the
/// sandbox's root) and restricts the calling thread with it.
pub fn enforce(policy: &Policy) -> Result<Enforcement, LandlockError> {
    let ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V3))
        .and_then(|r| r.handle_access(AccessNet::from_all(REQUIRED_ABI)))
        .map_err(LandlockError::TooOld)?
        // Signal and abstract-socket scoping (ABI 6, Linux 6.12) keep builds of the same
        // sandbox user from signalling each other and from reaching host daemons: required.
        .scope(Scope::from_all(REQUIRED_ABI))
        .map_err(LandlockError::TooOld)?
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(TARGET_ABI))?
        .scope(Scope::from_all(TARGET_ABI))?;
    let mut created = ruleset.create()?;
    for (path, access) in rules(policy) {
        created = created.add_rule(rule(&path, access)?)?;
    }
    for &port in policy.connect_ports() {
        created = created.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
    }
    let status = created.restrict_self()?;
    let abi = match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => kernel_abi.map_or_else(|| effective_abi.to_string(), |raw| raw.to_string()),
        LandlockStatus::NotEnabled => "none (not enabled)".into(),
        LandlockStatus::NotImplemented => "none (not built)".into(),
    };
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(Enforcement { full: true, abi }),
        RulesetStatus::PartiallyEnforced => Ok(Enforcement { full: false, abi }),
        RulesetStatus::NotEnforced => Err(LandlockError::NotEnforced),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_dirs_never_execute() {
        let access = read_write_access();
        assert!(!access.contains(AccessFs::Execute));
        assert!(!access.contains(AccessFs::MakeChar));
        assert!(access.contains(AccessFs::WriteFile | AccessFs::Refer | AccessFs::Truncate));
    }

    #[test]
    fn rules_follow_the_policy() {
        let rules = rules(&Policy::default());
        let find = |p: &str| {
            rules
                .iter()
                .find(|(path, _)| path == Path::new(p))
                .map(|(_, a)| *a)
                .unwrap()
        };
        assert!(find("/usr").contains(AccessFs::Execute));
        assert!(!find("/etc/passwd").contains(AccessFs::Execute));
        assert!(!find("/etc/passwd").contains(AccessFs::WriteFile));
        assert!(find("/overlay").contains(AccessFs::MakeReg));
        assert!(find("/dev/null").contains(AccessFs::WriteFile));
        assert!(!find("/dev/urandom").contains(AccessFs::WriteFile));
        assert!(!rules.iter().any(|(p, _)| p == Path::new("/etc/shadow")));
    }
}
