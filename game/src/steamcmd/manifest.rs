//! `steamapps/appmanifest_222860.acf`: what SteamCMD wrote about the install it just made,
//! checked after every run before the caller may publish (a `Success!` line alone is not
//! proof: see [`super::output`]).
//!
//! The file is a KeyValues document `"AppState" { "appid" "222860" "StateFlags" "4"
//! "buildid" "…" "BytesToDownload" "…" "BytesDownloaded" "…" "BytesToStage" "…"
//! "BytesStaged" "…" … "UserConfig" { "betakey" "…" } }`. A finished install has
//! `StateFlags` 4 (`StateFullyInstalled` of Steam's AppState flags) and has downloaded and
//! staged every byte it meant to.

use left4me_contract::game::APP_ID;

use super::vdf::{self, VdfError};

/// The manifest's name beneath the install dir.
pub fn file_name() -> String {
    format!("appmanifest_{APP_ID}.acf")
}

/// The directory beneath the install dir that holds it (created by the caller before the
/// first run).
pub const STEAMAPPS: &str = "steamapps";

/// `StateFullyInstalled`.
pub const FULLY_INSTALLED: u32 = 4;

/// Why the manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("appmanifest_{APP_ID}.acf: {0}")]
    Vdf(#[from] VdfError),
    #[error("appmanifest_{APP_ID}.acf: the top-level key is '{0}', not 'AppState'")]
    NotAppState(String),
    #[error("appmanifest_{APP_ID}.acf: '{key}' is missing or not a number")]
    Field { key: &'static str },
}

/// The fields the check reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppManifest {
    pub appid: u32,
    pub state_flags: u32,
    pub buildid: u64,
    /// `SizeOnDisk`: the install's size as SteamCMD counts it (0 when absent).
    pub size_on_disk: u64,
    pub bytes_to_download: u64,
    pub bytes_downloaded: u64,
    pub bytes_to_stage: u64,
    pub bytes_staged: u64,
    /// `UserConfig/betakey`: the branch installed (absent or empty: public).
    pub betakey: Option<String>,
}

/// A reason not to believe the install.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("it is the manifest of app {0}, not {APP_ID}")]
    WrongApp(u32),
    #[error("StateFlags is {0} (not {FULLY_INSTALLED}, fully installed)")]
    NotInstalled(u32),
    #[error("buildid is 0")]
    NoBuild,
    #[error("build {found} was installed, build {expected} was expected")]
    WrongBuild { found: u64, expected: u64 },
    #[error("{done} of {total} bytes downloaded")]
    Download { done: u64, total: u64 },
    #[error("{done} of {total} bytes staged")]
    Staging { done: u64, total: u64 },
    #[error("branch '{found}' is installed, '{expected}' was asked for")]
    WrongBranch { found: String, expected: String },
}

/// Parses the manifest's text.
pub fn parse(text: &str) -> Result<AppManifest, ManifestError> {
    let doc = vdf::parse(text)?;
    if !doc.key.eq_ignore_ascii_case("AppState") {
        return Err(ManifestError::NotAppState(doc.key));
    }
    let number = |key: &'static str| -> Result<u64, ManifestError> {
        vdf::string(&doc.value, &[key])
            .and_then(|v| v.trim().parse().ok())
            .ok_or(ManifestError::Field { key })
    };
    // Absent byte counters (an install that needed nothing) count as 0.
    let counter = |key: &'static str| -> Result<u64, ManifestError> {
        match vdf::string(&doc.value, &[key]) {
            None => Ok(0),
            Some(_) => number(key),
        }
    };
    let small = |key: &'static str| -> Result<u32, ManifestError> {
        u32::try_from(number(key)?).map_err(|_| ManifestError::Field { key })
    };
    Ok(AppManifest {
        appid: small("appid")?,
        state_flags: small("StateFlags")?,
        buildid: number("buildid")?,
        size_on_disk: counter("SizeOnDisk")?,
        bytes_to_download: counter("BytesToDownload")?,
        bytes_downloaded: counter("BytesDownloaded")?,
        bytes_to_stage: counter("BytesToStage")?,
        bytes_staged: counter("BytesStaged")?,
        betakey: vdf::string(&doc.value, &["UserConfig", "betakey"])
            .filter(|b| !b.is_empty())
            .map(str::to_owned),
    })
}

