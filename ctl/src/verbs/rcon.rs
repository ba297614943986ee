//! The live-console verbs: `left4mectl rcon NAME [COMMAND…]` and `left4mectl rcon-password
//! NAME [--rotate]`, clients of `left4me-rcon` (the protocol) and `left4me_statedir::secrets`
//! (the passwords root keeps).
//!
//! The instance's RCON address is `127.0.0.1:<port>`: srcds listens for RCON on TCP on its game
//! port. The password is read as root from root's admin dir and is handed only to the RCON
//! connection: never printed (except by `rcon-password`, which exists to print it), never put
//! on a command line.

use std::io::{BufRead as _, IsTerminal as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use left4me_rcon::{Client, RconError};
use left4me_statedir::secrets::{self, SecretError};
use left4me_statedir::{Lock, Subject};

use crate::Ctx;
use crate::change::{SpecKind, check_spec_name};
use crate::console;
use crate::error::{EXIT_OK, UsageError};
use crate::game_view::is_running;
use crate::output::emit;
use crate::systemd::{self, systemd_running, unit_name};
use crate::verbs::instance::valid_instance;

/// An instance's RCON endpoint and credentials, resolved once per verb.
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    password: String,
    pub(crate) timeout: Duration,
    /// Where the password is kept (for messages).
    file: PathBuf,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// The instance `name`'s address and kept password; refuses a non-root caller first.
    pub(crate) fn resolve(
        ctx: &Ctx,
        verb: &str,
        name: &str,
        timeout: Duration,
    ) -> anyhow::Result<Target> {
        check_spec_name(SpecKind::Instance, name)?;
        require_root(verb)?;
        let catalog = ctx.catalog()?;
        let instance = valid_instance(&catalog, name)?;
        let admin = &catalog.layout.admin_dir;
        Ok(Target {
            name: name.to_owned(),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, instance.port)),
            password: secrets::rcon_password(admin, name)?,
            timeout,
            file: secrets::rcon_password_file(admin, name),
        })
    }

    /// The same instance, with another password.
    fn with_password(&self, password: String) -> Target {
        Target {
            name: self.name.clone(),
            addr: self.addr,
            password,
            timeout: self.timeout,
            file: self.file.clone(),
        }
    }

    /// An authenticated connection, or an error saying why in the operator's terms.
    pub(crate) fn connect(&self) -> anyhow::Result<Client> {
        Client::connect(self.addr, &self.password, self.timeout).map_err(|e| self.explain(e))
    }

    /// `err` said in the operator's terms: what it means for this instance and what to do.
    pub(crate) fn explain(&self, err: RconError) -> anyhow::Error {
        let name = &self.name;
        let addr = self.addr;
        match &err {
            RconError::Connect { source, .. } => anyhow::anyhow!(
                "instance {name} is not running{}: nothing answers RCON on {addr} ({source}); \
                 start it with `left4mectl start {name}` (a server still loading its map \
                 answers a few seconds later)",
                unit_state(name)
            ),
            RconError::WrongPassword { .. } => anyhow::anyhow!(
                "instance {name} refused its RCON password: the running server has another one \
                 than {} holds; restart it (`left4mectl restart {name}`) to stage the kept \
                 password, and check that its config does not set rcon_password",
                self.file.display()
            ),
            RconError::Timeout { .. } => anyhow::anyhow!(
                "instance {name} timed out: {err}; it may be busy changing level or hung: try \
                 again, or with a longer --timeout"
            ),
            _ => anyhow::anyhow!("instance {name}: {err}"),
        }
    }
}

/// The unit's state in parentheses when systemd can say it, for "not running" messages.
fn unit_state(name: &str) -> String {
    if !systemd_running() {
        return String::new();
    }
    match systemd::show_one(&unit_name(name)) {
        Ok(state) => format!(" ({})", state.describe()),
        Err(_) => String::new(),
    }
}

/// The unit's state when systemd runs it (or is starting it): its game was staged a password
/// already, even if it does not answer yet.
fn starting_state(name: &str) -> Option<String> {
    if !systemd_running() {
        return None;
    }
    let state = systemd::show_one(&unit_name(name)).ok()?;
    is_running(Some(&state.active_state)).then(|| state.describe())
}

fn require_root(verb: &str) -> Result<(), UsageError> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err(UsageError::new(format!(
            "`left4mectl {verb}` reads the instance's RCON password, which only root may read: \
             run it as root (sudo)"
        )))
    }
}

/// `rcon NAME [COMMAND…] [--timeout SPAN]`.
pub fn rcon(ctx: &Ctx, name: &str, command: &[String], timeout: Duration) -> anyhow::Result<u8> {
    let target = Target::resolve(ctx, "rcon", name, timeout)?;
    if !command.is_empty() {
        let mut client = target.connect()?;
        let reply = client
            .exec(&command.join(" "))
            .map_err(|e| target.explain(e))?;
        emit(&with_newline(reply))?;
        return Ok(EXIT_OK);
    }
    if std::io::stdin().is_terminal() {
        return console::run(&target);
    }
    let mut client = target.connect()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let reply = client.exec(line).map_err(|e| target.explain(e))?;
        emit(&with_newline(reply))?;
    }
    Ok(EXIT_OK)
}

/// `reply` ending in a newline, unless it is empty.
pub(crate) fn with_newline(mut reply: String) -> String {
    if !reply.is_empty() && !reply.ends_with('\n') {
        reply.push('\n');
    }
    reply
}

