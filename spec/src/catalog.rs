//! Loading a whole config dir: host settings, every instance with its blueprint, and the rules
//! that span instances (unique ports).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{ErrorKind, SpecError};
use crate::host::HostConfig;
use crate::instance::{Blueprint, Instance, InstanceFile};
use crate::layout::{ADMIN_DIR_ENV, Layout, check_absolute_dir};
use crate::parallel::map_chunks;
use crate::read::read_spec;
use left4me_contract::check_name;

/// Every instance spec of a host, loaded and checked.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub layout: Layout,
    pub host: HostConfig,
    /// One entry per `instances/*.toml`, sorted by name: the instance, or why it is refused.
    pub instances: Vec<(String, Result<Instance, SpecError>)>,
}

impl Catalog {
    /// Loads the config dir named by the environment (see [`Layout::config_dir_from_env`]).
    pub fn load_from_env() -> Result<Self, SpecError> {
        Self::load(&Layout::config_dir_from_env(), Layout::state_dir_from_env())
    }

    /// Loads `config_dir`. Only a broken `host.toml` or an unreadable `instances/` dir fail the
    /// whole load; a bad instance is kept as an `Err` entry and the others are still checked.
    /// A missing config dir is a host with defaults and no instances.
    pub fn load(config_dir: &Path, state_dir: Option<PathBuf>) -> Result<Self, SpecError> {
        Self::load_parallel(config_dir, state_dir, 1)
    }

    /// [`Catalog::load`] reading and checking the instance specs on up to `threads` threads
    /// (the generator uses every CPU at boot; the result is the same).
    pub fn load_parallel(
        config_dir: &Path,
        state_dir: Option<PathBuf>,
        threads: usize,
    ) -> Result<Self, SpecError> {
        let (host, layout) = load_host(config_dir, state_dir)?;
        let names = list_names(&layout.instances_dir())?;
        let load_chunk = |chunk: &[NameEntry]| -> Vec<(String, Result<Instance, SpecError>)> {
            let mut blueprints = HashMap::new();
            chunk
                .iter()
                .map(|(name, checked)| {
                    let instance = checked
                        .clone()
                        .and_then(|()| load_with(&layout, &host, name, &mut blueprints));
                    (name.clone(), instance)
                })
                .collect()
        };
        let mut instances = map_chunks(&names, threads, 64, load_chunk);
        check_unique_ports(&mut instances);
        Ok(Catalog {
            layout,
            host,
            instances,
        })
    }

    /// The entry of instance `name`, if it has a spec file.
    pub fn get(&self, name: &str) -> Option<&Result<Instance, SpecError>> {
        self.instances
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| &self.instances[i].1)
    }

    /// The valid instances.
    pub fn valid(&self) -> impl Iterator<Item = &Instance> {
        self.instances.iter().filter_map(|(_, i)| i.as_ref().ok())
    }

    /// Checks `text` as the would-be spec of instance `name` (read from `file`), against this
    /// host and the other instances — what `left4mectl create`, `edit` and `set` run before
    /// they install a file.
    pub fn check_instance_text(
        &self,
        name: &str,
        file: &Path,
        text: &str,
    ) -> Result<Instance, SpecError> {
        let parsed = InstanceFile::parse(name, file, text)?;
        let blueprint = match &parsed.blueprint {
            Some(bp) => Some(
                load_blueprint(&self.layout, bp).map_err(|err| blueprint_error(file, bp, err))?,
            ),
            None => None,
        };
        let instance = Instance::resolve(parsed, blueprint.as_ref(), &self.host)?;
        if let Some(err) = self
            .valid()
            .filter(|o| o.name != name)
            .find_map(|other| port_taken(file, &instance, other))
        {
            return Err(err);
        }
        Ok(instance)
    }

    /// Checks `text` as the would-be file of blueprint `name` (read from `file`): the blueprint
    /// itself, then every instance that is valid now and uses it, with the new blueprint merged
    /// in — what `left4mectl blueprint create`, `edit` and `set` run before they install a file.
    /// Instances that are already invalid do not block the change (it may be their fix).
    pub fn check_blueprint_text(
        &self,
        name: &str,
        file: &Path,
        text: &str,
    ) -> Result<Blueprint, SpecError> {
        let blueprint = Blueprint::parse(name, file, text)?;
        let mut broken = Vec::new();
        for instance in self.valid() {
            if instance.blueprint.as_deref() != Some(name) {
                continue;
            }
            let spec =
                read_spec(&instance.file).map_err(|err| SpecError::read(&instance.file, &err))?;
            let result = InstanceFile::parse(&instance.name, &instance.file, &spec)
                .and_then(|parsed| Instance::resolve(parsed, Some(&blueprint), &self.host));
            if let Err(err) = result {
                let why = match &err.key {
                    Some(key) => format!("key '{key}': {}", err.reason),
                    None => err.reason,
                };
                broken.push(format!("instance '{}' ({why})", instance.name));
            }
        }
        if broken.is_empty() {
            return Ok(blueprint);
        }
        let count = match broken.len() {
            1 => "1 instance".to_owned(),
            n => format!("{n} instances"),
        };
        Err(SpecError::file(
            file,
            format!(
                "this change would make {count} invalid: {}; change the blueprint or those \
                 instances first",
                broken.join("; ")
            ),
        ))
    }
}

