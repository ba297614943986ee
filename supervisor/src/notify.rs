//! sd_notify(3) messages to systemd, sent with the `sd-notify` crate.
//!
//! Small wrappers in the style of zincati — [`Notifier::ready`], [`Notifier::status`],
//! [`Notifier::watchdog`], [`Notifier::extend_timeout`], [`Notifier::stopping`] — so the run
//! loop reads as what it tells systemd. Outside a `Type=notify` unit (no `$NOTIFY_SOCKET`) every
//! call is a no-op.
//!
//! `sd-notify` reads `$NOTIFY_SOCKET` on every call, so the supervisor keeps the variables in
//! its own environment and removes them from the game server's instead (see [`NOTIFY_ENV`]):
//! with `NotifyAccess=main` systemd would ignore the game's messages anyway, but it must not
//! even try. `sd-notify` 0.5 connects to a path only: an abstract `@name` socket (which systemd
//! as PID 1 never uses) is not reached.

use std::time::Duration;

use sd_notify::NotifyState;

/// The variables the notifier reads, removed from the game server's environment.
pub const NOTIFY_ENV: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// Whether to tell the service manager anything, and the watchdog interval it set.
#[derive(Debug)]
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Enabled when `$NOTIFY_SOCKET` is set; the watchdog interval from `$WATCHDOG_USEC` when
    /// `$WATCHDOG_PID` is unset or names this process.
    pub fn from_env() -> Self {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: sd_notify::watchdog_enabled().filter(|interval| !interval.is_zero()),
        }
    }

    /// A notifier that tells nobody (tests, runs outside systemd).
    pub fn disabled() -> Self {
        Notifier {
            enabled: false,
            watchdog: None,
        }
    }

    /// The watchdog interval systemd expects pings within, if it set one for us.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        // A lost notification is not worth dying for; systemd's timeouts catch the rest.
        if let Err(err) = sd_notify::notify(states) {
            log::warn!("left4me-supervisor: cannot notify systemd: {err}");
        }
    }

    /// `READY=1` with the status line that goes with it.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(&one_line(status))]);
    }

    /// `STATUS=`: what `systemctl status` shows.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(&one_line(status))]);
    }

    /// `WATCHDOG=1`: the game answered a query just now.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// `EXTEND_TIMEOUT_USEC=`: still starting, allow this much more time from now.
    pub fn extend_timeout(&self, by: Duration) {
        let usec = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
        self.send(&[NotifyState::ExtendTimeoutUsec(usec)]);
    }

    /// `STOPPING=1` with a final status line.
    pub fn stopping(&self, status: &str) {
        self.send(&[
            NotifyState::Stopping,
            NotifyState::Status(&one_line(status)),
        ]);
    }
}

/// A status line cannot span lines: a newline would start another assignment.
fn one_line(text: &str) -> String {
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_notifier_is_silent() {
        let notifier = Notifier::disabled();
        notifier.ready("x");
        assert_eq!(notifier.watchdog_interval(), None);
    }

    #[test]
    fn status_lines_stay_one_line() {
        assert_eq!(
            one_line("c1m1_hotel, 0/8\nplayers"),
            "c1m1_hotel, 0/8 players"
        );
    }
}
