//! Workshop overlays (DESIGN.md §9): the resolved items of an overlay downloaded into the cache
//! when missing ([`download`]), adopted by root ([`cache`]), hard-linked into a fresh tree and
//! published as the overlay's content unless nothing changed ([`tree`]); and the cache's gc.
//!
//! [`run`] holds the overlay's lock for its build and the cache's lock
//! (`Subject::WorkshopCache`) for the download, the adoption and the tree; [`gc`] holds the
//! cache's lock. Only items whose state is Ok are fetched and linked: the others are left out
//! (the caller reports them). If any Ok item could not be downloaded or adopted, nothing is
//! published and the previous content stays; the files that did arrive stay in the cache.

pub mod cache;
pub mod download;
pub mod tree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use left4me_statedir::{Lock, LockError, Subject};
use left4me_workshop::{Item, WorkshopId};

use crate::content::{self, ContentError, OverlayDirs, Overlays};
use crate::job::{Host, Limits};
use crate::pipeline::{self, JobError};
use crate::preflight::PreflightError;
use crate::progress::Progress;
use crate::publish::{self, PublishError, Retired};
use crate::stream::Stop;
use crate::systemd::UnitRunner;
use crate::verdict::Status;

pub use cache::{Cache, CacheError, GcReport};

/// Why a workshop build or gc could not be carried out (a build that ran and failed is a
/// [`WorkshopReport`] with [`Outcome::Failed`]).
#[derive(Debug, thiserror::Error)]
pub enum WorkshopError {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Dir(#[from] left4me_statedir::DirError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(
        "workshop item {id} is not in the cache ({}) although it was adopted: run the build again",
        path.display()
    )]
    NotCached { id: WorkshopId, path: PathBuf },
}

impl WorkshopError {
    /// Whether another left4me process holds the overlay or the cache (the operator's to wait
    /// for), or the request is otherwise the operator's to fix.
    pub fn is_usage(&self) -> bool {
        match self {
            WorkshopError::Lock(LockError::Busy { .. }) => true,
            WorkshopError::Content(c) => c.is_busy(),
            WorkshopError::Preflight(p) => p.is_usage(),
            WorkshopError::Job(JobError::Preflight(p)) => p.is_usage(),
            _ => false,
        }
    }
}

/// The most items one download unit fetches: their ids, sizes and URLs are its command line
/// (about 150 bytes an item; the kernel takes 2 MiB of arguments in all).
pub const MAX_PER_DOWNLOAD: usize = 1000;

/// One build of a workshop overlay, as plain data.
#[derive(Debug, Clone)]
pub struct WorkshopJob {
    /// The overlay's name (the ledger's and the unit's).
    pub name: String,
    /// The resolved items; only those whose state is Ok are fetched and linked.
    pub items: Vec<Item>,
    /// host.toml `game_user`: owns the download dir (in the root-only build dir).
    pub game_user: String,
    /// host.toml `sandbox_user`: runs the download.
    pub sandbox_user: String,
    /// The download's limits.
    pub limits: Limits,
}

/// What became of the overlay's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new tree is the overlay's content.
    Published,
    /// The content already was this tree: nothing was published.
    Unchanged,
    /// An item could not be downloaded or adopted (or the run failed): nothing was published.
    Failed(Status),
}

/// What [`run`] did.
#[derive(Debug, Clone)]
pub struct WorkshopReport {
    /// The download's ledger row, when a download ran.
    pub ledger_id: Option<i64>,
    /// Downloaded and adopted now, with their sizes.
    pub downloaded: Vec<(WorkshopId, u64)>,
    /// Ok items already in the cache.
    pub cached: usize,
    /// Downloaded but refused by the checks (wrong size, not a VPK, a link, …).
    pub refused: Vec<(WorkshopId, String)>,
    /// Not downloaded.
    pub failed: Vec<(WorkshopId, String)>,
    pub outcome: Outcome,
    /// What became of replaced content (after a publish).
    pub retired: Vec<Retired>,
    pub bytes_downloaded: u64,
    pub elapsed: Duration,
}

