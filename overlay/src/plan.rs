//! The mount plan: which directories an instance's overlay is made of.
//!
//! An [`InstanceRuntime`] is where one instance's overlay lives (the state dir and
//! `runtime/NAME/{upper,work,merged}`, laid out by [`left4me_contract::RuntimeDirs`]): all that
//! unmounting needs. A [`MountPlan`] adds the layers and mount flags: all that mounting needs.
//! Both are plain data; computing them does no I/O. The paths they hold are checked again, for
//! real, when the plan is applied (see [`crate::resolve`] and [`crate::dirs`]).

use std::fmt;
use std::path::{Component, Path, PathBuf};

pub use left4me_contract::{LAYER_ROOTS, MAX_LAYERS, RuntimeDirs};

/// The owner of the files and directories the game may write (the game user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Mount flags of the merged tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MountOptions {
    /// `nosuid`: set-user-ID bits in the game tree are ignored.
    pub nosuid: bool,
    /// `nodev`: device nodes in the game tree cannot be opened.
    pub nodev: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self {
            nosuid: true,
            nodev: true,
        }
    }
}

impl MountOptions {
    /// The flags that are set, said in another vocabulary: `nosuid` stands for the `nosuid` flag
    /// and `nodev` for the `nodev` one (mount(2) flags, mount attributes, names), collected.
    pub fn pick<T: FromIterator<F>, F>(self, nosuid: F, nodev: F) -> T {
        [(self.nosuid, nosuid), (self.nodev, nodev)]
            .into_iter()
            .filter_map(|(set, flag)| set.then_some(flag))
            .collect()
    }
}

impl fmt::Display for MountOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags: Vec<&str> = self.pick("nosuid", "nodev");
        if flags.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&flags.join(","))
        }
    }
}

/// Where one instance's overlay lives: everything unmounting needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRuntime {
    /// The instance name (validated: `^[a-z0-9][a-z0-9_-]{0,63}$`).
    pub name: String,
    /// The state dir, absolute (`/var/lib/left4me` by default).
    pub state_dir: PathBuf,
    /// `runtime/NAME` (root-owned) and its `upper` (the instance's writable layer, owned by the
    /// game user), `work` (overlayfs' work dir) and `merged` (where the game tree is mounted).
    pub dirs: RuntimeDirs,
}

impl InstanceRuntime {
    /// The runtime dirs of instance `name` under `state_dir`, after checking both. No I/O.
    pub fn new(state_dir: impl Into<PathBuf>, name: &str) -> Result<Self, PlanError> {
        let state_dir = state_dir.into();
        if !state_dir.is_absolute() {
            return Err(PlanError::StateDirNotAbsolute { path: state_dir });
        }
        validate_instance_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            dirs: RuntimeDirs::new(&state_dir, name),
            state_dir,
        })
    }
}

/// Everything needed to mount one instance's game tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    /// Where the overlay lives.
    pub runtime: InstanceRuntime,
    /// The layer paths relative to the state dir, in kernel order: topmost first.
    pub layers: Vec<PathBuf>,
    /// `layers` joined onto the state dir, same order.
    pub lowerdirs: Vec<PathBuf>,
    /// Mount flags.
    pub options: MountOptions,
}

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "state dir {path:?} is not an absolute path: set an absolute state_dir in host.toml or LEFT4ME_STATE_DIR"
    )]
    StateDirNotAbsolute { path: PathBuf },
    #[error("instance name {name:?} is invalid: a name must match ^[a-z0-9][a-z0-9_-]{{0,63}}$")]
    BadName { name: String },
    #[error("instance {name}: no layers: the plan needs at least `installation`")]
    NoLayers { name: String },
    #[error(
        "instance {name}: {count} layers exceed the kernel's overlay stack limit of {MAX_LAYERS}: use fewer overlays"
    )]
    TooManyLayers { name: String, count: usize },
    #[error("layer {path:?}: {reason}")]
    Layer { path: PathBuf, reason: &'static str },
    #[error("layer {path:?} is listed twice: list each overlay once")]
    DuplicateLayer { path: PathBuf },
}