/// Reads `host.toml` of `config_dir` and settles the state dir: `state_dir` (the
/// `LEFT4ME_STATE_DIR` override) when given, checked like host.toml's, else host.toml's.
pub fn load_host(
    config_dir: &Path,
    state_dir: Option<PathBuf>,
) -> Result<(HostConfig, Layout), SpecError> {
    let mut layout = Layout {
        config_dir: config_dir.to_path_buf(),
        state_dir: PathBuf::new(),
        admin_dir: Layout::admin_dir_from_env(),
    };
    check_absolute_dir(&layout.admin_dir).map_err(|why| {
        SpecError::new(
            ErrorKind::Invalid,
            &layout.admin_dir,
            None,
            format!("admin dir ({ADMIN_DIR_ENV}) {why}"),
        )
    })?;
    let host = HostConfig::load(&layout.host_file())?;
    layout.state_dir = match state_dir {
        Some(dir) => {
            check_absolute_dir(&dir).map_err(|why| {
                SpecError::new(ErrorKind::Invalid, &dir, None, format!("state dir {why}"))
            })?;
            dir
        }
        None => host.state_dir.clone(),
    };
    Ok((host, layout))
}

/// Reads and checks blueprint `name` from the config dir.
pub fn load_blueprint(layout: &Layout, name: &str) -> Result<Blueprint, SpecError> {
    let file = layout.blueprint_file(name);
    check_name(name).map_err(|why| SpecError::file(&file, why))?;
    let text = read_spec(&file).map_err(|err| SpecError::read(&file, &err))?;
    Blueprint::parse(name, &file, &text)
}

/// Reads instance `name` with its blueprint and checks it on its own (ports of other instances
/// are not compared; use [`Catalog`] for that).
pub fn load_instance(
    layout: &Layout,
    host: &HostConfig,
    name: &str,
) -> Result<Instance, SpecError> {
    check_name(name).map_err(|why| SpecError::file(&layout.instance_file(name), why))?;
    load_with(layout, host, name, &mut HashMap::new())
}

fn load_with(
    layout: &Layout,
    host: &HostConfig,
    name: &str,
    blueprints: &mut HashMap<String, Result<Blueprint, SpecError>>,
) -> Result<Instance, SpecError> {
    let file = layout.instance_file(name);
    let text = read_spec(&file).map_err(|err| SpecError::read(&file, &err))?;
    let parsed = InstanceFile::parse(name, &file, &text)?;
    let blueprint = match &parsed.blueprint {
        None => None,
        Some(bp) => {
            let loaded = blueprints
                .entry(bp.clone())
                .or_insert_with(|| load_blueprint(layout, bp));
            match loaded {
                Ok(blueprint) => Some(&*blueprint),
                Err(err) => return Err(blueprint_error(&file, bp, err.clone())),
            }
        }
    };
    Instance::resolve(parsed, blueprint, host)
}

fn blueprint_error(file: &Path, name: &str, err: SpecError) -> SpecError {
    let reason = match err.kind {
        ErrorKind::NotFound => format!(
            "blueprint '{name}' does not exist ({} is missing; create it with `left4mectl blueprint create {name}`)",
            err.file.display()
        ),
        _ => format!("blueprint '{name}' is invalid: {err}"),
    };
    SpecError::invalid(file, "blueprint", reason)
}

