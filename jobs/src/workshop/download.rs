//! The download job: the items missing from the cache fetched in ONE sandbox run (a content job
//! of kind [`JobKind::WorkshopDownload`], unit `left4me-workshop-NAME-RUNID.service`, profile
//! `script`, public network on TCP 80 and 443) into the game user's download dir of a fresh
//! build dir of the cache that only root can enter (`.build-RUNID/out`, see [`super::cache`]),
//! then adopted into the cache by root ([`Cache::adopt`]).
//!
//! The command is the fixed [`FETCH_SCRIPT`] with the items as arguments (`ID HCONTENT SIZE
//! URL`, four per item): nothing the Steam Web API returned is ever part of the script's text.

use std::ffi::OsString;

use left4me_contract::Ids;
use left4me_workshop::{Item, WorkshopId};

use super::cache::{Adoption, Cache, build_name};
use super::{WorkshopError, WorkshopJob};
use crate::job::{Host, JobKind, NetworkPolicy, Resolver};
use crate::pipeline::write_resolver;
use crate::preflight;
use crate::progress::{Event, Progress, Seeded, Start};
use crate::record;
use crate::stream::Stop;
use crate::systemd::UnitRunner;
use crate::unit::{Download, TransientUnit};
use crate::verdict::{Failure, Status};

/// The ports a download may connect to.
pub const PORTS: [u16; 2] = [80, 443];

/// The fetch script, run as `bash -c FETCH_SCRIPT left4me-fetch ID HCONTENT SIZE URL …` in the
/// build dir (`/overlay` in the sandbox): one progress line per item, then `curl`; a failed
/// item is reported (its partial file removed) and the loop goes on; exit 1 if any failed.
pub const FETCH_SCRIPT: &str = r#"set -u
cd /overlay || exit 1
failed=0
while [ "$#" -ge 4 ]; do
    id=$1 hcontent=$2 size=$3 url=$4
    shift 4
    out="$id-$hcontent.vpk"
    printf 'left4me-fetch: item %s (%s bytes)\n' "$id" "$size"
    if ! curl --fail --location --proto =http,https --proto-redir =http,https --retry 3 \
        --max-filesize "$size" --silent --show-error -o "$out" -- "$url"; then
        rm -f -- "$out"
        printf 'left4me-fetch: item %s failed\n' "$id"
        failed=1
    fi
done
exit "$failed"
"#;

/// The name `bash` gets as `$0`.
pub const FETCH_NAME: &str = "left4me-fetch";

/// The command of a download of `items`.
pub fn fetch_command(items: &[&Item]) -> Vec<OsString> {
    let mut command: Vec<OsString> = vec!["/bin/bash".into(), "-c".into(), FETCH_SCRIPT.into()];
    command.push(FETCH_NAME.into());
    for item in items {
        command.push(item.id.to_string().into());
        command.push(item.hcontent.to_string().into());
        command.push(item.file_size.to_string().into());
        command.push(item.file_url.clone().into());
    }
    command
}

/// What one download run did.
#[derive(Debug, Clone)]
pub struct Downloaded {
    pub ledger_id: i64,
    /// The run's status as the ledger has it (a refused file fails it).
    pub status: Status,
    /// Adopted into the cache, with their sizes.
    pub adopted: Vec<(WorkshopId, u64)>,
    /// Downloaded but refused by the checks.
    pub refused: Vec<(WorkshopId, String)>,
    /// Not downloaded.
    pub failed: Vec<(WorkshopId, String)>,
}

/// Downloads `missing` (items not in `cache`) in one unit and adopts what arrived. The caller
/// holds the overlay's and the cache's locks.
pub(crate) fn download(
    job: &WorkshopJob,
    host: &Host,
    cache: &Cache,
    run_id: &str,
    missing: &[&Item],
    io: (&dyn UnitRunner, &Stop, &mut dyn Progress),
) -> Result<Downloaded, WorkshopError> {
    const KIND: JobKind = JobKind::WorkshopDownload;
    let (runner, stop, progress) = io;
    preflight::check_host(runner)?;
    let game: Ids = preflight::check_user_names(&job.game_user, &job.sandbox_user, host)?;
    preflight::check_no_earlier_units(KIND, &job.name, runner)?;
    // Before the build dir is made: a download dir that cannot be made leaves no build dir.
    let _remove = BuildGuard {
        cache,
        name: build_name(run_id),
    };
    let build = cache.create_build(run_id, game)?;
    let ledger = record::open_ledger(host, KIND, &job.name, progress)?;
    let guard = preflight::check_disk(build.path())?;
    let network = NetworkPolicy::Public {
        ports: PORTS.to_vec(),
    };
    let resolver = Resolver::for_run(host, &format!("{}-{run_id}", job.name));
    let _resolv_guard = write_resolver(&resolver, &host.run_dir)?;
    let unit = TransientUnit::download(Download {
        kind: KIND,
        name: &job.name,
        id: run_id,
        game_user: &job.game_user,
        sandbox_user: &job.sandbox_user,
        limits: &job.limits,
        output: build.path(),
        network: &network,
        resolver: &resolver,
        command: fetch_command(missing),
    })
    // The download dir lies in the root-only build dir.
    .reaching_through_root_dirs();
    progress.event(Event::Starting(&Start {
        unit: &unit.unit,
        output: build.path(),
        seeded: &Seeded::Fresh,
        network: &network,
        resolver: Some(&resolver.plan),
        limits: &job.limits,
    }));
    let recorded = record::run_recorded(
        &ledger, KIND, &job.name, &unit, &guard, runner, stop, progress,
    )?;
    let mut status = record::judge_streamed(&recorded.streamed, &job.limits, &guard);
    let mut done = Downloaded {
        ledger_id: recorded.ledger_id,
        status: Status::Succeeded,
        adopted: Vec::new(),
        refused: Vec::new(),
        failed: Vec::new(),
    };
    // Whatever the run's status, what arrived intact is kept: the next run need not fetch it.
    for item in missing {
        let adoption = match cache.adopt(&build, run_id, item.id, item.hcontent, item.file_size) {
            Ok(adoption) => adoption,
            Err(err) => {
                // The row must not stay `running`: it ended, with this error.
                let failed = Status::Failed(Failure::Refused(vec![format!(
                    "item {}: {}",
                    item.id,
                    crate::error_chain(&err)
                )]));
                let _ = record::complete(&ledger, &recorded, &failed);
                return Err(err.into());
            }
        };
        match adoption {
            Adoption::Adopted => done.adopted.push((item.id, item.file_size)),
            Adoption::Missing => done.failed.push((
                item.id,
                format!(
                    "download failed (see `left4mectl overlay jobs {}`)",
                    job.name
                ),
            )),
            Adoption::Refused(why) => done.refused.push((item.id, why)),
        }
    }
    if status == Status::Succeeded && !done.refused.is_empty() {
        let problems = done
            .refused
            .iter()
            .map(|(id, why)| format!("item {id}: {why}"))
            .collect();
        status = Status::Failed(Failure::Refused(problems));
    }
    record::complete(&ledger, &recorded, &status)?;
    done.status = status;
    Ok(done)
}

