//! The filter run through a classic-BPF interpreter, per profile and ABI.

use seccompiler::sock_filter;

use super::bpf::errno;
use super::*;
use crate::policy::{Network, Profile};

#[test]
fn compiles_with_and_without_network() {
    let on = allowlist::build_tools(&Network::default()).unwrap();
    let off = allowlist::build_tools(&Network::Off).unwrap();
    assert!(on.iter().any(|a| a.name == "socket"));
    assert!(!off.iter().any(|a| a.name == "socket"));
    program(&Policy::default()).unwrap();
    program(&Policy::with_network(Network::Off)).unwrap();
}

/// A classic-BPF interpreter for the instructions the filter uses, run on a
/// `seccomp_data` of this architecture.
fn eval(program: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, arg) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_le_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    for _ in 0..program.len() + 1 {
        let i = &program[pc];
        pc += 1;
        match i.code {
            0x20 => {
                let k = i.k as usize;
                acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
            }
            0x54 => acc &= i.k,
            0x06 => return i.k,
            0x05 => pc += i.k as usize,
            0x15 => pc += usize::from(if acc == i.k { i.jt } else { i.jf }),
            0x35 => pc += usize::from(if acc >= i.k { i.jt } else { i.jf }),
            0x25 => pc += usize::from(if acc > i.k { i.jt } else { i.jf }),
            other => panic!("unexpected BPF opcode {other:#x}"),
        }
    }
    panic!("the program did not return")
}

/// The kernel's checks of a classic BPF program (`bpf_check_classic`): every jump, taken or
/// not, lands inside the program, and it ends with a return.
fn assert_valid(program: &[sock_filter]) {
    let n = program.len();
    assert!(n <= 4096);
    for (pc, i) in program.iter().enumerate() {
        match i.code {
            0x05 => assert!((i.k as usize) < n - pc - 1, "JA out of range at {pc}"),
            0x15 | 0x25 | 0x35 => assert!(
                pc + usize::from(i.jt) + 1 < n && pc + usize::from(i.jf) + 1 < n,
                "conditional jump out of range at {pc}"
            ),
            _ => {}
        }
    }
    assert_eq!(program[n - 1].code, 0x06, "must end with a return");
}

#[test]
fn filter_is_valid_bpf() {
    for profile in <Profile as clap::ValueEnum>::value_variants() {
        for network in [Network::default(), Network::Off] {
            assert_valid(&program(&Policy::new(*profile, network)).unwrap());
        }
    }
}

#[test]
fn filter_behaviour() {
    for profile in <Profile as clap::ValueEnum>::value_variants() {
        native_behaviour(*profile);
    }
}

