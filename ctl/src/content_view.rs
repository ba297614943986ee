//! Content published since an instance started, for `status` and `list`: the layers of its
//! mount whose directory a build has replaced since (`left4me_overlay::replaced_layers`, from
//! the mount stamp). The running game keeps what it mounted; a restart mounts the new content
//! ("content update pending").

use std::path::Path;

use left4me_overlay::{InstanceRuntime, replaced_layers};

/// The layers (`overlays/NAME`) replaced since the running instance `name` mounted them; empty
/// when it is not running, or when the stamp cannot be read (not root).
pub fn pending_layers(state_dir: &Path, name: &str, running: bool) -> Vec<String> {
    if !running {
        return Vec::new();
    }
    InstanceRuntime::new(state_dir, name)
        .ok()
        .and_then(|runtime| replaced_layers(&runtime).ok())
        .unwrap_or_default()
        .iter()
        .map(|rel| rel.display().to_string())
        .collect()
}

/// `content update pending (overlays/a, overlays/b): a restart mounts it`, or `None`.
pub fn describe(pending: &[String]) -> Option<String> {
    (!pending.is_empty()).then(|| {
        format!(
            "content update pending ({}): a restart mounts it",
            pending.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_pending_when_stopped_or_unreadable() {
        assert!(pending_layers(Path::new("/nonexistent/state"), "coop1", true).is_empty());
        assert!(pending_layers(Path::new("/nonexistent/state"), "coop1", false).is_empty());
        assert_eq!(describe(&[]), None);
        assert_eq!(
            describe(&["overlays/camps".into()]).unwrap(),
            "content update pending (overlays/camps): a restart mounts it"
        );
    }
}