/// The error for the first port number of `instance` (read from `file`) that `owner` uses
/// too, naming both keys (`port`, `client_port`, `tv_port`); `None` when they share none.
fn port_taken(file: &Path, instance: &Instance, owner: &Instance) -> Option<SpecError> {
    let (key, number, their_key) = instance.ports().clash(&owner.ports())?;
    let what = if their_key == "port" {
        String::new()
    } else {
        format!(" as its {their_key}")
    };
    Some(SpecError::invalid(
        file,
        key,
        format!(
            "{number} is already used by instance '{}'{what} ({}); pick another {key}",
            owner.name,
            owner.file.display()
        ),
    ))
}

/// Refuses every instance that uses a port number (game, client or SourceTV port) an earlier
/// instance (by name) already uses.
fn check_unique_ports(instances: &mut [(String, Result<Instance, SpecError>)]) {
    let mut owners: Vec<Instance> = Vec::new();
    for (_, entry) in instances.iter_mut() {
        let Ok(instance) = entry else { continue };
        match owners
            .iter()
            .find_map(|owner| port_taken(&instance.file, instance, owner))
        {
            Some(err) => *entry = Err(err),
            None => owners.push(instance.clone()),
        }
    }
}

/// A spec file's name, or why the file name is refused.
pub type NameEntry = (String, Result<(), SpecError>);