/// The native ABI behaves the same under every profile.
fn native_behaviour(profile: Profile) {
    let program = program(&Policy::new(profile, Network::default())).unwrap();
    let arch = Abi::Native.audit_arch().unwrap();
    let run = |nr: i64, args: [u64; 6]| eval(&program, arch, nr as u32, args);
    let allow = libc::SECCOMP_RET_ALLOW;
    let eperm = errno(libc::EPERM);
    // Every unconditional entry is allowed, with any arguments.
    for a in allowlist::build_tools(&Network::default()).unwrap() {
        if a.condition.is_none() {
            assert_eq!(run(a.nr, [u64::MAX; 6]), allow, "{}", a.name);
        }
    }
    for nr in [
        libc::SYS_ptrace,
        libc::SYS_mount,
        libc::SYS_unshare,
        libc::SYS_io_uring_setup,
        libc::SYS_bpf,
        libc::SYS_listen,
        libc::SYS_memfd_create,
        libc::SYS_setuid,
    ] {
        assert_eq!(run(nr, [0; 6]), eperm, "{nr}");
    }
    assert_eq!(run(libc::SYS_clone3, [0; 6]), errno(libc::ENOSYS));
    assert_eq!(run(libc::SYS_openat2, [0; 6]), errno(libc::ENOSYS));
    assert_eq!(run(libc::SYS_setxattr, [0; 6]), errno(libc::EOPNOTSUPP));
    assert_eq!(run(libc::SYS_fremovexattr, [0; 6]), errno(libc::EOPNOTSUPP));
    // Numbers past every table entry, and the x32 bit.
    assert_eq!(run(1000, [0; 6]), eperm);
    assert_eq!(run(0x4000_0000, [0; 6]), eperm);
    assert_eq!(run(-1, [0; 6]), eperm);
    // An architecture no profile admits is killed whatever the call.
    assert_eq!(
        eval(&program, 0xc000_00b7, 172, [0; 6]),
        libc::SECCOMP_RET_KILL_PROCESS
    );

    let sigchld = libc::SIGCHLD as u64;
    assert_eq!(run(libc::SYS_clone, [sigchld, 0, 0, 0, 0, 0]), allow);
    let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
    assert_eq!(run(libc::SYS_clone, [thread, 0, 0, 0, 0, 0]), allow);
    let newuser = libc::CLONE_NEWUSER as u64 | sigchld;
    assert_eq!(run(libc::SYS_clone, [newuser, 0, 0, 0, 0, 0]), eperm);
    // The upper half of a 32-bit argument is ignored by the kernel and by the filter.
    assert_eq!(
        run(libc::SYS_clone, [newuser | 1 << 40, 0, 0, 0, 0, 0]),
        eperm
    );

    let (inet, inet6, unix) = (
        libc::AF_INET as u64,
        libc::AF_INET6 as u64,
        libc::AF_UNIX as u64,
    );
    let (stream, dgram, raw) = (
        libc::SOCK_STREAM as u64,
        libc::SOCK_DGRAM as u64,
        libc::SOCK_RAW as u64,
    );
    let flags = (libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) as u64;
    assert_eq!(
        run(libc::SYS_socket, [inet, stream | flags, 0, 0, 0, 0]),
        allow
    );
    assert_eq!(run(libc::SYS_socket, [inet6, stream, 6, 0, 0, 0]), allow);
    assert_eq!(
        run(libc::SYS_socket, [inet, dgram | flags, 17, 0, 0, 0]),
        allow
    );
    assert_eq!(
        run(libc::SYS_socket, [inet, stream, 262, 0, 0, 0]),
        eperm,
        "MPTCP"
    );
    assert_eq!(
        run(libc::SYS_socket, [inet, stream, 132, 0, 0, 0]),
        eperm,
        "SCTP"
    );
    assert_eq!(run(libc::SYS_socket, [inet, raw, 1, 0, 0, 0]), eperm, "raw");
    assert_eq!(
        run(libc::SYS_socket, [unix, stream, 0, 0, 0, 0]),
        eperm,
        "unix"
    );
    assert_eq!(
        run(libc::SYS_socket, [16, raw, 0, 0, 0, 0]),
        eperm,
        "netlink"
    );
    assert_eq!(
        run(libc::SYS_socket, [17, raw, 0, 0, 0, 0]),
        eperm,
        "packet"
    );
    assert_eq!(run(libc::SYS_socketpair, [unix, stream, 0, 0, 0, 0]), allow);
    assert_eq!(run(libc::SYS_socketpair, [inet, stream, 0, 0, 0, 0]), eperm);

    let creat = (libc::O_CREAT | libc::O_WRONLY) as u64;
    let at = libc::AT_FDCWD as u64;
    assert_eq!(run(libc::SYS_openat, [at, 0, creat, 0o644, 0, 0]), allow);
    assert_eq!(run(libc::SYS_openat, [at, 0, creat, 0o4755, 0, 0]), eperm);
    assert_eq!(run(libc::SYS_openat, [at, 0, creat, 0o2755, 0, 0]), eperm);
    // Without O_CREAT the mode is ignored, whatever garbage it holds.
    assert_eq!(
        run(
            libc::SYS_openat,
            [at, 0, libc::O_RDONLY as u64, 0o7777, 0, 0]
        ),
        allow
    );
    let tmpfile = (libc::O_TMPFILE | libc::O_WRONLY) as u64;
    assert_eq!(run(libc::SYS_openat, [at, 0, tmpfile, 0o4700, 0, 0]), eperm);
    assert_eq!(run(libc::SYS_fchmodat, [at, 0, 0o755, 0, 0, 0]), allow);
    assert_eq!(run(libc::SYS_fchmodat, [at, 0, 0o4755, 0, 0, 0]), eperm);
    assert_eq!(run(libc::SYS_fchmod, [3, 0o6755, 0, 0, 0, 0]), eperm);
    assert_eq!(run(libc::SYS_fchmodat2, [at, 0, 0o1777, 0, 0, 0]), allow);

    assert_eq!(run(libc::SYS_ioctl, [0, libc::TCGETS, 0, 0, 0, 0]), allow);
    assert_eq!(run(libc::SYS_ioctl, [0, libc::TIOCSTI, 0, 0, 0, 0]), eperm);
    assert_eq!(
        run(libc::SYS_ioctl, [0, libc::TIOCSTI | 1 << 32, 0, 0, 0, 0]),
        eperm
    );
    assert_eq!(
        run(libc::SYS_ioctl, [0, libc::TIOCLINUX, 0, 0, 0, 0]),
        eperm
    );

    let prctl = |option: i32| run(libc::SYS_prctl, [option as u64, 0, 0, 0, 0, 0]);
    assert_eq!(prctl(libc::PR_SET_NAME), allow);
    assert_eq!(prctl(libc::PR_SET_DUMPABLE), eperm);
    assert_eq!(prctl(libc::PR_SET_PTRACER), eperm);
    assert_eq!(prctl(libc::PR_SET_MM), eperm);
    assert_eq!(run(libc::SYS_prlimit64, [0, 7, 0, 0, 0, 0]), allow);
    assert_eq!(run(libc::SYS_prlimit64, [1, 7, 0, 0, 0, 0]), eperm);
}

