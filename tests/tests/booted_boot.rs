//! End to end in a booted systemd (needs root): boot-time behaviour. Enabled instances come
//! back after a reboot with fresh mounts and a stopped one stays down; a broken spec among
//! good ones is skipped by the generator without stopping the rest.

mod booted_support;

use std::time::Instant;

use anyhow::{Result, ensure};
use booted_support::*;
use left4me_tests::require_root;

#[test]
fn booted_reboot_brings_back_the_enabled_instances_only() -> Result<()> {
    require_root();
    let mut sys = boot(builder("e2e-reboot"))?;
    for (name, port) in [("up1", "27050"), ("up2", "27051"), ("down", "27052")] {
        ctl_ok(&sys, &["create", name, "--port", port])?;
    }
    ctl_ok(&sys, &["start", "up1", "up2", "down"])?;
    ctl_ok(&sys, &["stop", "down"])?;
    for name in ["up1", "up2"] {
        ensure!(prop(&sys, name, "UnitFileState")? == "enabled");
    }
    ensure!(prop(&sys, "down", "UnitFileState")? == "disabled");

    let started = Instant::now();
    // Boot completes only once the enabled instances' start jobs are done: `running` (not
    // `degraded`) means they answered.
    sys.reboot()?;
    eprintln!(
        "rebooted in {:.1}s (boot {:.1}s)",
        started.elapsed().as_secs_f64(),
        sys.boot_duration().as_secs_f64()
    );
    for name in ["up1", "up2"] {
        ensure!(
            state(&sys, name)? == "active/running",
            "{name} after reboot"
        );
        let mounts = merged_mounts(&sys, name)?;
        ensure!(mounts.len() == 1, "{name}: mounts {mounts:?}");
        // Same upper dir (the state dir survives), new game process, one mount.
        let log =
            std::fs::read_to_string(runtime_path(&sys, name, "upper/left4dead2/standin.log"))?;
        ensure!(
            log.matches("srcds-standin pid=").count() == 2,
            "{name} did not run twice on the same upper dir:\n{log}"
        );
        ensure!(!prop(&sys, name, "StatusText")?.is_empty());
    }
    ensure!(state(&sys, "down")? == "inactive/dead");
    ensure!(merged_mounts(&sys, "down")?.is_empty());
    let list = ctl_ok(&sys, &["list"])?;
    eprintln!("{list}");
    ensure!(
        list.lines().any(|l| l.starts_with("down ")
            && l.contains(" inactive ")
            && l.contains(" disabled ")),
        "{list}"
    );

    finish(sys, &["up1", "up2"])
}

#[test]
fn booted_a_broken_spec_does_not_stop_the_good_ones() -> Result<()> {
    require_root();
    let sys = boot(builder("e2e-broken"))?;
    ctl_ok(&sys, &["create", "good1", "--port", "27060"])?;
    ctl_ok(&sys, &["create", "good2", "--port", "27061"])?;
    // Written by hand, as left4mectl would refuse it. A name unique to this test: the kernel
    // log (where the generator reports) is shared with every system on the machine.
    let broken = "brokenq7";
    write(
        &sys,
        &format!("/etc/left4me/instances/{broken}.toml"),
        "port = 27062\nmaps = \"c2m1_highway\"\n",
    )?;

    let reload = sys.run(["systemctl", "daemon-reload"])?;
    ensure!(reload.status.success(), "daemon-reload: {}", text(&reload));
    let generated = sys.run_stdout(["ls", "/run/systemd/generator"])?;
    ensure!(
        generated.contains("left4me-server@good1.service.d")
            && generated.contains("left4me-server@good2.service.d")
            && !generated.contains(broken),
        "generator output: {generated}"
    );
    let kmsg = sys.run_stdout(["journalctl", "--no-pager", "-k", "-t", "left4me-generator"])?;
    ensure!(
        kmsg.contains(&format!("{broken}.toml")) && kmsg.contains("maps"),
        "the generator did not report {broken}:\n{kmsg}"
    );

    let out = ctl_ok(&sys, &["start", "good1", "good2"])?;
    ensure!(
        out.contains("started good1") && out.contains("started good2"),
        "{out}"
    );
    let list = ctl_ok(&sys, &["list"])?;
    eprintln!("{list}");
    ensure!(
        list.lines().any(|l| l.starts_with(broken)
            && l.contains(" error ")
            && l.contains("spec error: key 'maps': unknown key")),
        "{list}"
    );

    // left4mectl refuses to start it, saying why.
    let refused = ctl_status(&sys, &["start", broken], 2)?;
    ensure!(
        refused.contains(&format!("not starting {broken}: its spec is invalid"))
            && refused.contains("key 'maps'"),
        "{refused}"
    );
    // Started anyway (as at boot when enabled): prepare refuses, the reason is in the journal
    // and in `status`.
    let started = sys.run(["systemctl", "start", &unit(broken)])?;
    ensure!(!started.status.success(), "the broken spec started");
    let journal = sys.journal(Some(&unit(broken)));
    ensure!(
        journal.contains(&format!("left4me-supervisor prepare {broken}: error: "))
            && journal.contains("key 'maps': unknown key"),
        "{journal}"
    );
    let status = ctl_ok(&sys, &["status", broken])?;
    eprintln!("{status}");
    ensure!(
        status.contains("spec       error: key 'maps': unknown key")
            && status.contains(&format!("prepare {broken}: error: "))
            && (status.contains("state      activating (auto-restart)")
                || status.contains("state      failed")),
        "{status}"
    );
    ctl_ok(&sys, &["stop", broken])?;
    for name in ["good1", "good2"] {
        ensure!(state(&sys, name)? == "active/running", "{name}");
    }

    finish(sys, &["good1", "good2"])
}
