//! sd_notify(3) without libsystemd: datagrams to `$NOTIFY_SOCKET`.
//!
//! Small wrappers in the style of zincati — [`Notifier::ready`], [`Notifier::status`],
//! [`Notifier::watchdog`], [`Notifier::extend_timeout`], [`Notifier::stopping`] — so the run
//! loop reads as what it tells systemd. Outside a `Type=notify` unit every call is a no-op.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` and `$WATCHDOG_USEC`/`$WATCHDOG_PID` (the game server must not
    /// inherit them: see [`NOTIFY_ENV`]).
    pub fn from_env() -> io::Result<Self> {
        let path = std::env::var_os("NOTIFY_SOCKET");
        let watchdog = watchdog_from_env();
        let socket = match path {
            None => None,
            Some(path) => {
                let bytes = path.as_encoded_bytes();
                let addr = match bytes.strip_prefix(b"@") {
                    Some(name) => SocketAddr::from_abstract_name(name)?,
                    None => SocketAddr::from_pathname(&path)?,
                };
                Some((UnixDatagram::unbound()?, addr))
            }
        };
        Ok(Notifier { socket, watchdog })
    }

    /// A notifier that tells nobody (tests, runs outside systemd).
    pub fn disabled() -> Self {
        Notifier {
            socket: None,
            watchdog: None,
        }
    }

    /// The watchdog interval systemd expects pings within, if it set one for us.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    fn send(&self, message: &str) {
        if let Some((socket, addr)) = &self.socket {
            // A lost notification is not worth dying for; systemd's timeouts catch the rest.
            if let Err(err) = socket.send_to_addr(message.as_bytes(), addr) {
                eprintln!("left4me-supervisor: cannot notify systemd: {err}");
            }
        }
    }

    /// `READY=1` with the status line that goes with it.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `STATUS=`: what `systemctl status` shows.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// `WATCHDOG=1`: the game answered a query just now.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// `EXTEND_TIMEOUT_USEC=`: still starting, allow this much more time from now.
    pub fn extend_timeout(&self, by: Duration) {
        self.send(&format!("EXTEND_TIMEOUT_USEC={}", by.as_micros()));
    }

    /// `STOPPING=1` with a final status line.
    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }
}

fn one_line(text: &str) -> String {
    text.replace('\n', " ")
}

fn watchdog_from_env() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok()? != std::process::id()
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// The variables the notifier reads, removed from the game server's environment.
pub const NOTIFY_ENV: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_an_abstract_socket() {
        let name = format!("left4me-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let notifier = Notifier {
            socket: Some((UnixDatagram::unbound().unwrap(), addr)),
            watchdog: None,
        };
        notifier.ready("c1m1_hotel, 0/8\nplayers");
        notifier.extend_timeout(Duration::from_secs(2));
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=c1m1_hotel, 0/8 players");
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"EXTEND_TIMEOUT_USEC=2000000");
    }

    #[test]
    fn disabled_notifier_is_silent() {
        let notifier = Notifier::disabled();
        notifier.ready("x");
        assert_eq!(notifier.watchdog_interval(), None);
    }
}