#[test]
fn without_network_no_ip_sockets() {
    let program = program(&Policy::with_network(Network::Off)).unwrap();
    let arch = Abi::Native.audit_arch().unwrap();
    let socket = |domain: i32| {
        eval(
            &program,
            arch,
            libc::SYS_socket as u32,
            [domain as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0],
        )
    };
    assert_eq!(socket(libc::AF_INET), errno(libc::EPERM));
    assert_eq!(socket(libc::AF_INET6), errno(libc::EPERM));
}

#[test]
fn dangerous_calls_are_not_listed() {
    let names: Vec<&str> = allowlist::build_tools(&Network::default())
        .unwrap()
        .iter()
        .map(|a| a.name)
        .collect();
    for denied in [
        "ptrace",
        "mount",
        "umount2",
        "unshare",
        "setns",
        "io_uring_setup",
        "bpf",
        "perf_event_open",
        "keyctl",
        "add_key",
        "init_module",
        "finit_module",
        "kexec_load",
        "open_tree",
        "move_mount",
        "fsopen",
        "mount_setattr",
        "listen",
        "accept4",
        "memfd_create",
        "execveat",
        "setuid",
        "setresuid",
        "setgroups",
        "setxattr",
        "userfaultfd",
        "process_vm_readv",
        "chroot",
        "pivot_root",
        "personality",
        "modify_ldt",
        "shmget",
        "msgget",
        "semget",
        "pidfd_getfd",
    ] {
        assert!(!names.contains(&denied), "{denied} must not be allowed");
    }
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "a system call is listed twice");
}

#[test]
fn every_allowed_call_has_a_reason_and_is_in_the_readme() {
    let readme = include_str!("../../README.md");
    for (name, _, _) in ENOSYS.iter().chain(EOPNOTSUPP) {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md does not mention `{name}`"
        );
    }
    for a in allowlist::build_tools(&Network::default()).unwrap() {
        assert!(!a.reason.is_empty(), "{} has no reason", a.name);
        assert!(
            readme.contains(&format!("`{}`", a.name)),
            "README.md does not mention `{}`",
            a.name
        );
    }
}

/// The i386 numbers of the calls the tests below use (syscall_32.tbl).
const I386_GETPID: u32 = 20;
const I386_MOUNT: u32 = 21;
const I386_SOCKETCALL: u32 = 102;
const I386_CLONE: u32 = 120;
const I386_OPENAT: u32 = 295;
const I386_SOCKET: u32 = 359;
const I386_CLONE3: u32 = 435;

#[test]
fn script_kills_every_i386_call() {
    let program = program(&Policy::default()).unwrap();
    for nr in [I386_GETPID, I386_MOUNT, I386_SOCKET, 0, 1000] {
        assert_eq!(
            eval(&program, i386::AUDIT_ARCH_I386, nr, [0; 6]),
            libc::SECCOMP_RET_KILL_PROCESS,
            "{nr}"
        );
    }
}

