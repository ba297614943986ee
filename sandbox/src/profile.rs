//! The sandbox's named policies, one data definition per role (firecracker's "one seccomp policy
//! per process role"): which system directories a command may read and execute, which
//! configuration it may read, which devices it gets, which system calls it may make and through
//! which system call ABIs. Every rule carries its reason.
//!
//! The command line adds what varies per run (the output directory, the network ports, extra
//! executable directories); everything else comes from here. Adding a profile is adding a
//! [`Definition`] below and its variant to [`left4me_contract::sandbox::Profile`].

use left4me_contract::sandbox::{Network, Profile};

use crate::seccomp::{Abi, Allowed, SeccompError, allowlist};

/// A path rule and why a command needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathRule {
    /// An absolute path; a trailing `*` matches every entry of the directory whose name starts
    /// with what precedes it. Entries that do not exist on the host are left out.
    pub path: &'static str,
    /// Why.
    pub reason: &'static str,
}

/// A device file the sandbox gets, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    /// Its path, the same inside and outside.
    pub path: &'static str,
    /// Whether it may be opened for writing (`/dev/null`), not only read (`/dev/urandom`).
    pub writable: bool,
    /// Why.
    pub reason: &'static str,
}

/// Whether a profile's programs may have memory that is writable and executable, or make
/// memory executable that was not (`PR_SET_MDWE`, Linux 6.3+; systemd's
/// `MemoryDenyWriteExecute=`), and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteExecute {
    /// Refused: `mmap(PROT_WRITE|PROT_EXEC)` and `mprotect` adding `PROT_EXEC` fail with
    /// `EACCES`. Set before the filter, inherited by every child, never undone.
    Refused(&'static str),
    /// Allowed (a program that generates code).
    Allowed(&'static str),
}

/// One named policy.
#[derive(Debug, Clone, Copy)]
pub struct Definition {
    /// Its name on the command line.
    pub profile: Profile,
    /// Directories whose files may be read and executed (mounted read-only, recursively).
    pub read_exec: &'static [PathRule],
    /// Files and directories that may be read, not executed. Symlinks are followed: the rule
    /// lands on what the link points to.
    pub read_only: &'static [PathRule],
    /// Device files present in the sandbox's `/dev`.
    pub devices: &'static [DeviceRule],
    /// The seccomp allow-list, given the run's network setting.
    pub system_calls: fn(&Network) -> Result<Vec<Allowed>, SeccompError>,
    /// The system call ABIs the filter admits, each with why; a call through any other kills
    /// the process.
    pub abis: &'static [(Abi, &'static str)],
    /// Whether memory may be writable and executable.
    pub write_execute: WriteExecute,
}

/// The system's programs and libraries.
const SYSTEM_EXEC: &[PathRule] = &[
    PathRule {
        path: "/usr",
        reason: "programs and libraries (merged /usr)",
    },
    PathRule {
        path: "/bin",
        reason: "programs, where /bin is not a link into /usr",
    },
    PathRule {
        path: "/sbin",
        reason: "programs, where /sbin is not a link into /usr",
    },
    PathRule {
        path: "/lib",
        reason: "libraries and the dynamic linker",
    },
    PathRule {
        path: "/lib32",
        reason: "32-bit libraries (multilib hosts)",
    },
    PathRule {
        path: "/lib64",
        reason: "the x86_64 dynamic linker's path",
    },
    PathRule {
        path: "/libx32",
        reason: "x32 libraries (multilib hosts)",
    },
];

/// Configuration the tools read.
const SYSTEM_READ: &[PathRule] = &[
    PathRule {
        path: "/etc/ld.so.cache",
        reason: "the dynamic linker's cache",
    },
    PathRule {
        path: "/etc/ld.so.conf",
        reason: "the dynamic linker's configuration",
    },
    PathRule {
        path: "/etc/ld.so.conf.d",
        reason: "the dynamic linker's configuration",
    },
    PathRule {
        path: "/etc/alternatives",
        reason: "Debian's alternatives (/usr/bin/awk -> /etc/alternatives/awk -> mawk)",
    },
    PathRule {
        path: "/etc/nsswitch.conf",
        reason: "users and groups for id, ls -l, tar's owner names (files only, no NSS daemons)",
    },
    PathRule {
        path: "/etc/passwd",
        reason: "user names (id, ls -l, tar)",
    },
    PathRule {
        path: "/etc/group",
        reason: "group names (id, ls -l, tar)",
    },
    PathRule {
        path: "/etc/hosts",
        reason: "name resolution (curl, wget, python)",
    },
    PathRule {
        path: "/etc/host.conf",
        reason: "name resolution",
    },
    PathRule {
        path: "/etc/resolv.conf",
        reason: "name resolution: the DNS servers",
    },
    PathRule {
        path: "/etc/gai.conf",
        reason: "name resolution: address ordering",
    },
    PathRule {
        path: "/etc/services",
        reason: "service names (getaddrinfo with a service)",
    },
    PathRule {
        path: "/etc/protocols",
        reason: "protocol names",
    },
    PathRule {
        path: "/etc/ssl",
        reason: "TLS trust store (Debian layout)",
    },
    PathRule {
        path: "/etc/ca-certificates",
        reason: "TLS trust store configuration",
    },
    PathRule {
        path: "/etc/pki",
        reason: "TLS trust store (Fedora layout)",
    },
    PathRule {
        path: "/etc/crypto-policies",
        reason: "TLS library configuration (Fedora)",
    },
    PathRule {
        path: "/etc/gnutls",
        reason: "TLS library configuration (GnuTLS)",
    },
    PathRule {
        path: "/etc/localtime",
        reason: "time zone",
    },
    PathRule {
        path: "/etc/timezone",
        reason: "time zone name",
    },
    PathRule {
        path: "/etc/mime.types",
        reason: "MIME database (python mimetypes)",
    },
    PathRule {
        path: "/etc/magic",
        reason: "magic database (file)",
    },
    PathRule {
        path: "/etc/wgetrc",
        reason: "wget's system configuration",
    },
    PathRule {
        path: "/etc/python3*",
        reason: "python's system configuration",
    },
];

