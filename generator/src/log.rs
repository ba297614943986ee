//! Logging for a generator: `/dev/kmsg` when systemd runs us (at boot and on every
//! daemon-reload, when there is no journal to read stderr yet), stderr otherwise.

use std::fs::File;
use std::io::Write;

/// Where log lines go. `Memory` collects them for tests.
#[derive(Debug)]
pub enum Logger {
    Kmsg(File),
    Stderr,
    Memory(Vec<String>),
}

const TAG: &str = "left4me-generator";

impl Logger {
    /// `/dev/kmsg` when started by the service manager (it sets `$SYSTEMD_SCOPE` for
    /// generators) and kmsg can be opened; stderr otherwise.
    pub fn for_environment() -> Self {
        if std::env::var_os("SYSTEMD_SCOPE").is_some()
            && let Ok(kmsg) = File::options().write(true).open("/dev/kmsg")
        {
            return Logger::Kmsg(kmsg);
        }
        Logger::Stderr
    }

    pub fn error(&mut self, message: &str) {
        self.log(3, message);
    }

    pub fn warning(&mut self, message: &str) {
        self.log(4, message);
    }

    fn log(&mut self, priority: u8, message: &str) {
        match self {
            // One write per record: kmsg takes each write(2) as one message.
            Logger::Kmsg(kmsg) => {
                let line = format!("<{priority}>{TAG}[{}]: {message}\n", std::process::id());
                let _ = kmsg.write_all(line.as_bytes());
            }
            Logger::Stderr => eprintln!("{TAG}: {message}"),
            Logger::Memory(lines) => lines.push(message.to_owned()),
        }
    }
}
