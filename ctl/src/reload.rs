//! Telling systemd about a changed spec: `systemctl daemon-reload` reruns the generator.

use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the spec is saved, but `systemctl daemon-reload` could not run: {0}; run it by hand")]
    Spawn(std::io::Error),
    #[error("the spec is saved, but `systemctl daemon-reload` failed ({0}); run it by hand")]
    Failed(std::process::ExitStatus),
}

/// Reloads systemd after a spec change unless `skip`; returns the one line to tell the operator.
pub fn daemon_reload(skip: bool) -> Result<&'static str, ReloadError> {
    if skip {
        return Ok(
            "not reloading systemd (--no-reload); run `systemctl daemon-reload` to apply the change",
        );
    }
    if !crate::systemd::systemd_running() {
        return Ok("systemd is not running; the change applies when it next starts");
    }
    let status = Command::new("systemctl")
        .arg("daemon-reload")
        .status()
        .map_err(ReloadError::Spawn)?;
    if status.success() {
        Ok("reloaded systemd (systemctl daemon-reload)")
    } else {
        Err(ReloadError::Failed(status))
    }
}