/// The `*.toml` files of a spec dir by name, sorted; a file whose stem is not a valid name is
/// an `Err` entry. Hidden files and other extensions (editor backups) are ignored. A missing
/// dir is empty.
pub fn list_names(dir: &Path) -> Result<Vec<NameEntry>, SpecError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(SpecError::read(dir, &err)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| SpecError::read(dir, &err))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            let path = entry.path();
            names.push((
                path.to_string_lossy().into_owned(),
                Err(SpecError::file(
                    &path,
                    "file name is not valid UTF-8; rename it",
                )),
            ));
            continue;
        };
        let Some(stem) = file_name.strip_suffix(".toml") else {
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        let checked = check_name(stem).map_err(|why| {
            SpecError::file(&entry.path(), format!("file name: {why}; rename the file"))
        });
        names.push((stem.to_owned(), checked));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    struct Fixture(PathBuf);

    impl Fixture {
        fn new(tag: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("left4me-spec-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(dir.join("instances")).unwrap();
            fs::create_dir_all(dir.join("blueprints")).unwrap();
            Fixture(dir)
        }
        fn write(&self, rel: &str, text: &str) -> &Self {
            fs::write(self.0.join(rel), text).unwrap();
            self
        }
        fn load(&self) -> Catalog {
            Catalog::load(&self.0, None).unwrap()
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn errors(catalog: &Catalog) -> Vec<String> {
        catalog
            .instances
            .iter()
            .filter_map(|(_, i)| i.as_ref().err().map(ToString::to_string))
            .collect()
    }

    #[test]
    fn loads_valid_instances_and_keeps_bad_ones_as_errors() {
        let fx = Fixture::new("mixed");
        fx.write("blueprints/coop.toml", "map = 'c2m1_highway'")
            .write("instances/a.toml", "blueprint = 'coop'\nport = 27015")
            .write("instances/b.toml", "port = 27016\nbogus = 1")
            .write("instances/c.toml", "blueprint = 'missing'\nport = 27017")
            .write("instances/Bad.toml", "port = 27018")
            .write("instances/notes.txt", "ignored")
            .write("instances/.a.toml.swp", "ignored");
        let catalog = fx.load();
        let names: Vec<_> = catalog.instances.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Bad", "a", "b", "c"]);
        assert_eq!(
            catalog.get("a").unwrap().as_ref().unwrap().map,
            "c2m1_highway"
        );
        let errs = errors(&catalog);
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(errs[0].contains("Bad.toml: file name:"), "{}", errs[0]);
        assert!(errs[1].contains("key 'bogus': unknown key"), "{}", errs[1]);
        assert!(
            errs[2].contains("blueprint 'missing' does not exist"),
            "{}",
            errs[2]
        );
    }

    #[test]
    fn client_and_sourcetv_ports_are_unique_across_instances() {
        let fx = Fixture::new("extra-ports");
        fx.write("instances/a.toml", "port = 27015\nsourcetv = true")
            .write("instances/b.toml", "port = 27115")
            .write("instances/c.toml", "port = 27016\nclient_port = 27215")
            .write("instances/d.toml", "port = 27017\nclient_port = 28000")
            .write("instances/e.toml", "port = 27018\nclient_port = 28000");
        let catalog = fx.load();
        assert!(catalog.get("a").unwrap().is_ok());
        let err = catalog.get("b").unwrap().as_ref().unwrap_err();
        assert_eq!(err.key.as_deref(), Some("port"));
        assert!(
            err.reason
                .contains("27115 is already used by instance 'a' as its client_port"),
            "{err}"
        );
        let err = catalog.get("c").unwrap().as_ref().unwrap_err();
        assert_eq!(err.key.as_deref(), Some("client_port"));
        assert!(err.reason.contains("as its tv_port"), "{err}");
        assert!(catalog.get("d").unwrap().is_ok());
        let err = catalog.get("e").unwrap().as_ref().unwrap_err();
        assert_eq!(err.key.as_deref(), Some("client_port"));
        assert!(err.reason.contains("pick another client_port"), "{err}");
        let text_err = catalog
            .check_instance_text("z", Path::new("/tmp/z.toml"), "port = 27215")
            .unwrap_err();
        assert!(text_err.reason.contains("as its tv_port"), "{text_err}");
    }

    #[test]
    fn duplicate_ports_refuse_the_later_instance() {
        let fx = Fixture::new("ports");
        fx.write("instances/a.toml", "port = 27015")
            .write("instances/b.toml", "port = 27015");
        let catalog = fx.load();
        assert!(catalog.get("a").unwrap().is_ok());
        let err = catalog.get("b").unwrap().as_ref().unwrap_err();
        assert_eq!(err.key.as_deref(), Some("port"));
        assert!(err.reason.contains("already used by instance 'a'"), "{err}");
        let text_err = catalog
            .check_instance_text("z", Path::new("/tmp/z.toml"), "port = 27015")
            .unwrap_err();
        assert!(text_err.reason.contains("instance 'a'"), "{text_err}");
        assert!(
            catalog
                .check_instance_text("a", Path::new("/tmp/a.toml"), "port = 27015")
                .is_ok()
        );
    }

    #[test]
    fn bad_blueprint_is_reported_through_the_instance() {
        let fx = Fixture::new("badbp");
        fx.write("blueprints/coop.toml", "port = 1")
            .write("instances/a.toml", "blueprint = 'coop'\nport = 27015");
        let err = fx.load().get("a").unwrap().clone().unwrap_err();
        assert_eq!(err.key.as_deref(), Some("blueprint"));
        assert!(err.reason.contains("blueprint 'coop' is invalid"), "{err}");
    }

    #[test]
    fn blueprint_change_is_refused_when_it_breaks_a_valid_user() {
        let fx = Fixture::new("bpchange");
        fx.write("blueprints/coop.toml", "map = 'c2m1_highway'")
            .write("instances/a.toml", "blueprint = 'coop'\nport = 27015")
            .write(
                "instances/b.toml",
                "blueprint = 'coop'\nport = 27016\nbogus = 1",
            )
            .write("instances/c.toml", "port = 27017");
        let catalog = fx.load();
        let file = fx.0.join("blueprints/coop.toml");
        let ok = catalog
            .check_blueprint_text("coop", &file, "maxplayers = 8")
            .unwrap();
        assert_eq!(ok.settings.maxplayers, Some(8));
        let err = catalog
            .check_blueprint_text("coop", &file, "maxplayers = 99")
            .unwrap_err();
        assert_eq!(err.key.as_deref(), Some("maxplayers"), "{err}");
        let err = catalog
            .check_blueprint_text(
                "coop",
                &file,
                "[resources]\nmemory_high = '3G'\nmemory_max = '2G'",
            )
            .unwrap_err();
        assert_eq!(err.key, None);
        assert!(
            err.reason
                .starts_with("this change would make 1 instance invalid: instance 'a' (key "),
            "{err}"
        );
    }

    #[test]
    fn missing_config_dir_is_empty_and_state_dir_follows_host_toml() {
        let catalog = Catalog::load(Path::new("/nonexistent/left4me"), None).unwrap();
        assert!(catalog.instances.is_empty());
        assert_eq!(catalog.layout.state_dir, Path::new("/var/lib/left4me"));
        let fx = Fixture::new("state");
        fx.write("host.toml", "state_dir = '/srv/l4d2'");
        assert_eq!(fx.load().layout.state_dir, Path::new("/srv/l4d2"));
        let over = Catalog::load(&fx.0, Some("/tmp/elsewhere".into())).unwrap();
        assert_eq!(over.layout.state_dir, Path::new("/tmp/elsewhere"));
    }

    #[test]
    fn broken_host_toml_fails_the_load() {
        let fx = Fixture::new("host");
        fx.write("host.toml", "port_range = 'all'");
        let err = Catalog::load(&fx.0, None).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("port_range"));
    }
}