/// Checks an instance name against the one rule of [`left4me_contract::name`] (again: the
/// callers checked it already, the mount code does not trust them).
pub fn validate_instance_name(name: &str) -> Result<(), PlanError> {
    if left4me_contract::is_valid_name(name) {
        Ok(())
    } else {
        Err(PlanError::BadName {
            name: name.to_owned(),
        })
    }
}

/// How a path fails to be a non-empty relative path of plain components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotPlain {
    Empty,
    Absolute,
    /// It has a `..` component.
    ParentDir,
    /// It has a `.` component.
    CurDir,
}

/// Checks that `path` is non-empty, relative and made of plain components only (no I/O).
pub(crate) fn check_plain(path: &Path) -> Result<(), NotPlain> {
    if path.as_os_str().is_empty() {
        return Err(NotPlain::Empty);
    }
    path.components().try_for_each(|component| match component {
        Component::Normal(_) => Ok(()),
        Component::RootDir | Component::Prefix(_) => Err(NotPlain::Absolute),
        Component::ParentDir => Err(NotPlain::ParentDir),
        Component::CurDir => Err(NotPlain::CurDir),
    })
}

/// Whether `path` is a game version's layer, `game/versions/ID/tree` with a valid ID
/// (`left4me_contract::game`): the layers the supervisor stacks below the overlays instead of
/// `installation`. Spec-level overlay paths never name `game/` (the spec crate refuses them).
pub fn is_game_layer(path: &Path) -> bool {
    use left4me_contract::game::{GAME, TREE, VERSIONS, is_valid_version_id};
    let parts: Vec<&str> = path
        .components()
        .map(|c| match c {
            Component::Normal(part) => part.to_str().unwrap_or("\0"),
            _ => "\0",
        })
        .collect();
    matches!(parts.as_slice(), [game, versions, id, tree]
        if *game == GAME && *versions == VERSIONS && *tree == TREE && is_valid_version_id(id))
}

/// Checks the shape of a layer path (no I/O): relative, plain components only, and beneath one of
/// [`LAYER_ROOTS`] or a game version's layer ([`is_game_layer`]).
pub fn validate_layer_path(path: &Path) -> Result<(), PlanError> {
    let refuse = |reason| {
        Err(PlanError::Layer {
            path: path.to_owned(),
            reason,
        })
    };
    if let Err(why) = check_plain(path) {
        return refuse(match why {
            NotPlain::Empty => "is empty",
            NotPlain::Absolute => "is absolute: layer paths are relative to the state dir",
            NotPlain::ParentDir => "contains `..`: name the directory directly",
            NotPlain::CurDir => "contains `.`: name the directory directly",
        });
    }
    if is_game_layer(path) {
        return Ok(());
    }
    let mut components = path.components();
    let first = components.next().map(|c| c.as_os_str());
    if !LAYER_ROOTS.iter().any(|root| first == Some(root.as_ref())) {
        return refuse("must be beneath installation/, overlays/ or workshop_cache/");
    }
    Ok(())
}

impl MountPlan {
    /// Computes the plan. `layers` are relative to `state_dir`, in kernel order (topmost first,
    /// the game last: `installation` or a version's chain `game/versions/ID/tree`, newest
    /// first), e.g. `["overlays/b", "overlays/a", "installation"]`. No I/O.
    pub fn new<P: AsRef<Path>>(
        state_dir: impl Into<PathBuf>,
        name: &str,
        layers: &[P],
    ) -> Result<Self, PlanError> {
        let runtime = InstanceRuntime::new(state_dir, name)?;
        if layers.is_empty() {
            return Err(PlanError::NoLayers {
                name: name.to_owned(),
            });
        }
        if layers.len() > MAX_LAYERS {
            return Err(PlanError::TooManyLayers {
                name: name.to_owned(),
                count: layers.len(),
            });
        }
        let mut rel = Vec::with_capacity(layers.len());
        for layer in layers {
            let layer = layer.as_ref();
            validate_layer_path(layer)?;
            // Normalise away trailing slashes and the like; the components are all plain.
            let layer: PathBuf = layer.components().collect();
            if rel.contains(&layer) {
                return Err(PlanError::DuplicateLayer { path: layer });
            }
            rel.push(layer);
        }
        let lowerdirs = rel.iter().map(|l| runtime.state_dir.join(l)).collect();
        Ok(Self {
            runtime,
            layers: rel,
            lowerdirs,
            options: MountOptions::default(),
        })
    }