#[test]
fn steamcmd_allows_the_same_calls_by_their_i386_numbers() {
    let program = program(&Policy::new(Profile::Steamcmd, Network::default())).unwrap();
    let run = |nr: u32, args: [u64; 6]| eval(&program, i386::AUDIT_ARCH_I386, nr, args);
    let (allow, eperm) = (libc::SECCOMP_RET_ALLOW, errno(libc::EPERM));
    assert_eq!(run(I386_GETPID, [0; 6]), allow);
    assert_eq!(run(I386_MOUNT, [0; 6]), eperm);
    // socketcall by its sub-call: socket, connect, sendto… yes; bind, listen, accept never.
    let socketcall = |sub: u64| run(I386_SOCKETCALL, [sub, 0, 0, 0, 0, 0]);
    for sub in [1, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20] {
        assert_eq!(socketcall(sub), allow, "socketcall {sub}");
    }
    for sub in [0, 2, 4, 5, 18, 21, 1 << 32 | 2] {
        assert_eq!(socketcall(sub), eperm, "socketcall {sub}");
    }
    assert_eq!(run(I386_CLONE3, [0; 6]), errno(libc::ENOSYS));
    assert_eq!(run(226, [0; 6]), errno(libc::EOPNOTSUPP), "setxattr");
    assert_eq!(run(1000, [0; 6]), eperm);
    // The argument rules apply as on x86_64.
    let sigchld = libc::SIGCHLD as u64;
    assert_eq!(run(I386_CLONE, [sigchld, 0, 0, 0, 0, 0]), allow);
    let newuser = libc::CLONE_NEWUSER as u64 | sigchld;
    assert_eq!(run(I386_CLONE, [newuser, 0, 0, 0, 0, 0]), eperm);
    let creat = (libc::O_CREAT | libc::O_WRONLY) as u64;
    assert_eq!(run(I386_OPENAT, [0, 0, creat, 0o644, 0, 0]), allow);
    assert_eq!(run(I386_OPENAT, [0, 0, creat, 0o4755, 0, 0]), eperm);
    let tcp = [libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0];
    assert_eq!(run(I386_SOCKET, tcp), allow);
    let netlink = [16, libc::SOCK_RAW as u64, 0, 0, 0, 0];
    assert_eq!(run(I386_SOCKET, netlink), eperm);
    // Every i386 call that stands for an unconditional entry is allowed with any arguments,
    // and one that stands for nothing on the list is refused.
    let allowed = allowlist::build_tools(&Network::default()).unwrap();
    for &(nr, name, stands_for) in i386::CALLS {
        let entry = allowed.iter().find(|a| a.name == stands_for);
        if entry.is_some_and(|e| e.condition.is_none()) {
            assert_eq!(run(nr, [u64::from(u32::MAX); 6]), allow, "{name}");
        }
    }
    let offline = super::program(&Policy::new(Profile::Steamcmd, Network::Off)).unwrap();
    assert_eq!(
        eval(&offline, i386::AUDIT_ARCH_I386, I386_SOCKET, tcp),
        eperm,
        "no IP sockets without network"
    );
    let offline_socketcall = |sub: u64| {
        eval(
            &offline,
            i386::AUDIT_ARCH_I386,
            I386_SOCKETCALL,
            [sub, 0, 0, 0, 0, 0],
        )
    };
    assert_eq!(offline_socketcall(1), eperm, "no socket() without network");
    assert_eq!(offline_socketcall(3), allow, "connect (on a socketpair)");
    // socketcall exists only for i386: the native table has no entry for it.
    let native = |nr: u32| eval(&program, 0xc000_003e, nr, [1, 0, 0, 0, 0, 0]);
    assert_eq!(native(u32::MAX), eperm);
}

#[test]
fn i386_table_names_entries_of_the_list() {
    let allowed = allowlist::build_tools(&Network::default()).unwrap();
    let known = |name: &str| {
        name == "socketcall"
            || allowed.iter().any(|a| a.name == name)
            || ENOSYS.iter().chain(EOPNOTSUPP).any(|&(n, _, _)| n == name)
    };
    let mut numbers: Vec<u32> = i386::CALLS.iter().map(|&(nr, _, _)| nr).collect();
    for &(_, name, stands_for) in i386::CALLS {
        assert!(
            known(stands_for),
            "{name} stands for {stands_for}, not on the list"
        );
    }
    assert!(numbers.is_sorted(), "the table is by number");
    numbers.dedup();
    assert_eq!(numbers.len(), i386::CALLS.len(), "a number is listed twice");
    // Every entry of the list has an i386 form.
    let missing: Vec<&str> = allowed
        .iter()
        .map(|a| a.name)
        .filter(|name| !i386::CALLS.iter().any(|&(_, _, s)| s == *name))
        .collect();
    assert!(missing.is_empty(), "no i386 form: {missing:?}");
}

/// The table against the host's kernel headers, where they are installed.
#[test]
fn i386_numbers_match_the_kernel_headers() {
    let header = "/usr/include/x86_64-linux-gnu/asm/unistd_32.h";
    let Ok(text) = std::fs::read_to_string(header)
        .or_else(|_| std::fs::read_to_string("/usr/include/asm/unistd_32.h"))
    else {
        println!("no <asm/unistd_32.h> installed: numbers not cross-checked");
        return;
    };
    let mut checked = 0;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some("#define"), Some(name), Some(nr)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let (Some(name), Ok(nr)) = (name.strip_prefix("__NR_"), nr.parse::<u32>()) else {
            continue;
        };
        if let Some(&(ours, _, _)) = i386::CALLS.iter().find(|&&(_, n, _)| n == name) {
            assert_eq!(ours, nr, "{name}");
            checked += 1;
        }
    }
    assert!(checked > 200, "only {checked} numbers found in {header}");
}
