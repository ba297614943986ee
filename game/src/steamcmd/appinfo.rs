//! The remote build id of a branch, from the output of `+app_info_update 1 +app_info_print
//! 222860` ([`super::args::app_info`]).
//!
//! The output is console noise around one KeyValues document (shape as captured in public
//! tools' fixtures, e.g. `AppID : 233780, change number : 12921088/4294967295, last change :
//! …`, then `"233780"` `{ … "depots" { … "branches" { "public" { "buildid" "7459543" … } } } }`,
//! then `Unloading Steam API...OK`), sometimes with `ESC[0m` escapes between the lines. The
//! document runs from the line `"222860"` to the first line that is only `}` (Valve's writer
//! puts only the outermost closing brace at the start of a line; inner ones are indented).
//! That block is parsed with `keyvalues-parser`; the build id is at
//! `depots/branches/BRANCH/buildid` (older dumps: `branches/BRANCH/buildid`).
//!
//! The caller deletes SteamCMD's `appcache/appinfo.vdf` before the run, or SteamCMD may
//! print a stale cached document.

use left4me_contract::game::APP_ID;

use super::output::strip_escapes;
use super::vdf::{self, VdfError};

/// Why the output did not give a build id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppInfoError {
    #[error("SteamCMD printed no app info for {APP_ID} (was Steam reachable?)")]
    Missing,
    #[error("the app info SteamCMD printed for {APP_ID} does not end")]
    Unterminated,
    #[error("the app info SteamCMD printed for {APP_ID}: {0}")]
    Vdf(#[from] VdfError),
    #[error("the app info of {APP_ID} has no branch '{0}' (is its name right?)")]
    NoBranch(String),
    #[error(
        "the app info of {APP_ID} gives branch '{branch}' the build id '{value}', not a number"
    )]
    BadBuild { branch: String, value: String },
}

/// The KeyValues block for the app in `output` (lines cleaned of escapes).
pub fn extract(output: &str) -> Result<String, AppInfoError> {
    let head = format!("\"{APP_ID}\"");
    let mut lines = output.lines().map(strip_escapes);
    lines
        .by_ref()
        .find(|line| line.trim() == head)
        .ok_or(AppInfoError::Missing)?;
    let mut block = format!("{head}\n");
    for line in lines {
        block.push_str(&line);
        block.push('\n');
        if line.trim_end() == "}" {
            return Ok(block);
        }
    }
    Err(AppInfoError::Unterminated)
}

/// The build id of `branch` in `output`.
pub fn remote_build(output: &str, branch: &str) -> Result<u64, AppInfoError> {
    let doc = vdf::parse(&extract(output)?)?;
    let value = vdf::string(&doc.value, &["depots", "branches", branch, "buildid"])
        .or_else(|| vdf::string(&doc.value, &["branches", branch, "buildid"]))
        .ok_or_else(|| AppInfoError::NoBranch(branch.to_owned()))?;
    value.trim().parse().map_err(|_| AppInfoError::BadBuild {
        branch: branch.to_owned(),
        value: value.chars().take(40).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Console noise as SteamCMD prints it (steam-for-linux #11522, steamcmd/docker #65) around
    /// a document shaped like public app_info_print captures.
    const OUTPUT: &str = "Redirecting stderr to '/home/steamcmd/Steam/logs/stderr.txt'\n\
        [  0%] Checking for available updates...\n[----] Verifying installation...\n\
        Steam Console Client (c) Valve Corporation - version 1731433425\n\
        -- type 'quit' to exit --\nLoading Steam API...OK\n\n\
        Connecting anonymously to Steam Public...OK\nWaiting for client config...OK\n\
        Waiting for user info...OK\n\
        \\x1b[0mAppID : 222860, change number : 26071946/0, last change : Thu Nov 28 10:00:00 2024\n\
        \"222860\"\n{\n\t\"common\"\n\t{\n\t\t\"name\"\t\t\"Left 4 Dead 2 Dedicated Server\"\n\
        \t\t\"oslist\"\t\t\"windows,linux\"\n\t}\n\t\"config\"\n\t{\n\t\t\"launch\"\n\t\t{\n\
        \t\t\t\"0\"\n\t\t\t{\n\t\t\t\t\"executable\"\t\t\"bin\\win32\\srcds.exe\"\n\t\t\t}\n\t\t}\n\t}\n\
        \t\"depots\"\n\t{\n\t\t\"222861\"\n\t\t{\n\t\t\t\"manifests\"\n\t\t\t{\n\
        \t\t\t\t\"public\"\n\t\t\t\t{\n\t\t\t\t\t\"gid\"\t\t\"4047004309608881181\"\n\t\t\t\t}\n\
        \t\t\t}\n\t\t}\n\t\t\"branches\"\n\t\t{\n\t\t\t\"public\"\n\t\t\t{\n\
        \t\t\t\t\"buildid\"\t\t\"16407291\"\n\t\t\t\t\"timeupdated\"\t\t\"1732700000\"\n\t\t\t}\n\
        \t\t\t\"last_stable\"\n\t\t\t{\n\t\t\t\t\"buildid\"\t\t\"15000000\"\n\
        \t\t\t\t\"pwdrequired\"\t\t\"1\"\n\t\t\t}\n\t\t}\n\t}\n}\n\
        Unloading Steam API...OK\n";

    #[test]
    fn finds_the_branch_build() {
        assert_eq!(remote_build(OUTPUT, "public"), Ok(16407291));
        assert_eq!(remote_build(OUTPUT, "last_stable"), Ok(15000000));
        assert_eq!(
            remote_build(OUTPUT, "nope"),
            Err(AppInfoError::NoBranch("nope".into()))
        );
    }

    #[test]
    fn escapes_between_lines_and_older_layouts() {
        let escaped: String = OUTPUT
            .lines()
            .map(|l| format!("\\x1b[0m{l}\\x1b[0m\n"))
            .collect();
        assert_eq!(remote_build(&escaped, "public"), Ok(16407291));
        let old = "\"222860\"\n{\n\t\"branches\"\n\t{\n\t\t\"public\"\n\t\t{\n\
                   \t\t\t\"buildid\"\t\t\"7\"\n\t\t}\n\t}\n}\n";
        assert_eq!(remote_build(old, "public"), Ok(7));
    }

    #[test]
    fn says_what_is_missing() {
        assert_eq!(
            remote_build(
                "Connecting anonymously to Steam Public...FAILED\n",
                "public"
            ),
            Err(AppInfoError::Missing)
        );
        assert_eq!(
            remote_build("\"222860\"\n{\n\t\"depots\"\n", "public"),
            Err(AppInfoError::Unterminated)
        );
        let bad = "\"222860\"\n{\n\t\"branches\"\n\t{\n\t\t\"public\"\n\t\t{\n\
                   \t\t\t\"buildid\"\t\t\"x1\"\n\t\t}\n\t}\n}\n";
        assert!(matches!(
            remote_build(bad, "public"),
            Err(AppInfoError::BadBuild { .. })
        ));
    }
}