/// The devices every program expects.
const DEVICES: &[DeviceRule] = &[
    DeviceRule {
        path: "/dev/null",
        writable: true,
        reason: "discard output (2>/dev/null)",
    },
    DeviceRule {
        path: "/dev/zero",
        writable: true,
        reason: "zero bytes (dd, head -c)",
    },
    DeviceRule {
        path: "/dev/full",
        writable: true,
        reason: "a full device, for tools that probe write errors",
    },
    DeviceRule {
        path: "/dev/random",
        writable: false,
        reason: "randomness (read only: writing would feed the host's pool)",
    },
    DeviceRule {
        path: "/dev/urandom",
        writable: false,
        reason: "randomness (read only: writing would feed the host's pool)",
    },
];

/// Overlay build scripts: bash and the usual download-and-unpack tools, 64-bit only.
pub const SCRIPT: Definition = Definition {
    profile: Profile::Script,
    read_exec: SYSTEM_EXEC,
    read_only: SYSTEM_READ,
    devices: DEVICES,
    system_calls: allowlist::build_tools,
    abis: &[(
        Abi::Native,
        "the host's own programs; a 32-bit gate (int 0x80, x32) is an escape attempt",
    )],
    write_execute: WriteExecute::Refused(
        "bash, curl, wget, tar, unzip, 7z and python3 generate no code; a W+X page is an exploit's",
    ),
};

/// SteamCMD: the script policy, plus the i386 system call ABI (SteamCMD is a 32-bit program),
/// with the same allow-list by its i386 numbers and `socketcall` by sub-call (i386 glibc's
/// socket functions use it; [`crate::seccomp::allowlist::socketcall`]). The runner allows
/// `--lower`, `--home` and `--owner root` only with this profile.
pub const STEAMCMD: Definition = Definition {
    profile: Profile::Steamcmd,
    abis: &[
        (Abi::Native, "the 64-bit tools around SteamCMD (bash, tar)"),
        (Abi::I386, "SteamCMD and its libraries are i386 programs"),
    ],
    write_execute: WriteExecute::Allowed(
        "SteamCMD is a closed i386 program (Steam's client runtime) that may generate code; \
         not verified here, so not refused until it runs under this profile",
    ),
    ..SCRIPT
};

/// Every profile, in the order of [`Profile`]'s variants.
pub const ALL: [&Definition; 2] = [&SCRIPT, &STEAMCMD];

/// The definition of `profile`.
pub fn definition(profile: Profile) -> &'static Definition {
    match profile {
        Profile::Script => &SCRIPT,
        Profile::Steamcmd => &STEAMCMD,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum as _;

    #[test]
    fn every_profile_has_one_definition() {
        let names: Vec<Profile> = ALL.iter().map(|d| d.profile).collect();
        assert_eq!(names, Profile::value_variants());
        for profile in Profile::value_variants() {
            assert_eq!(definition(*profile).profile, *profile);
        }
    }

    #[test]
    fn every_rule_has_a_reason() {
        for def in ALL {
            let paths = def.read_exec.iter().chain(def.read_only);
            for rule in paths {
                assert!(rule.path.starts_with('/'), "{}", rule.path);
                assert!(!rule.reason.is_empty(), "{} has no reason", rule.path);
            }
            for device in def.devices {
                assert!(!device.reason.is_empty(), "{} has no reason", device.path);
            }
            assert!(!def.abis.is_empty(), "{} admits no ABI", def.profile);
            for (abi, reason) in def.abis {
                assert!(!reason.is_empty(), "{abi:?} has no reason");
            }
            assert_eq!(def.abis[0].0, Abi::Native, "{}", def.profile);
            let (WriteExecute::Refused(reason) | WriteExecute::Allowed(reason)) = def.write_execute;
            assert!(!reason.is_empty(), "{}: W^X has no reason", def.profile);
        }
    }

    #[test]
    fn steamcmd_differs_from_script_only_in_the_i386_abi_and_w_x() {
        assert_eq!(STEAMCMD.read_exec, SCRIPT.read_exec);
        assert_eq!(STEAMCMD.read_only, SCRIPT.read_only);
        assert_eq!(STEAMCMD.devices, SCRIPT.devices);
        assert!(std::ptr::fn_addr_eq(
            STEAMCMD.system_calls,
            SCRIPT.system_calls
        ));
        let abis = |d: &Definition| d.abis.iter().map(|(a, _)| *a).collect::<Vec<_>>();
        assert_eq!(abis(&SCRIPT), [Abi::Native]);
        assert_eq!(abis(&STEAMCMD), [Abi::Native, Abi::I386]);
        assert!(matches!(SCRIPT.write_execute, WriteExecute::Refused(_)));
        assert!(matches!(STEAMCMD.write_execute, WriteExecute::Allowed(_)));
    }
}
