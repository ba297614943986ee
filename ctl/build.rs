//! Sets `LEFT4ME_LONG_VERSION`, what `left4mectl --version` prints after the program name:
//! `0.1.0 (git abcdef1)` when built from a git checkout, the plain package version otherwise
//! (a source tarball, a Debian build without `.git`, or no `git` program).
//!
//! Cargo reruns this script only when the checked-out commit can have changed: the git dir's
//! `HEAD`, the ref it points to (a loose file, or `packed-refs` after `git gc`), so a build
//! after a commit shows the new revision and other builds do not rerun it. In a worktree
//! `HEAD` lives in the worktree's git dir and the refs in the common dir; both are asked from
//! git rather than assumed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// A path git printed, made absolute against `dir` (git prints relative ones sometimes).
fn absolute(dir: &Path, path: String) -> PathBuf {
    let path = PathBuf::from(path);
    if path.is_absolute() {
        path
    } else {
        dir.join(path)
    }
}

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LEFT4ME_NO_GIT_VERSION");

    let revision = if std::env::var_os("LEFT4ME_NO_GIT_VERSION").is_some() {
        None
    } else {
        git_revision(&manifest)
    };
    let long = match revision {
        Some(rev) => format!("{version} (git {rev})"),
        None => version,
    };
    println!("cargo:rustc-env=LEFT4ME_LONG_VERSION={long}");
}

/// The short commit id of the checkout `dir` is in, with the rerun triggers for it; `None`
/// outside git.
fn git_revision(dir: &Path) -> Option<String> {
    // Only a checkout of this project counts, not a git repo some directory above a tarball
    // was unpacked into: the workspace root must be the work tree's top.
    let top = absolute(dir, git(dir, &["rev-parse", "--show-toplevel"])?);
    let workspace = dir.parent()?;
    if std::fs::canonicalize(&top).ok()? != std::fs::canonicalize(workspace).ok()? {
        return None;
    }
    let git_dir = absolute(dir, git(dir, &["rev-parse", "--git-dir"])?);
    let common = absolute(dir, git(dir, &["rev-parse", "--git-common-dir"])?);
    // Cargo takes a missing file for a changed one (and would rerun every time): only files
    // that exist are named; a branch that lives in packed-refs gets its refs dir watched, so
    // the loose ref its next commit writes is seen.
    let watch = |path: PathBuf| println!("cargo:rerun-if-changed={}", path.display());
    watch(git_dir.join("HEAD"));
    let packed = common.join("packed-refs");
    if packed.exists() {
        watch(packed);
    }
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        let loose = common.join(branch);
        match (loose.exists(), loose.parent()) {
            (true, _) => watch(loose),
            (false, Some(refs)) if refs.exists() => watch(refs.to_owned()),
            _ => {}
        }
    }
    git(dir, &["rev-parse", "--short=7", "HEAD"])
}