impl AppManifest {
    /// Every reason not to believe the install of `branch` (and of build `expected`, when the
    /// caller knows the remote build); empty when there is none.
    pub fn problems(&self, branch: &str, expected: Option<u64>) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.appid != APP_ID {
            problems.push(Problem::WrongApp(self.appid));
        }
        if self.state_flags != FULLY_INSTALLED {
            problems.push(Problem::NotInstalled(self.state_flags));
        }
        if self.buildid == 0 {
            problems.push(Problem::NoBuild);
        }
        if let Some(expected) = expected
            && self.buildid != expected
        {
            problems.push(Problem::WrongBuild {
                found: self.buildid,
                expected,
            });
        }
        if self.bytes_downloaded != self.bytes_to_download {
            problems.push(Problem::Download {
                done: self.bytes_downloaded,
                total: self.bytes_to_download,
            });
        }
        if self.bytes_staged != self.bytes_to_stage {
            problems.push(Problem::Staging {
                done: self.bytes_staged,
                total: self.bytes_to_stage,
            });
        }
        let installed = self
            .betakey
            .as_deref()
            .unwrap_or(super::args::PUBLIC_BRANCH);
        if installed != branch {
            problems.push(Problem::WrongBranch {
                found: installed.to_owned(),
                expected: branch.to_owned(),
            });
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like a real appmanifest written by SteamCMD (fields as in
    /// techwiki.scpslgame.com's and LinuxGSM's examples; values made up).
    const GOOD: &str = "\"AppState\"\n{\n\t\"appid\"\t\t\"222860\"\n\t\"Universe\"\t\t\"1\"\n\
        \t\"name\"\t\t\"Left 4 Dead 2 Dedicated Server\"\n\t\"StateFlags\"\t\t\"4\"\n\
        \t\"installdir\"\t\t\"Left 4 Dead 2 Dedicated Server\"\n\t\"LastUpdated\"\t\t\"1733000000\"\n\
        \t\"SizeOnDisk\"\t\t\"10588672470\"\n\t\"StagingSize\"\t\t\"0\"\n\t\"buildid\"\t\t\"16407291\"\n\
        \t\"LastOwner\"\t\t\"0\"\n\t\"UpdateResult\"\t\t\"0\"\n\t\"BytesToDownload\"\t\t\"8161155104\"\n\
        \t\"BytesDownloaded\"\t\t\"8161155104\"\n\t\"BytesToStage\"\t\t\"10588672470\"\n\
        \t\"BytesStaged\"\t\t\"10588672470\"\n\t\"TargetBuildID\"\t\t\"16407291\"\n\
        \t\"AutoUpdateBehavior\"\t\t\"0\"\n\t\"InstalledDepots\"\n\t{\n\t\t\"222861\"\n\t\t{\n\
        \t\t\t\"manifest\"\t\t\"4047004309608881181\"\n\t\t\t\"size\"\t\t\"9700000000\"\n\t\t}\n\t}\n\
        \t\"UserConfig\"\n\t{\n\t}\n\t\"MountedConfig\"\n\t{\n\t}\n}\n";

    #[test]
    fn a_finished_install_passes() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.buildid, 16407291);
        assert_eq!(m.bytes_to_stage, 10588672470);
        assert_eq!(m.betakey, None);
        assert_eq!(m.problems("public", Some(16407291)), []);
        assert_eq!(file_name(), "appmanifest_222860.acf");
    }

    #[test]
    fn a_half_done_install_is_caught() {
        let half = GOOD
            .replace(
                "\"BytesDownloaded\"\t\t\"8161155104\"",
                "\"BytesDownloaded\"\t\t\"100\"",
            )
            .replace("\"StateFlags\"\t\t\"4\"", "\"StateFlags\"\t\t\"1026\"");
        let m = parse(&half).unwrap();
        let problems = m.problems("public", Some(16407292));
        assert_eq!(
            problems,
            [
                Problem::NotInstalled(1026),
                Problem::WrongBuild {
                    found: 16407291,
                    expected: 16407292
                },
                Problem::Download {
                    done: 100,
                    total: 8161155104
                },
            ]
        );
        assert_eq!(
            problems[2].to_string(),
            "100 of 8161155104 bytes downloaded"
        );
        let beta = GOOD.replace(
            "\"UserConfig\"\n\t{\n\t}",
            "\"UserConfig\"\n\t{\n\t\t\"betakey\"\t\t\"last_stable\"\n\t}",
        );
        let m = parse(&beta).unwrap();
        assert_eq!(m.problems("last_stable", None), []);
        assert!(matches!(
            m.problems("public", None)[..],
            [Problem::WrongBranch { .. }]
        ));
    }

    #[test]
    fn refuses_what_is_not_a_manifest() {
        assert!(matches!(
            parse("\"Other\"\n{\n}\n"),
            Err(ManifestError::NotAppState(_))
        ));
        assert_eq!(
            parse("\"AppState\"\n{\n\t\"appid\"\t\t\"x\"\n}\n"),
            Err(ManifestError::Field { key: "appid" })
        );
        assert!(parse("\"AppState\"\n{\n").is_err());
        assert!(parse("").is_err());
    }
}

#[cfg(test)]
mod robustness {
    /// Every prefix of a real manifest and of a real app info dump parses or fails, never
    /// panics.
    #[test]
    fn cut_documents_never_panic() {
        let text = super::tests_fixture();
        for cut in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
            let _ = super::parse(&text[..cut]);
            let _ = crate::steamcmd::appinfo::remote_build(&text[..cut], "public");
        }
    }
}

#[cfg(test)]
fn tests_fixture() -> String {
    "\"AppState\"\n{\n\t\"appid\"\t\t\"222860\"\n\t\"StateFlags\"\t\t\"4\"\n\t\"buildid\"\t\t\"7\"\n\
     \t\"UserConfig\"\n\t{\n\t\t\"betakey\"\t\t\"b\"\n\t}\n}\n\"222860\"\n{\n\t\"depots\"\n\t{\n\
     \t\t\"branches\"\n\t\t{\n\t\t\t\"public\"\n\t\t\t{\n\t\t\t\t\"buildid\"\t\t\"7\"\n\t\t\t}\n\
     \t\t}\n\t}\n}\n"
        .to_owned()
}
