//! Running a command with a deadline, collecting its output, checking its status.

use std::io::{self, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long the pipes may stay open after the command exited (a daemon it left
/// behind may hold them); whatever was read by then is the output.
const PIPE_GRACE: Duration = Duration::from_millis(500);

/// Errors of running a command.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("waiting for `{command}`: {source}")]
    Wait {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "`{command}` did not finish within {timeout:?} and was killed\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
    )]
    Timeout {
        command: String,
        timeout: Duration,
        stdout: String,
        stderr: String,
    },
    #[error("`{command}` failed ({status})\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}")]
    Failed {
        command: String,
        status: ExitStatus,
        stdout: String,
        stderr: String,
    },
}

/// The command line of `command`, for messages.
pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|arg| {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'') {
                format!("'{}'", arg.replace('\'', r"'\''"))
            } else {
                arg.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `command` with stdin from /dev/null and returns its output; kills it
/// after `timeout`.
pub fn output_with_timeout(command: &mut Command, timeout: Duration) -> Result<Output, ExecError> {
    let described = describe(command);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ExecError::Spawn {
            command: described.clone(),
            source,
        })?;
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());
    let wait = wait_with_deadline(&mut child, Instant::now() + timeout);
    let status = match wait {
        Ok(Some(status)) => status,
        Ok(None) => {
            // Killing an already exited child fails harmlessly; wait reaps it.
            let _ = child.kill();
            let _ = child.wait();
            return Err(ExecError::Timeout {
                command: described,
                timeout,
                stdout: stdout.finish(),
                stderr: stderr.finish(),
            });
        }
        Err(source) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ExecError::Wait {
                command: described,
                source,
            });
        }
    };
    Ok(Output {
        status,
        stdout: stdout.finish().into_bytes(),
        stderr: stderr.finish().into_bytes(),
    })
}

/// Turns a non-zero exit into [`ExecError::Failed`] with both output streams.
pub fn check_success(command: &str, output: Output) -> Result<Output, ExecError> {
    if output.status.success() {
        Ok(output)
    } else {
        Err(ExecError::Failed {
            command: command.to_owned(),
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// Polls `child` until it exits or `deadline` passes (`Ok(None)`).
pub fn wait_with_deadline(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// A pipe drained by a background thread.
struct Collector {
    buffer: Arc<Mutex<Vec<u8>>>,
    reader: Option<thread::JoinHandle<()>>,
}

fn collect(pipe: Option<impl Read + Send + 'static>) -> Collector {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let reader = pipe.map(|mut pipe| {
        let buffer = Arc::clone(&buffer);
        thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                buffer
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]);
            }
        })
    });
    Collector { buffer, reader }
}

impl Collector {
    /// What was read: everything, unless the pipe is still held open by a
    /// leftover process after [`PIPE_GRACE`].
    fn finish(mut self) -> String {
        if let Some(reader) = self.reader.take() {
            let deadline = Instant::now() + PIPE_GRACE;
            while !reader.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(2));
            }
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
        let bytes = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_output_and_status() {
        let output = output_with_timeout(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
        assert_eq!(output.status.code(), Some(3));
        let error = check_success("sh", output).unwrap_err().to_string();
        assert!(
            error.contains("out\n") && error.contains("err\n"),
            "{error}"
        );
    }

    #[test]
    fn kills_after_timeout() {
        let started = Instant::now();
        let error = output_with_timeout(
            Command::new("sh").args(["-c", "echo partial; exec sleep 30"]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        match error {
            ExecError::Timeout { stdout, .. } => assert_eq!(stdout, "partial\n"),
            other => panic!("expected a timeout, got {other}"),
        }
    }

    #[test]
    fn a_leftover_daemon_does_not_block() {
        let started = Instant::now();
        let output = output_with_timeout(
            Command::new("sh").args(["-c", "echo hi; sleep 2 & exit 0"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(started.elapsed() < Duration::from_millis(1800));
        assert_eq!(output.stdout, b"hi\n");
    }

    #[test]
    fn describes_with_quotes() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo 'x'", ""]);
        assert_eq!(describe(&command), r#"sh -c 'echo '\''x'\''' ''"#);
    }
}
