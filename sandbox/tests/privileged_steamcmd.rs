//! The `steamcmd` profile's file system (docs/game.md, "SteamCMD in the sandbox"): an i386
//! program built here with `gcc -m32` (`tests/steamcmd/layer_probe.c`, standing in for
//! SteamCMD's file work) runs under `--profile steamcmd --owner root --lower A --lower B
//! --output S --home H`; then the disk is checked: the lowers unchanged, the delta in `S/tree`
//! root-owned with a whiteout, the home root-owned; a first install (no `--lower`); the same
//! program under `--profile script` (killed: i386 refused); the refused combinations; and the
//! published delta mounted as a plain lower layer, as an instance would. Needs root and
//! gcc-multilib.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Listeners, OWNER_USER, RUNNER, Report, SANDBOX_UID, SANDBOX_USER, TestEnv};

/// Builds the i386 program into `dir` (a directory of its own, granted `--allow-exec`).
fn build_probe(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/steamcmd/layer_probe.c");
    let binary = dir.join("layer_probe");
    let out = Command::new("gcc")
        .args(["-m32", "-O1", "-Wall", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("running gcc (install gcc-multilib)");
    assert!(
        out.status.success(),
        "gcc -m32 failed (is gcc-multilib installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = Command::new("file").arg(&binary).output().unwrap();
    assert!(
        String::from_utf8_lossy(&file.stdout).contains("Intel 80386"),
        "not an i386 ELF: {}",
        String::from_utf8_lossy(&file.stdout)
    );
    binary
}

/// Everything about a tree that a write through overlayfs could change, per entry: type and
/// mode, owner, size, inode, links, device, modification and change times, content or target.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let content = if meta.is_file() {
            format!("{:?}", std::fs::read(&path).unwrap())
        } else if meta.is_symlink() {
            std::fs::read_link(&path).unwrap().display().to_string()
        } else {
            String::new()
        };
        let xattrs = xattrs(&path);
        out.insert(
            path.strip_prefix(root).unwrap().to_path_buf(),
            format!(
                "mode {:o} owner {}:{} size {} ino {} nlink {} rdev {} mtime {}.{} ctime {}.{} \
                 {content} {xattrs}",
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.size(),
                meta.ino(),
                meta.nlink(),
                meta.rdev(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
            ),
        );
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
    }
    out
}

/// The extended attributes of `path` (not followed), names and values.
fn xattrs(path: &Path) -> String {
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(path, &mut names).unwrap();
    let mut out = String::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = std::ffi::CString::new(name).unwrap();
        let mut value = vec![0u8; 4096];
        let len = rustix::fs::lgetxattr(path, name.as_c_str(), &mut value).unwrap();
        out.push_str(&format!("{name:?}={:?} ", &value[..len]));
    }
    out
}

/// `left4me-sandbox ARGS -- COMMAND…`.
fn sandbox(args: &[&str], command: &[&str]) -> Output {
    Command::new(RUNNER)
        .args(["--user", SANDBOX_USER])
        .args(args)
        .arg("--")
        .args(command)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The value after `key ` on the line that starts with it.
fn line<'a>(output: &'a str, key: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or("(missing)")
}

fn owner_of(path: &Path) -> String {
    std::fs::symlink_metadata(path)
        .map_or_else(|e| format!("{e}"), |m| format!("{}:{}", m.uid(), m.gid()))
}

fn mkdirs(base: &Path, dirs: &[&str]) {
    for dir in dirs {
        std::fs::create_dir_all(base.join(dir)).unwrap();
    }
}

