//! The seccomp filter of a profile: its allow-list ([`allowlist`], data with a reason per call),
//! the system call ABIs it admits (the host's own, and for some profiles [`i386`]), compiled by
//! [`bpf`] into one classic BPF program. A call through an ABI the profile does not admit (the
//! i386 `int 0x80` gate under `script`, x32 always) kills the process; a call not on the list
//! fails with `EPERM`.

pub mod allowlist;
pub mod bpf;
pub mod i386;

use seccompiler::BpfProgram;

pub use allowlist::{Allowed, ENOSYS, EOPNOTSUPP};
use bpf::{Action, Table};

use crate::policy::Policy;
use crate::profile;

/// Errors compiling or installing the filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// This architecture is not one seccompiler knows, or cannot run the ABI asked for.
    #[error("seccomp: unsupported architecture {0}")]
    Arch(&'static str),
    /// A rule could not be compiled.
    #[error("seccomp: compiling the filter for {name}")]
    Compile {
        /// The system call whose rule failed.
        name: &'static str,
        /// Why.
        #[source]
        source: seccompiler::BackendError,
    },
    /// The program does not fit the kernel's limit (4096 instructions).
    #[error("seccomp: the filter has {0} instructions, more than the kernel's 4096")]
    TooLong(usize),
    /// The kernel refused the filter.
    #[error("seccomp: installing the filter")]
    Install(#[source] seccompiler::Error),
}

/// A system call ABI a profile admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Abi {
    /// The host's own (x86_64, aarch64, riscv64): the allow-list's numbers as they are.
    Native,
    /// i386 on an x86_64 host: the allow-list by its i386 numbers ([`i386::CALLS`]).
    I386,
}

impl Abi {
    /// Its `AUDIT_ARCH_*` value (the `arch` field of `seccomp_data`).
    pub fn audit_arch(self) -> Result<u32, SeccompError> {
        match (self, std::env::consts::ARCH) {
            (Abi::Native, "x86_64") => Ok(0xc000_003e),
            (Abi::Native, "aarch64") => Ok(0xc000_00b7),
            (Abi::Native, "riscv64") => Ok(0xc000_00f3),
            (Abi::I386, "x86_64") => Ok(i386::AUDIT_ARCH_I386),
            (Abi::Native, other) => Err(SeccompError::Arch(other)),
            (Abi::I386, _) => Err(SeccompError::Arch("i386 on a host that is not x86_64")),
        }
    }

    /// Its name in the log line.
    pub fn name(self) -> &'static str {
        match self {
            Abi::Native => std::env::consts::ARCH,
            Abi::I386 => "i386",
        }
    }
}

/// The calls of an allow-list, by name, with what the filter does with each.
fn actions(allowed: Vec<Allowed>) -> (Vec<(&'static str, i64)>, Vec<Action>) {
    let mut names = Vec::new();
    let mut actions = Vec::new();
    for &(name, nr, _) in ENOSYS {
        names.push((name, nr));
        actions.push(Action::Errno(libc::ENOSYS));
    }
    for &(name, nr, _) in EOPNOTSUPP {
        names.push((name, nr));
        actions.push(Action::Errno(libc::EOPNOTSUPP));
    }
    for allowed in allowed {
        names.push((allowed.name, allowed.nr));
        actions.push(if allowed.rules.is_empty() {
            Action::Allow
        } else {
            Action::Rules(allowed.rules)
        });
    }
    (names, actions)
}

/// `abi`'s numbers for the calls `names`.
fn table(abi: Abi, names: &[(&'static str, i64)]) -> Result<Table, SeccompError> {
    let calls = match abi {
        Abi::Native => names
            .iter()
            .enumerate()
            .filter(|&(_, &(_, nr))| nr >= 0)
            .map(|(index, &(_, nr))| (nr as u32, index))
            .collect(),
        Abi::I386 => i386::CALLS
            .iter()
            .filter_map(|&(nr, _, stands_for)| {
                let index = names.iter().position(|&(name, _)| name == stands_for)?;
                Some((nr, index))
            })
            .collect(),
    };
    Ok(Table {
        arch: abi.audit_arch()?,
        calls,
    })
}

/// The filter for `policy`: its profile's allow-list through its profile's ABIs.
pub fn program(policy: &Policy) -> Result<BpfProgram, SeccompError> {
    build(policy).map(|(program, _)| program)
}

/// The program and the number of allowed system calls.
fn build(policy: &Policy) -> Result<(BpfProgram, usize), SeccompError> {
    let def = profile::definition(policy.profile);
    let mut allowed = (def.system_calls)(&policy.network)?;
    if def.abis.iter().any(|&(abi, _)| abi == Abi::I386) {
        allowed.extend(allowlist::socketcall(&allowed)?);
    }
    let count = allowed.len();
    let (names, actions) = actions(allowed);
    let tables = def
        .abis
        .iter()
        .map(|&(abi, _)| table(abi, &names))
        .collect::<Result<Vec<_>, _>>()?;
    let program = bpf::assemble(&actions, &tables);
    if program.len() > bpf::MAX_INSTRUCTIONS {
        return Err(SeccompError::TooLong(program.len()));
    }
    Ok((program, count))
}

/// What [`install`] put in place, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// How many system calls the allow-list allows.
    pub allowed: usize,
    /// The ABIs admitted.
    pub abis: Vec<&'static str>,
}

impl std::fmt::Display for Installed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} system calls allowed ({})",
            self.allowed,
            self.abis.join(", ")
        )
    }
}

/// Installs the filter on the calling thread (`seccompiler` sets `no_new_privs` first).
pub fn install(policy: &Policy) -> Result<Installed, SeccompError> {
    let (program, allowed) = build(policy)?;
    seccompiler::apply_filter(&program).map_err(SeccompError::Install)?;
    let abis = profile::definition(policy.profile).abis;
    Ok(Installed {
        allowed,
        abis: abis.iter().map(|(abi, _)| abi.name()).collect(),
    })
}

#[cfg(test)]
mod tests;
