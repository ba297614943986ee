//! End to end in a booted systemd (needs root): an instance made with `left4mectl create` and
//! started by systemd answers `left4mectl rcon` with the password `create` made and `prepare`
//! staged — one-shot (`status`), a reply spanning several packets (`cvarlist`), `changelevel`
//! seen by `status` and A2S, the interactive console on a pseudo-terminal (typing, Ctrl-C that
//! never reaches the server, Ctrl-D), a live `rcon-password --rotate`, a wrong kept password —
//! and the password in none of the journal, the game's command line or `render`.

mod booted_support;

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt as _;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use booted_support::*;
use left4me_a2s::A2sClient;
use left4me_tests::{BootedSystem, require_root};

/// A program running on a pseudo-terminal, as on an operator's terminal: what it writes is
/// collected by a thread; keys are typed into the master side.
struct OnPty {
    master: File,
    output: Arc<Mutex<Vec<u8>>>,
    child: Child,
}

impl OnPty {
    fn spawn(mut command: Command) -> Result<OnPty> {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let name = ptsname(&master, Vec::new())?;
        rustix::termios::tcsetwinsize(
            &master,
            rustix::termios::Winsize {
                ws_row: 24,
                ws_col: 100,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )?;
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
            .open(name.to_str()?)?;
        command
            .stdin(slave.try_clone()?)
            .stdout(slave.try_clone()?)
            .stderr(slave);
        let child = command.spawn()?;
        drop(command); // closes our copies of the slave side
        let master = File::from(master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone()?;
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the program closed the terminal.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Ok(OnPty {
            master,
            output,
            child,
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until the output holds `needle` `times` times.
    fn expect(&self, needle: &str, times: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.text().matches(needle).count() < times {
            if Instant::now() > deadline {
                bail!(
                    "the console did not show {needle:?} {times} times:\n{}",
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn type_keys(&mut self, keys: &str) -> Result<()> {
        self.master.write_all(keys.as_bytes())?;
        Ok(())
    }
}

impl Drop for OnPty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The map the game reports to A2S_INFO, asked from inside the system's network namespace.
fn a2s_map(sys: &BootedSystem) -> Result<String> {
    Ok(sys.in_netns(|| {
        let client = A2sClient::connect(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 27015)),
            Duration::from_secs(2),
        )?;
        Ok::<_, left4me_a2s::A2sError>(client.info()?.map)
    })??)
}

#[test]
fn booted_rcon_one_shot_console_changelevel_rotate_and_wrong_password() -> Result<()> {
    require_root();
    let sys = boot(builder("e2e-rcon"))?;
    ctl_ok(&sys, &["create", "coop1", "--port", "27015"])?;
    let password = ctl_ok(&sys, &["rcon-password", "coop1"])?
        .trim_end()
        .to_owned();
    ensure!(password.len() == 32, "password {password:?}");
    ctl_ok(&sys, &["start", "coop1"])?;

    // One command: its reply, exit 0.
    let status = ctl_ok(&sys, &["rcon", "coop1", "status"])?;
    eprintln!("{status}");
    ensure!(
        status.starts_with("hostname: ") && status.contains("map     : c1m1_hotel\n"),
        "{status}"
    );

    // A reply over several packets comes back whole.
    let cvarlist = ctl_ok(&sys, &["rcon", "coop1", "cvarlist"])?;
    ensure!(
        cvarlist.len() > 4096 && cvarlist.contains("total convars/concommands"),
        "cvarlist: {} bytes:\n{cvarlist}",
        cvarlist.len()
    );

    // changelevel: RCON's status, A2S and left4mectl status (the supervisor's queries) follow.
    ctl_ok(&sys, &["rcon", "coop1", "changelevel", "c2m1_highway"])?;
    let status = ctl_ok(&sys, &["rcon", "coop1", "status"])?;
    ensure!(status.contains("map     : c2m1_highway\n"), "{status}");
    ensure!(
        a2s_map(&sys)? == "c2m1_highway",
        "A2S map after changelevel"
    );
    wait_for(
        &sys,
        "coop1",
        "left4mectl status shows the new map",
        Duration::from_secs(30),
        || {
            let out = ctl_ok(&sys, &["status", "coop1"])?;
            Ok(out.contains("status     c2m1_highway,").then_some(()))
        },
    )?;

    // The interactive console on a terminal: a command, Ctrl-C on a half-typed `quit` (the
    // line is cleared, nothing is sent), Ctrl-D leaves.
    let mut command = sys.command(["left4mectl", "rcon", "coop1"]);
    command.env("TERM", "xterm");
    let mut console = OnPty::spawn(command)?;
    console.expect("coop1> ", 1)?;
    console.type_keys("echo typed on a terminal\r")?;
    console.expect("typed on a terminal\r\n", 1)?;
    console.expect("coop1> ", 2)?;
    console.type_keys("quit")?;
    console.expect("quit", 1)?;
    console.type_keys("\x03")?;
    console.expect("coop1> ", 3)?;
    console.type_keys("\x04")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = console.child.try_wait()? {
            break status;
        }
        ensure!(
            Instant::now() < deadline,
            "Ctrl-D did not end the console:\n{}",
            console.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    ensure!(exit.success(), "console exit {exit}:\n{}", console.text());
    ensure!(
        state(&sys, "coop1")? == "active/running",
        "Ctrl-C reached the server"
    );
    ctl_ok(&sys, &["rcon", "coop1", "echo", "still", "up"])?;
    let history = sys.run_stdout(["cat", "/root/.local/state/left4me/rcon_history"])?;
    ensure!(
        history.contains("echo typed on a terminal") && !history.contains("quit"),
        "history:\n{history}"
    );
    report(&format!(
        "interactive console through a pty:\n{}",
        console.text()
    ));

    // Rotation on the running server: set live, checked, and used from then on.
    let rotated = ctl_ok(&sys, &["rcon-password", "coop1", "--rotate"])?;
    ensure!(
        rotated.contains("set it on the running server (checked: the new one authenticates)"),
        "{rotated}"
    );
    let new_password = ctl_ok(&sys, &["rcon-password", "coop1"])?
        .trim_end()
        .to_owned();
    ensure!(new_password != password && new_password.len() == 32);
    ctl_ok(&sys, &["rcon", "coop1", "status"])?;

    // The passwords are in no journal line, not on the game's command line, not in render.
    let game = game_pid(&sys, "coop1")?;
    let argv = sys.run_stdout(["cat", &format!("/proc/{game}/cmdline")])?;
    let render = ctl_ok(&sys, &["render", "coop1"])?;
    ensure!(render.contains("\nexec left4me_rcon\n"), "{render}");
    let journal = sys.run_stdout(["journalctl", "--no-pager", "-o", "cat"])?;
    for secret in [&password, &new_password] {
        ensure!(
            !argv.contains(secret.as_str()),
            "password in the game's argv"
        );
        ensure!(!render.contains(secret.as_str()), "password in render");
        ensure!(
            !journal.contains(secret.as_str()),
            "password in the journal"
        );
    }

    // A wrong kept password: a clear error, exit 1, and the server runs on.
    sys.run_ok([
        "sh",
        "-c",
        "printf 'NotTheRightPassword\\n' > /var/lib/left4me-admin/rcon/coop1",
    ])?;
    let wrong = ctl_status(&sys, &["rcon", "coop1", "status"], 1)?;
    ensure!(
        wrong.contains("error: instance coop1 refused its RCON password")
            && wrong.contains("left4mectl restart coop1"),
        "{wrong}"
    );
    ensure!(state(&sys, "coop1")? == "active/running");

    // Rotating needs the running server to take the new one: refused, nothing changed.
    let refused = ctl_status(&sys, &["rcon-password", "coop1", "--rotate"], 1)?;
    ensure!(refused.contains("was not rotated"), "{refused}");
    // A restart stages the kept password: it works again.
    ctl_ok(&sys, &["restart", "coop1"])?;
    ctl_ok(&sys, &["rcon", "coop1", "status"]).context("after the restart")?;
    Ok(())
}