fn main() {
    if common::filtered_out("privileged_steamcmd") {
        return;
    }
    let env = TestEnv::new("steamcmd");
    let mut report = Report::default();
    let base = env.base.clone();
    let bin = base.join("bin32");
    let probe = build_probe(&bin);
    let probe = probe.to_str().unwrap();
    let bin_arg = bin.to_str().unwrap();
    let sandbox_ids = format!("{SANDBOX_UID}:{SANDBOX_UID}");

    // Two lower layers (root's, like game/versions/ID/tree), A above B.
    let a = base.join("versions/2/tree");
    let b = base.join("versions/1/tree");
    mkdirs(&a, &["keep"]);
    mkdirs(&b, &["keep", "dir"]);
    for (dir, file, content) in [
        (&b, "bottom.txt", "bottom\n"),
        (&b, "gone.txt", "gone\n"),
        (&b, "change.txt", "shadowed\n"),
        (&b, "dir/x", "x\n"),
        (&a, "change.txt", "original\n"),
        (&a, "keep/deep.txt", "deep\n"),
    ] {
        std::fs::write(dir.join(file), content).unwrap();
    }
    std::os::unix::fs::symlink("keep/deep.txt", a.join("link")).unwrap();
    let staging = base.join("versions/.new-0a1b2c3d");
    mkdirs(&staging, &["tree", "work"]);
    let home = base.join("steamcmd");
    mkdirs(&home, &[""]);
    let before = (snapshot(&a), snapshot(&b));

    // --- the layered run ---------------------------------------------------------------
    let a_host_file = format!("{}/written-from-inside", a.display());
    let listeners = Listeners::new();
    let allowed = listeners.allowed_port().to_string();
    let tcp_allowed = format!("tcp:{allowed}");
    let tcp_blocked = format!("tcp:{}", listeners.blocked_port());
    let out = sandbox(
        &[
            "--profile",
            "steamcmd",
            "--owner",
            "root",
            "--lower",
            a.to_str().unwrap(),
            "--lower",
            b.to_str().unwrap(),
            "--output",
            staging.to_str().unwrap(),
            "--home",
            home.to_str().unwrap(),
            "--allow-exec",
            bin_arg,
            "--allow-port",
            &allowed,
        ],
        &[
            probe,
            "layered",
            &tcp_allowed,
            &tcp_blocked,
            "/etc/written",
            "/usr/written",
            "/home/written",
            "/.left4me-layers/written",
            &a_host_file,
            "/overlay/../written",
        ],
    );
    let output = text(&out);
    println!(
        "--- layered run, stdout:\n{output}--- stderr:\n{}",
        stderr(&out)
    );
    report.check(
        "layered run exits 0",
        &format!("{:?}", out.status.code()),
        out.status.code() == Some(0),
        "",
    );
    let log = stderr(&out);
    report.check(
        "runner log names the overlayfs and the home",
        log.lines().next().unwrap_or(""),
        log.contains("an overlayfs over 2 lower layers and /home/steamcmd land as uid 0"),
        "runner log",
    );
    let expect = [
        ("pointer bits", "32".to_string(), "an i386 program"),
        ("uid", SANDBOX_UID.to_string(), "the sandbox user"),
        ("HOME", "/home/steamcmd".into(), "--home is $HOME"),
        ("cwd", "/overlay".into(), "working directory"),
        (
            "owner /overlay",
            sandbox_ids.clone(),
            "idmap: upper root 0 -> sandbox",
        ),
        (
            "owner change.txt",
            sandbox_ids.clone(),
            "idmap: lower 0 -> sandbox",
        ),
        (
            "read bottom.txt",
            "bottom".into(),
            "the bottom lower is visible",
        ),
        ("read keep/deep.txt", "deep".into(), "a merged directory"),
        ("append change.txt", "ok".into(), "copy-up"),
        (
            "read change.txt",
            "original".into(),
            "A above B (first line)",
        ),
        ("unlink gone.txt", "ok".into(), "whiteout"),
        (
            "owner gone.txt",
            "ENOENT".into(),
            "deleted in the merged view",
        ),
        ("mkdir made", "ok".into(), "new directory"),
        ("create made/new.txt", "ok".into(), "new file"),
        (
            "owner made/new.txt",
            sandbox_ids.clone(),
            "the sandbox user's inside",
        ),
        ("write $HOME/home.txt", "ok".into(), "the home is writable"),
        (
            "owner $HOME/home.txt",
            sandbox_ids.clone(),
            "idmap: home 0 -> sandbox",
        ),
        ("write /etc/written", "EROFS".into(), "read-only root"),
        ("write /usr/written", "EROFS".into(), "read-only bind"),
        ("write /home/written", "EROFS".into(), "read-only root"),
        (
            "write /.left4me-layers/written",
            "ENOENT".into(),
            "the layer staging is gone",
        ),
        (
            &format!("write {a_host_file}"),
            "ENOENT".into(),
            "the lower's real path is not visible",
        ),
        (
            "write /overlay/../written",
            "EROFS".into(),
            "read-only root",
        ),
        (
            "socket",
            "ok".into(),
            "i386 glibc's socket() is socketcall(SYS_SOCKET)",
        ),
        (
            &format!("connect {tcp_allowed}"),
            "ok".into(),
            "socketcall(SYS_CONNECT) to an allowed port",
        ),
        (
            &format!("connect {tcp_blocked}"),
            "EACCES".into(),
            "Landlock: the port rule holds for socketcall too",
        ),
    ];
    for (key, want, why) in &expect {
        let got = line(&output, key);
        report.check(&format!("inside: {key}"), got, got == want, why);
    }

    // On disk: the lowers untouched, the delta root's.
    let after = (snapshot(&a), snapshot(&b));
    report.check(
        "lower A unchanged (content, metadata, xattrs)",
        &format!("{} entries", after.0.len()),
        after.0 == before.0,
        "overlayfs never writes a lower",
    );
    report.check(
        "lower B unchanged (content, metadata, xattrs)",
        &format!("{} entries", after.1.len()),
        after.1 == before.1,
        "overlayfs never writes a lower",
    );
    let tree = staging.join("tree");
    let changed = std::fs::read_to_string(tree.join("change.txt")).unwrap_or_default();
    report.check(
        "S/tree/change.txt copied up and changed",
        &format!("{changed:?}"),
        changed == "original\nchanged\n",
        "copy-up",
    );
    for path in ["change.txt", "made", "made/new.txt", "gone.txt", "."] {
        let got = owner_of(&tree.join(path));
        report.check(
            &format!("S/tree/{path} owned by root"),
            &got,
            got == "0:0",
            "idmap: sandbox -> 0",
        );
    }
    let gone = std::fs::symlink_metadata(tree.join("gone.txt"));
    let whiteout = gone
        .as_ref()
        .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0);
    report.check(
        "S/tree/gone.txt is a whiteout (char 0:0)",
        &format!("{:?}", gone.map(|m| (m.mode(), m.rdev()))),
        whiteout,
        "overlayfs whiteout",
    );
    let mut names: Vec<String> = snapshot(&tree)
        .keys()
        .map(|p| p.display().to_string())
        .collect();
    names.sort();
    report.check(
        "S/tree holds only the delta",
        &names.join(" "),
        names == ["", "change.txt", "gone.txt", "made", "made/new.txt"],
        "no unchanged file copied",
    );
    let home_owner = owner_of(&home.join("home.txt"));
    report.check(
        "H/home.txt owned by root",
        &home_owner,
        home_owner == "0:0",
        "idmap: sandbox -> 0",
    );
    report.check(
        "nothing written beside the lowers",
        &format!("{}", Path::new(&a_host_file).exists()),
        !Path::new(&a_host_file).exists(),
        "",
    );

    // --- the published delta as an instance's lower layer --------------------------------
    // As the supervisor would: plain lowerdir (no idmap), S/tree above the chain. The job
    // removes work/ before publishing.
    std::fs::remove_dir_all(staging.join("work")).unwrap();
    let merged = base.join("merged");
    std::fs::create_dir_all(&merged).unwrap();
    let lowerdir = format!(
        "lowerdir={}:{}:{}",
        tree.display(),
        a.display(),
        b.display()
    );
    rustix::mount::mount(
        "overlay",
        &merged,
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        Some(std::ffi::CString::new(lowerdir).unwrap().as_c_str()),
    )
    .expect("mounting the published delta as a lower layer");
    let read = |p: &str| std::fs::read_to_string(merged.join(p)).map_err(|e| e.kind());
    let instance = [
        ("gone.txt", Err(std::io::ErrorKind::NotFound)),
        ("change.txt", Ok("original\nchanged\n".to_string())),
        ("made/new.txt", Ok("new\n".to_string())),
        ("bottom.txt", Ok("bottom\n".to_string())),
        ("keep/deep.txt", Ok("deep\n".to_string())),
        ("dir/x", Ok("x\n".to_string())),
    ];
    for (path, want) in instance {
        let got = read(path);
        report.check(
            &format!("instance view: {path}"),
            &format!("{got:?}"),
            got == want,
            "the delta works as a lower",
        );
    }
    let owner = owner_of(&merged.join("change.txt"));
    report.check(
        "instance view: files are root's",
        &owner,
        owner == "0:0",
        "no idmap outside",
    );
    rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::empty()).unwrap();

    // --- a first install: no --lower, /overlay is S/tree -------------------------------
    let first = base.join("versions/.new-11111111");
    mkdirs(&first, &["tree"]);
    let first_home = base.join("steamcmd-first");
    mkdirs(&first_home, &[""]);
    let out = sandbox(
        &[
            "--profile",
            "steamcmd",
            "--owner",
            "root",
            "--output",
            first.to_str().unwrap(),
            "--home",
            first_home.to_str().unwrap(),
            "--allow-exec",
            bin_arg,
        ],
        &[probe, "install"],
    );
    let output = text(&out);
    println!(
        "--- first install, stdout:\n{output}--- stderr:\n{}",
        stderr(&out)
    );
    report.check(
        "first install exits 0",
        &format!("{:?}", out.status.code()),
        out.status.code() == Some(0),
        "",
    );
    let got = line(&output, "owner bin/installed.txt");
    report.check(
        "first install: inside, the file is the sandbox user's",
        got,
        got == sandbox_ids,
        "idmap",
    );
    for path in ["tree/bin", "tree/bin/installed.txt"] {
        let got = owner_of(&first.join(path));
        report.check(
            &format!("first install: S/{path} owned by root"),
            &got,
            got == "0:0",
            "idmap: sandbox -> 0",
        );
    }
    report.check(
        "first install: nothing beside tree/",
        &format!("{:?}", std::fs::read_dir(&first).unwrap().count()),
        std::fs::read_dir(&first).unwrap().count() == 1,
        "/overlay is tree/",
    );

    // --- the same i386 program under --profile script ----------------------------------
    let plain = env.output("plain");
    let out = sandbox(
        &[
            "--owner",
            OWNER_USER,
            "--output",
            plain.to_str().unwrap(),
            "--allow-exec",
            bin_arg,
        ],
        &[probe, "install"],
    );
    report.check(
        "--profile script: the i386 program is killed (SIGSYS)",
        &format!("{:?} {:?}", out.status.code(), text(&out)),
        out.status.code() == Some(159) && text(&out).is_empty(),
        "seccomp arch check",
    );

    // --- refused combinations: exit 125 and one line -----------------------------------
    mkdirs(&staging, &["work"]);
    let a_str = a.to_str().unwrap();
    let staging_str = staging.to_str().unwrap();
    let chain: Vec<String> = (0..5).map(|i| format!("/l{i}")).collect();
    let mut five = vec![
        "--profile",
        "steamcmd",
        "--owner",
        "root",
        "--output",
        staging_str,
    ];
    for l in &chain {
        five.extend(["--lower", l.as_str()]);
    }
    let owned_by_user = env.output("owned-by-user");
    let refused: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "--lower without --profile steamcmd",
            vec![
                "--owner",
                OWNER_USER,
                "--output",
                staging_str,
                "--lower",
                a_str,
            ],
            "error: --lower is allowed only with --profile steamcmd",
        ),
        (
            "--home without --profile steamcmd",
            vec![
                "--owner",
                OWNER_USER,
                "--output",
                staging_str,
                "--home",
                a_str,
            ],
            "error: --home is allowed only with --profile steamcmd",
        ),
        (
            "--owner root with --profile script",
            vec!["--owner", "root", "--output", staging_str],
            "error: --owner root is allowed only with --profile steamcmd",
        ),
        ("five lowers", five, "error: --lower given 5 times"),
        (
            "a relative --lower",
            vec![
                "--profile",
                "steamcmd",
                "--owner",
                "root",
                "--output",
                staging_str,
                "--lower",
                "versions/1/tree",
            ],
            "error: --lower versions/1/tree must be an absolute path",
        ),
        (
            "a lower the owner does not own",
            vec![
                "--profile",
                "steamcmd",
                "--owner",
                "root",
                "--output",
                staging_str,
                "--lower",
                owned_by_user.to_str().unwrap(),
            ],
            "error: lower layer",
        ),
        (
            "--output without tree/ and work/",
            vec![
                "--profile",
                "steamcmd",
                "--owner",
                "root",
                "--output",
                a_str,
                "--lower",
                a_str,
            ],
            "error: output directory ",
        ),
    ];
    for (what, args, want) in refused {
        let out = sandbox(&args, &["/bin/true"]);
        let err = stderr(&out);
        report.check(
            &format!("refused: {what}"),
            err.trim_end(),
            out.status.code() == Some(125) && err.starts_with(want) && err.lines().count() == 1,
            "exit 125, one line",
        );
    }

    report.finish("privileged_steamcmd", env);
}