    /// The instance name.
    pub fn name(&self) -> &str {
        &self.runtime.name
    }

    /// `runtime/NAME/{upper,work,merged}`.
    pub fn dirs(&self) -> &RuntimeDirs {
        &self.runtime.dirs
    }

    /// The mount source shown in `/proc/self/mountinfo`: `left4me:NAME:FINGERPRINT`, where the
    /// fingerprint (FNV-1a 64) covers every path and option of the plan. A mount carrying another
    /// source was made from another plan. The cleanup finds the mount by its prefix
    /// ([`crate::tagged::source_prefix`]) wherever it is.
    pub fn source(&self) -> String {
        format!(
            "{}{:016x}",
            crate::tagged::source_prefix(self.name()),
            self.fingerprint()
        )
    }

    fn fingerprint(&self) -> u64 {
        use std::os::unix::ffi::OsStrExt;
        let mut hash = Fnv64::new();
        let dirs = self.dirs();
        for path in [
            &self.runtime.state_dir,
            &dirs.upper,
            &dirs.work,
            &dirs.merged,
        ]
        .into_iter()
        .chain(&self.lowerdirs)
        {
            hash.write(path.as_os_str().as_bytes());
            hash.write(&[0]);
        }
        hash.write(self.options.to_string().as_bytes());
        hash.finish()
    }
}

struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_paths() {
        let plan = MountPlan::new(
            "/srv/l4m",
            "coop1",
            &["overlays/b", "overlays/a/", "installation"],
        )
        .unwrap();
        assert_eq!(
            plan.layers,
            [
                Path::new("overlays/b"),
                "overlays/a".as_ref(),
                "installation".as_ref()
            ]
        );
        assert_eq!(
            plan.lowerdirs,
            [
                Path::new("/srv/l4m/overlays/b"),
                "/srv/l4m/overlays/a".as_ref(),
                "/srv/l4m/installation".as_ref()
            ]
        );
        assert_eq!(plan.dirs().dir, Path::new("/srv/l4m/runtime/coop1"));
        assert_eq!(plan.dirs().upper, Path::new("/srv/l4m/runtime/coop1/upper"));
        assert_eq!(plan.dirs().work, Path::new("/srv/l4m/runtime/coop1/work"));
        assert_eq!(
            plan.dirs().merged,
            Path::new("/srv/l4m/runtime/coop1/merged")
        );
        assert_eq!(plan.name(), "coop1");
        assert_eq!(
            plan.options,
            MountOptions {
                nosuid: true,
                nodev: true
            }
        );
    }

    #[test]
    fn source_depends_on_every_path() {
        let a = MountPlan::new("/s", "x", &["overlays/a", "installation"]).unwrap();
        let b = MountPlan::new("/s", "x", &["overlays/b", "installation"]).unwrap();
        let c = MountPlan::new("/s", "x", &["installation", "overlays/a"]).unwrap();
        assert!(a.source().starts_with("left4me:x:"));
        assert_eq!(a.source(), a.clone().source());
        assert_ne!(a.source(), b.source());
        assert_ne!(a.source(), c.source());
        let mut d = a.clone();
        d.options.nodev = false;
        assert_ne!(a.source(), d.source());
    }

    #[test]
    fn source_is_stable() {
        // A mount made by an older build must still match: the fingerprint is part of the
        // contract with the mounts already on the host.
        let plan =
            MountPlan::new("/var/lib/left4me", "coop1", &["overlays/a", "installation"]).unwrap();
        assert_eq!(plan.source(), "left4me:coop1:3854c43a4a3e253c");
    }

    #[test]
    fn game_layers_sit_below_the_overlays() {
        let plan = MountPlan::new(
            "/s",
            "x",
            &["overlays/a", "game/versions/2/tree", "game/versions/1/tree"],
        )
        .unwrap();
        assert_eq!(plan.lowerdirs[1], Path::new("/s/game/versions/2/tree"));
        let installed = MountPlan::new("/s", "x", &["overlays/a", "installation"]).unwrap();
        assert_ne!(
            plan.source(),
            installed.source(),
            "a new layer list is a new mount"
        );
        assert!(is_game_layer(Path::new("game/versions/1/tree")));
        assert!(!is_game_layer(Path::new("game/versions/.new-0a/tree")));
    }

    #[test]
    fn runtime_refusals() {
        let e = InstanceRuntime::new("rel", "x").unwrap_err();
        assert!(matches!(e, PlanError::StateDirNotAbsolute { .. }), "{e}");
        let e = InstanceRuntime::new("/s", "../x").unwrap_err();
        assert!(matches!(e, PlanError::BadName { .. }), "{e}");
        let runtime = InstanceRuntime::new("/s", "x").unwrap();
        assert_eq!(runtime.dirs, RuntimeDirs::new(Path::new("/s"), "x"));
    }

    #[test]
    fn names() {
        for good in ["a", "coop1", "0", "a-b_c", &"a".repeat(64)] {
            validate_instance_name(good).unwrap();
        }
        for bad in [
            "",
            "A",
            "-a",
            "_a",
            "a.b",
            "a/b",
            "..",
            "a b",
            &"a".repeat(65),
            "é",
        ] {
            assert!(
                matches!(validate_instance_name(bad), Err(PlanError::BadName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn layer_paths_refused() {
        let cases = [
            ("", "is empty"),
            (
                "/etc",
                "is absolute: layer paths are relative to the state dir",
            ),
            (
                "overlays/../etc",
                "contains `..`: name the directory directly",
            ),
            (
                "../installation",
                "contains `..`: name the directory directly",
            ),
            ("./overlays/a", "contains `.`: name the directory directly"),
            (
                "game/versions/01/tree",
                "must be beneath installation/, overlays/ or workshop_cache/",
            ),
            (
                "game/versions/1",
                "must be beneath installation/, overlays/ or workshop_cache/",
            ),
            (
                "game/versions/1/tree/left4dead2",
                "must be beneath installation/, overlays/ or workshop_cache/",
            ),
            (
                "game/steamcmd",
                "must be beneath installation/, overlays/ or workshop_cache/",
            ),
            (
                "runtime/x/upper",
                "must be beneath installation/, overlays/ or workshop_cache/",
            ),
            (
                "overlaysx/a",
                "must be beneath installation/, overlays/ or workshop_cache/",
            ),
        ];
        for (path, want) in cases {
            match validate_layer_path(path.as_ref()) {
                Err(PlanError::Layer { reason, .. }) => assert_eq!(reason, want, "{path:?}"),
                other => panic!("{path:?}: {other:?}"),
            }
        }
        for ok in [
            "installation",
            "overlays/a",
            "workshop_cache/123/x",
            "overlays/a/",
            "game/versions/12345678/tree",
            "game/versions/12345678-2/tree/",
        ] {
            validate_layer_path(ok.as_ref()).unwrap();
        }
    }

    #[test]
    fn plan_refusals() {
        let e = MountPlan::new("rel", "x", &["installation"]).unwrap_err();
        assert!(matches!(e, PlanError::StateDirNotAbsolute { .. }), "{e}");
        let e = MountPlan::new("/s", "X", &["installation"]).unwrap_err();
        assert!(matches!(e, PlanError::BadName { .. }), "{e}");
        let e = MountPlan::new::<&str>("/s", "x", &[]).unwrap_err();
        assert!(matches!(e, PlanError::NoLayers { .. }), "{e}");
        let e = MountPlan::new("/s", "x", &["overlays/a", "overlays/a/"]).unwrap_err();
        assert!(matches!(e, PlanError::DuplicateLayer { .. }), "{e}");
        let many: Vec<String> = (0..=MAX_LAYERS).map(|i| format!("overlays/{i}")).collect();
        let e = MountPlan::new("/s", "x", &many).unwrap_err();
        assert_eq!(
            e.to_string(),
            "instance x: 501 layers exceed the kernel's overlay stack limit of 500: use fewer overlays"
        );
        MountPlan::new("/s", "x", &many[..MAX_LAYERS]).unwrap();
    }
}