/// The build dir of a download, removed when dropped.
struct BuildGuard<'a> {
    cache: &'a Cache,
    name: String,
}

impl Drop for BuildGuard<'_> {
    fn drop(&mut self) {
        let _ = self.cache.remove(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::Command;

    use left4me_workshop::ItemState;

    use super::*;
    use crate::testing::TempDir;

    fn item(id: u64, url: &str) -> Item {
        Item {
            id,
            title: String::new(),
            file_size: 5,
            time_updated: 0,
            hcontent: id * 10,
            file_url: url.into(),
            state: ItemState::Ok,
        }
    }

    #[test]
    fn the_kind_names_its_units_after_the_overlay() {
        let kind = JobKind::WorkshopDownload;
        assert_eq!(
            kind.unit_name("maps", "0a0b0c0d"),
            "left4me-workshop-maps-0a0b0c0d.service"
        );
        assert_eq!(JobKind::parse(kind.as_str()), Some(kind));
        assert_eq!(kind.family(), [kind]);
        assert_eq!(kind.what("maps"), "workshop download of overlay maps");
    }

    /// The script as it runs, in `dir` instead of the sandbox's `/overlay`, with a `curl` that
    /// writes its URL to `-o` or fails (leaving a partial file) for URLs ending in `/fail`.
    #[test]
    fn the_fetch_script_fetches_each_item_goes_on_after_a_failure_and_exits_1() {
        let tmp = TempDir::new("fetch-script");
        let (bin, out) = (tmp.path().join("bin"), tmp.path().join("out"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        let curl = bin.join("curl");
        std::fs::write(
            &curl,
            "#!/bin/bash\nprintf '%s\\n' \"$*\" >> ../args\nwhile [ \"$1\" != -o ]; do shift; \
             done\nprintf partial > \"$2\"\ncase \"$4\" in */fail) exit 22;; esac\nprintf '%s' \
             \"$4\" > \"$2\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&curl, std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = FETCH_SCRIPT.replace("cd /overlay", "cd \"$OUT\"");
        let items = [
            item(1, "https://a.example/1 $(touch /tmp/pwned)"),
            item(2, "https://a.example/fail"),
            item(3, "http://b.example/3"),
        ];
        let refs: Vec<&Item> = items.iter().collect();
        let command = fetch_command(&refs);
        assert_eq!(&command[..4], ["/bin/bash", "-c", FETCH_SCRIPT, FETCH_NAME]);
        let output = Command::new("/bin/bash")
            .arg("-c")
            .arg(&script)
            .args(&command[3..])
            .env("OUT", &out)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("left4me-fetch: item 1 (5 bytes)"),
            "{stdout}"
        );
        assert!(stdout.contains("left4me-fetch: item 2 failed"), "{stdout}");
        assert!(
            stdout.contains("left4me-fetch: item 3 (5 bytes)"),
            "{stdout}"
        );
        let read = |name: &str| std::fs::read_to_string(out.join(name)).ok();
        assert_eq!(
            read("1-10.vpk").as_deref(),
            Some("https://a.example/1 $(touch /tmp/pwned)")
        );
        assert_eq!(
            read("2-20.vpk"),
            None,
            "a failed item's partial file is removed"
        );
        assert_eq!(read("3-30.vpk").as_deref(), Some("http://b.example/3"));
        let args = std::fs::read_to_string(tmp.path().join("args")).unwrap();
        assert!(
            args.contains("--fail --location --proto =http,https"),
            "{args}"
        );
        assert!(args.contains("--max-filesize 5"), "{args}");
        assert!(!std::path::Path::new("/tmp/pwned").exists());
    }
}