/// `rcon-password NAME [--rotate] [--timeout SPAN]`.
pub fn rcon_password(ctx: &Ctx, name: &str, rotate: bool, timeout: Duration) -> anyhow::Result<u8> {
    const VERB: &str = "rcon-password";
    if !rotate {
        let target = Target::resolve(ctx, VERB, name, timeout)?;
        emit(&format!("{}\n", target.password))?;
        return Ok(EXIT_OK);
    }
    check_spec_name(SpecKind::Instance, name)?;
    require_root(VERB)?;
    // Under the instance's lock, so a start (`prepare`, which stages the password) waits.
    let catalog = ctx.catalog()?;
    let admin = &catalog.layout.admin_dir;
    let _lock = Lock::take(&catalog.layout.locks_dir(), Subject::Instance(name), true)?;
    let target = match Target::resolve(ctx, VERB, name, timeout) {
        Ok(target) => target,
        // Nothing kept yet (a hand-written spec never started): rotating makes the first one.
        Err(e) if is_missing(&e) => {
            secrets::rotate_rcon_password(admin, name)?;
            emit(&format!(
                "made the RCON password of {name} ({}); its next start stages it\n",
                secrets::rcon_password_file(admin, name).display()
            ))?;
            return Ok(EXIT_OK);
        }
        Err(e) => return Err(e),
    };
    // The live server, reached with the old password before anything changes.
    let live = match Client::connect(target.addr, &target.password, timeout) {
        Ok(client) => Some(client),
        Err(RconError::Connect { .. }) => {
            if let Some(state) = starting_state(name) {
                return Err(UsageError::new(format!(
                    "the RCON password of {name} was not rotated: its unit is {state} but the \
                     game does not answer RCON yet (it would keep the old password it was \
                     started with); try again once it answers (`left4mectl status {name}`)"
                ))
                .into());
            }
            None
        }
        Err(e) => {
            return Err(target.explain(e).context(format!(
                "the RCON password of {name} was not rotated: the running server must take \
                 the new one, and it could not be reached with the old one"
            )));
        }
    };
    let new = target.with_password(secrets::rotate_rcon_password(admin, name)?);
    let file = new.file.display();
    let Some(mut client) = live else {
        emit(&format!(
            "rotated the RCON password of {name} ({file}); it is not running: its next start \
             stages the new one\n"
        ))?;
        return Ok(EXIT_OK);
    };
    match set_live(&mut client, &new) {
        Ok(()) => {
            emit(&format!(
                "rotated the RCON password of {name} ({file}) and set it on the running server \
                 (checked: the new one authenticates)\n"
            ))?;
            Ok(EXIT_OK)
        }
        Err(err) => Err(err.context(format!(
            "rotated the RCON password of {name} ({file}) but could not set it live: restart \
             the instance (`left4mectl restart {name}`) to stage it"
        ))),
    }
}

/// Whether `err` is "no password kept yet".
fn is_missing(err: &anyhow::Error) -> bool {
    err.downcast_ref::<SecretError>()
        .is_some_and(SecretError::is_missing)
}

/// Sets `new`'s password on the server `client` is authenticated to, then checks that a fresh
/// connection authenticates with it. srcds logs each RCON command (`rcon from "…": command
/// "…"`) while `sv_rcon_log` is 1, so logging is switched off around the one command that holds
/// the password and put back as it was.
fn set_live(client: &mut Client, new: &Target) -> anyhow::Result<()> {
    let was_logging = client
        .exec("sv_rcon_log")
        .map_err(|e| new.explain(e))
        .map(|reply| cvar_value(&reply, "sv_rcon_log"))?;
    if was_logging.is_some() {
        client.exec("sv_rcon_log 0").map_err(|e| new.explain(e))?;
    }
    match client.exec(&format!("rcon_password \"{}\"", new.password)) {
        // A server may drop connections authenticated with the old password.
        Ok(_) | Err(RconError::Closed { .. }) => {}
        Err(e) => return Err(new.explain(e)),
    }
    let mut fresh = new.connect()?;
    if let Some(value) = was_logging {
        fresh
            .exec(&format!("sv_rcon_log {value}"))
            .map_err(|e| new.explain(e))?;
    }
    Ok(())
}

/// The value srcds prints for `cvar` (`"sv_rcon_log" = "1" ( def. "1" )`), if it printed one.
fn cvar_value(reply: &str, cvar: &str) -> Option<String> {
    let rest = reply
        .trim_start()
        .strip_prefix(&format!("\"{cvar}\" = \""))?;
    let value = &rest[..rest.find('"')?];
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        .then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvar_values_are_read_from_srcds_replies() {
        assert_eq!(
            cvar_value(
                "\"sv_rcon_log\" = \"1\" ( def. \"1\" )\n - Enable/disable rcon logging.\n",
                "sv_rcon_log"
            )
            .as_deref(),
            Some("1")
        );
        assert_eq!(
            cvar_value("Unknown command \"sv_rcon_log\"\n", "sv_rcon_log"),
            None
        );
        assert_eq!(
            cvar_value("\"sv_rcon_log\" = \"1;quit\"", "sv_rcon_log"),
            None
        );
    }

    #[test]
    fn replies_end_with_one_newline() {
        assert_eq!(with_newline("a".into()), "a\n");
        assert_eq!(with_newline("a\n".into()), "a\n");
        assert_eq!(with_newline(String::new()), "");
    }
}