/// Builds the workshop overlay `job` under `state_dir` (an item listed twice counts once): missing items downloaded through
/// `runner` (`stop` stops the unit), events to `progress`.
pub fn run(
    job: &WorkshopJob,
    host: &Host,
    state_dir: &Path,
    runner: &dyn UnitRunner,
    stop: &Stop,
    progress: &mut dyn Progress,
) -> Result<WorkshopReport, WorkshopError> {
    let started = Instant::now();
    let dirs = OverlayDirs::new(state_dir, &job.name);
    let _overlay_lock = dirs.lock(&host.locks_dir)?;
    let _cache_lock = Lock::take(&host.locks_dir, Subject::WorkshopCache, false)?;
    let overlays = dirs.open(true)?.expect("create opens or fails");
    let cache = Cache::open(state_dir, true)?.expect("create opens or fails");
    pipeline::clear_leftovers(&overlays, host, progress)?;
    cache.clear_stale(false)?;

    let mut seen = std::collections::HashSet::new();
    let wanted: Vec<&Item> = job
        .items
        .iter()
        .filter(|i| i.state.is_ok() && seen.insert(i.id))
        .collect();
    let mut missing = Vec::new();
    for item in &wanted {
        if !cache.has(item.id, item.hcontent, item.file_size)? {
            missing.push(*item);
        }
    }
    let mut report = WorkshopReport {
        ledger_id: None,
        downloaded: Vec::new(),
        cached: wanted.len() - missing.len(),
        refused: Vec::new(),
        failed: Vec::new(),
        outcome: Outcome::Unchanged,
        retired: Vec::new(),
        bytes_downloaded: 0,
        elapsed: Duration::ZERO,
    };
    let run_id = content::new_build_id()?;
    // A unit's command line holds at most MAX_PER_DOWNLOAD items; a bigger first build runs
    // several downloads, one after the other.
    let mut last_status = Status::Succeeded;
    for (n, chunk) in missing.chunks(MAX_PER_DOWNLOAD).enumerate() {
        let chunk_id = if n == 0 {
            run_id.clone()
        } else {
            content::new_build_id()?
        };
        let done = download::download(
            job,
            host,
            &cache,
            &chunk_id,
            chunk,
            (runner, stop, progress),
        )?;
        report.ledger_id = Some(done.ledger_id);
        report.bytes_downloaded += done.adopted.iter().map(|(_, bytes)| bytes).sum::<u64>();
        report.downloaded.extend(done.adopted);
        report.refused.extend(done.refused);
        report.failed.extend(done.failed);
        if done.status != Status::Succeeded {
            last_status = done.status;
        }
        if stop.is_requested() {
            break;
        }
    }
    if !report.refused.is_empty() || !report.failed.is_empty() || last_status != Status::Succeeded {
        let status = match last_status {
            Status::Succeeded => Status::Failed(crate::verdict::Failure::Refused(
                report
                    .failed
                    .iter()
                    .map(|(id, why)| format!("item {id}: {why}"))
                    .collect(),
            )),
            other => other,
        };
        report.outcome = Outcome::Failed(status);
        report.elapsed = started.elapsed();
        return Ok(report);
    }
    report.outcome = publish_tree(
        &overlays,
        &cache,
        host,
        &run_id,
        &wanted,
        progress,
        &mut report.retired,
    )?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Publishes the tree of `wanted` (all in the cache) unless the content already is that tree.
fn publish_tree(
    overlays: &Overlays,
    cache: &Cache,
    host: &Host,
    run_id: &str,
    wanted: &[&Item],
    progress: &mut dyn Progress,
    retired: &mut Vec<Retired>,
) -> Result<Outcome, WorkshopError> {
    let listing = tree::wanted(cache, wanted)?;
    if tree::unchanged(overlays, &listing)? {
        return Ok(Outcome::Unchanged);
    }
    let built = tree::build(overlays, cache, run_id, wanted).and_then(|()| {
        Ok(publish::publish_build(
            overlays,
            run_id,
            &host.runtime_root,
            progress,
        )?)
    });
    match built {
        Ok(done) => {
            *retired = done;
            Ok(Outcome::Published)
        }
        Err(err) => {
            let _ = overlays.remove(&overlays.names().build_name(run_id));
            Err(err)
        }
    }
}

/// Removes what the workshop cache holds that no overlay content uses: first the old content
/// of every overlay no mount uses is retired (overlays busy with a build are skipped), then
/// [`Cache::gc`]. Holds the cache's lock. Nothing is removed with `dry_run`: the report says
/// what would be, counting the links the retirement would drop.
pub fn gc(state_dir: &Path, host: &Host, dry_run: bool) -> Result<GcReport, WorkshopError> {
    let _cache_lock = Lock::take(&host.locks_dir, Subject::WorkshopCache, false)?;
    let Some(cache) = Cache::open(state_dir, false)? else {
        return Ok(GcReport {
            dry_run,
            ..GcReport::default()
        });
    };
    let mut released = Links::new();
    let retired = retire_all(state_dir, host, dry_run, &mut released)?;
    let mut report = cache.gc(dry_run, &released)?;
    report.retired = retired;
    Ok(report)
}

/// Hard links by file (device, inode): those a dry run's retirement would drop.
pub type Links = HashMap<(u64, u64), u64>;

/// Retires the old content of every overlay that has some, under each overlay's lock; with
/// `dry_run` removes nothing and counts in `released` the item links of the old trees it would
/// remove. The old content dirs retired (or, dry, to be).
fn retire_all(
    state_dir: &Path,
    host: &Host,
    dry_run: bool,
    released: &mut Links,
) -> Result<Vec<PathBuf>, WorkshopError> {
    let state = left4me_statedir::StateDir::open(state_dir)?;
    let Some(overlays) = state.dir().open_dir_if_exists("overlays")? else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = overlays
        .entries()?
        .into_iter()
        .filter_map(|e| e.into_string().ok())
        .filter_map(|e| {
            let rest = e.strip_prefix('.')?;
            let (name, _) = rest.rsplit_once(".old-")?;
            Some(name.to_owned())
        })
        .collect();
    names.sort();
    names.dedup();
    let mut retired = Vec::new();
    for name in names {
        let dirs = OverlayDirs::new(state_dir, &name);
        let lock = match dirs.lock(&host.locks_dir) {
            Ok(lock) => lock,
            Err(err) if err.is_busy() => continue,
            Err(err) => return Err(err.into()),
        };
        let Some(overlays) = dirs.open(false)? else {
            continue;
        };
        if dry_run {
            for old in publish::retirable(&overlays, &host.runtime_root)? {
                tree::count_links(&overlays, &old, released)?;
                retired.push(overlays.path(&old));
            }
        } else {
            for done in publish::retire(&overlays, &host.runtime_root)? {
                if let Retired::Removed(path) = done {
                    retired.push(path);
                }
            }
        }
        drop(lock);
    }
    Ok(retired)
}

#[cfg(test)]
#[path = "privileged_tests.rs"]
mod privileged_tests;
