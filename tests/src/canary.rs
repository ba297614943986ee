//! Canary trees: a record of everything beneath some paths (kind, owner, mode, size, a hash
//! of each file's bytes, each symlink's target), taken without following a symlink, to show
//! after an attack that nothing outside the attacked instance changed. Modification times are
//! left out: only what a redirected root action would change counts.

use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One entry of a canary tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `dir`, `file`, `symlink -> TARGET` or `other`.
    pub kind: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub size: u64,
    /// Of a file's contents; 0 for the rest.
    pub hash: u64,
}

/// Paths (host paths) to their entries; a path that does not exist is recorded as missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot(BTreeMap<PathBuf, Option<Entry>>);

impl Snapshot {
    /// Records `roots` and everything beneath them, except paths for which `skip` says yes
    /// (and what is beneath those).
    pub fn take(roots: &[PathBuf], skip: &dyn Fn(&Path) -> bool) -> io::Result<Snapshot> {
        let mut snapshot = Snapshot::default();
        for root in roots {
            snapshot.record(root, skip)?;
        }
        Ok(snapshot)
    }

    fn record(&mut self, path: &Path, skip: &dyn Fn(&Path) -> bool) -> io::Result<()> {
        if skip(path) {
            return Ok(());
        }
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.0.insert(path.to_owned(), None);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let file_type = meta.file_type();
        let (kind, hash) = if file_type.is_dir() {
            ("dir".to_owned(), 0)
        } else if file_type.is_file() {
            let mut hasher = DefaultHasher::new();
            std::fs::read(path)?.hash(&mut hasher);
            ("file".to_owned(), hasher.finish())
        } else if file_type.is_symlink() {
            let target = std::fs::read_link(path)?;
            (format!("symlink -> {}", target.display()), 0)
        } else {
            ("other".to_owned(), 0)
        };
        self.0.insert(
            path.to_owned(),
            Some(Entry {
                kind,
                uid: meta.uid(),
                gid: meta.gid(),
                mode: meta.mode() & 0o7777,
                size: if file_type.is_dir() { 0 } else { meta.len() },
                hash,
            }),
        );
        if file_type.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(path)?
                .map(|entry| entry.map(|e| e.path()))
                .collect::<io::Result<_>>()?;
            children.sort();
            for child in children {
                self.record(&child, skip)?;
            }
        }
        Ok(())
    }

    /// How many entries were recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One line per path that differs between `self` (before) and `after`.
    pub fn changes(&self, after: &Snapshot) -> Vec<String> {
        let mut changes = Vec::new();
        for (path, before) in &self.0 {
            match after.0.get(path) {
                None => changes.push(format!("{}: gone", path.display())),
                Some(now) if now != before => changes.push(format!(
                    "{}: was {}, is {}",
                    path.display(),
                    describe(before.as_ref()),
                    describe(now.as_ref())
                )),
                Some(_) => {}
            }
        }
        for (path, now) in &after.0 {
            if !self.0.contains_key(path) {
                changes.push(format!(
                    "{}: new, {}",
                    path.display(),
                    describe(now.as_ref())
                ));
            }
        }
        changes
    }
}

fn describe(entry: Option<&Entry>) -> String {
    match entry {
        None => "missing".to_owned(),
        Some(e) => format!(
            "{} {}:{} {:o} {} bytes (hash {:x})",
            e.kind, e.uid, e.gid, e.mode, e.size, e.hash
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "left4me-tests-canary-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/f"), "one").unwrap();
        symlink("/etc", dir.join("a/l")).unwrap();
        std::fs::create_dir_all(dir.join("skipped")).unwrap();
        dir
    }

    #[test]
    fn sees_every_kind_of_change_and_nothing_else() {
        let dir = scratch("changes");
        let skip = |p: &Path| p.ends_with("skipped");
        let roots = [dir.clone(), dir.join("absent")];
        let before = Snapshot::take(&roots, &skip).unwrap();
        assert_eq!(before.len(), 6, "{before:?}");
        // Changes beneath a skipped path do not count.
        std::fs::write(dir.join("skipped/x"), "x").unwrap();
        assert!(
            before
                .changes(&Snapshot::take(&roots, &skip).unwrap())
                .is_empty()
        );

        std::fs::write(dir.join("a/b/f"), "two").unwrap();
        std::fs::remove_file(dir.join("a/l")).unwrap();
        symlink("/srv", dir.join("a/l")).unwrap();
        std::fs::write(dir.join("a/new"), "").unwrap();
        std::fs::write(dir.join("absent"), "").unwrap();
        let changes = before.changes(&Snapshot::take(&roots, &skip).unwrap());
        assert_eq!(changes.len(), 4, "{changes:#?}");
        assert!(changes.iter().any(|c| c.contains("symlink -> /etc")));
        assert!(changes.iter().any(|c| c.contains("a/new: new, file")));
        assert!(
            changes
                .iter()
                .any(|c| c.contains("absent: was missing, is file"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
