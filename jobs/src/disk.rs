//! The disk guard: a job may not fill the state dir's file system, neither its bytes nor its
//! inodes (millions of empty files exhaust the inodes as surely as one huge file the bytes, and
//! then every instance's `prepare` fails). Before the job, the preflight refuses to start
//! without room; while it runs, [`DiskGuard::check`] is polled and the unit is killed once the
//! free bytes or inodes fall below their reserve; after it, a job that ate into a reserve and
//! ended before the guard looked fails all the same.

use std::path::{Path, PathBuf};

use crate::verdict::Failure;

/// The free space the state dir's file system keeps during a job: 5 % of it, at least 16 MiB
/// and at most 1 GiB. A job that eats into it is killed.
pub fn disk_reserve(total_bytes: u64) -> u64 {
    (total_bytes / 20).clamp(16 << 20, 1 << 30)
}

/// The free inodes the state dir's file system keeps during a job: 5 % of them, at least 4096
/// (but never more than a quarter of a tiny file system's) and at most 1 Mi. A file system
/// without an inode count (`f_files` 0: btrfs and others allocate them on demand) has none.
pub fn inode_reserve(total_inodes: u64) -> u64 {
    let floor = 4096.min(total_inodes / 4);
    (total_inodes / 20).max(floor).min(1 << 20)
}

/// What is free on one file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    pub bytes_free: u64,
    pub bytes_total: u64,
    pub inodes_free: u64,
    pub inodes_total: u64,
}

/// The free and total bytes and inodes of the file system holding `path`, as an unprivileged
/// user sees them (`f_bavail`, `f_favail`).
pub fn room(path: &Path) -> std::io::Result<Room> {
    let st = rustix::fs::statvfs(path)?;
    Ok(Room {
        bytes_free: st.f_bavail.saturating_mul(st.f_frsize),
        bytes_total: st.f_blocks.saturating_mul(st.f_frsize),
        inodes_free: st.f_favail,
        inodes_total: st.f_files,
    })
}

/// What must stay free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserve {
    pub bytes: u64,
    pub inodes: u64,
}

impl Reserve {
    /// The reserves of a file system of `room`'s size.
    pub fn for_room(room: &Room) -> Self {
        Reserve {
            bytes: disk_reserve(room.bytes_total),
            inodes: if room.inodes_total == 0 {
                0
            } else {
                inode_reserve(room.inodes_total)
            },
        }
    }

    /// The failure when `room` is below a reserve (`running`: while the job runs, else after
    /// it ended); bytes are judged first.
    pub fn judge(&self, room: &Room, running: bool) -> Option<Failure> {
        let (free, reserve) = (room.bytes_free, self.bytes);
        if free < reserve {
            return Some(if running {
                Failure::DiskRanLow { free, reserve }
            } else {
                Failure::DiskLeftLow { free, reserve }
            });
        }
        let (free, reserve) = (room.inodes_free, self.inodes);
        (free < reserve).then_some(if running {
            Failure::InodesRanLow { free, reserve }
        } else {
            Failure::InodesLeftLow { free, reserve }
        })
    }
}

/// Watches the file system of one directory against its reserves.
#[derive(Debug, Clone)]
pub struct DiskGuard {
    pub dir: PathBuf,
    pub reserve: Reserve,
}

impl DiskGuard {
    /// The failure when the file system has less than a reserve free now (`running`: while
    /// the job runs, else after it ended).
    pub fn check(&self, running: bool) -> Option<Failure> {
        let room = room(&self.dir).ok()?;
        self.reserve.judge(&room, running)
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
    fn inode_reserves() {
        assert_eq!(inode_reserve(2000), 500);
        assert_eq!(inode_reserve(65_536), 4096);
        assert_eq!(inode_reserve(10_000_000), 500_000);
        assert_eq!(inode_reserve(1 << 40), 1 << 20);
        let room = |inodes_total| Room {
            bytes_free: 0,
            bytes_total: 1 << 30,
            inodes_free: 0,
            inodes_total,
        };
        assert_eq!(Reserve::for_room(&room(0)).inodes, 0);
        assert_eq!(Reserve::for_room(&room(2000)).inodes, 500);
    }

    #[test]
    fn the_verdict_names_what_ran_low() {
        let reserve = Reserve {
            bytes: 100,
            inodes: 10,
        };
        let room = |bytes_free, inodes_free| Room {
            bytes_free,
            bytes_total: 1000,
            inodes_free,
            inodes_total: 100,
        };
        assert_eq!(reserve.judge(&room(100, 10), true), None);
        assert_eq!(
            reserve.judge(&room(99, 10), true),
            Some(Failure::DiskRanLow {
                free: 99,
                reserve: 100
            })
        );
        let inodes = reserve.judge(&room(500, 9), true).unwrap();
        assert_eq!(
            inodes,
            Failure::InodesRanLow {
                free: 9,
                reserve: 10
            }
        );
        assert_eq!(
            inodes.to_string(),
            "the state dir's file system ran out of inodes (9 free, builds keep 10 free; too many \
             files): the build was killed"
        );
        assert_eq!(
            reserve.judge(&room(500, 9), false),
            Some(Failure::InodesLeftLow {
                free: 9,
                reserve: 10
            })
        );
    }

    #[test]
    fn guard_compares_free_space_with_the_reserve() {
        let dir = std::env::temp_dir();
        let roomy = DiskGuard {
            dir: dir.clone(),
            reserve: Reserve {
                bytes: 0,
                inodes: 0,
            },
        };
        assert_eq!(roomy.check(true), None);
        let full = DiskGuard {
            dir,
            reserve: Reserve {
                bytes: u64::MAX,
                inodes: 0,
            },
        };
        assert!(matches!(full.check(true), Some(Failure::DiskRanLow { .. })));
        assert!(matches!(
            full.check(false),
            Some(Failure::DiskLeftLow { .. })
        ));
    }
}
