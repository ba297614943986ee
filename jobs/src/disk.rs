//! The disk guard: a job may not fill the state dir's file system. Before the job, the
//! preflight refuses to start without room; while it runs, [`DiskGuard::check`] is polled and
//! the unit is killed once the free space falls below the reserve; after it, a job that ate
//! into the reserve and ended before the guard looked fails all the same.

use std::path::{Path, PathBuf};

use crate::verdict::Failure;

/// The free space the state dir's file system keeps during a job: 5 % of it, at least 16 MiB
/// and at most 1 GiB. A job that eats into it is killed.
pub fn disk_reserve(total_bytes: u64) -> u64 {
    (total_bytes / 20).clamp(16 << 20, 1 << 30)
}

/// `(free, total)` bytes of the file system holding `path`.
pub fn disk_space(path: &Path) -> std::io::Result<(u64, u64)> {
    let st = rustix::fs::statvfs(path)?;
    Ok((
        st.f_bavail.saturating_mul(st.f_frsize),
        st.f_blocks.saturating_mul(st.f_frsize),
    ))
}

/// Watches the file system of one directory against a reserve.
#[derive(Debug, Clone)]
pub struct DiskGuard {
    pub dir: PathBuf,
    /// Bytes that must stay free.
    pub reserve: u64,
}

impl DiskGuard {
    /// The failure when the file system has less than the reserve free now (`running`: while
    /// the job runs, else after it ended).
    pub fn check(&self, running: bool) -> Option<Failure> {
        let (free, _) = disk_space(&self.dir).ok()?;
        let reserve = self.reserve;
        (free < reserve).then_some(if running {
            Failure::DiskRanLow { free, reserve }
        } else {
            Failure::DiskLeftLow { free, reserve }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_reserves() {
        assert_eq!(disk_reserve(100 << 20), 16 << 20);
        assert_eq!(disk_reserve(1 << 30), (1 << 30) / 20);
        assert_eq!(disk_reserve(1 << 40), 1 << 30);
    }

    #[test]
    fn guard_compares_free_space_with_the_reserve() {
        let dir = std::env::temp_dir();
        let roomy = DiskGuard {
            dir: dir.clone(),
            reserve: 0,
        };
        assert_eq!(roomy.check(true), None);
        let full = DiskGuard {
            dir,
            reserve: u64::MAX,
        };
        assert!(matches!(full.check(true), Some(Failure::DiskRanLow { .. })));
        assert!(matches!(
            full.check(false),
            Some(Failure::DiskLeftLow { .. })
        ));
    }
}
