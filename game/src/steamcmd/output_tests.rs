//! The classifier and the verdict on real SteamCMD output lines (sources per test).
use super::*;

fn error(line: &str) -> SteamError {
    match classify(line) {
        Line::Error(e) => e,
        other => panic!("{line:?} -> {other:?}"),
    }
}

#[test]
fn progress_lines() {
    // LinuxGSM/AMP issue logs (CubeCoders/AMP #437) and the padded form of newer builds.
    let p = match classify(" Update state (0x61) downloading, progress: 45.12 (1234 / 5678)") {
        Line::Progress(p) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(p.state, 0x61);
    assert_eq!(p.phase, Phase::Downloading);
    assert_eq!(p.name, "downloading");
    assert!((p.percent - 45.12).abs() < 1e-9);
    assert_eq!((p.done, p.total), (1234, 5678));
    let p = match classify(
        " Update state (0x5)  verifying install,  progress: 80.32 (3972809953 / 4946331918)",
    ) {
        Line::Progress(p) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(p.phase, Phase::Validating);
    assert_eq!(p.name, "verifying install");
    assert_eq!(p.total, 4946331918);
    for (line, phase) in [
        (
            " Update state (0x3) reconfiguring, progress: 0.00 (0 / 0)",
            Phase::Reconfiguring,
        ),
        (
            " Update state (0x11) preallocating, progress: 5.50 (1 / 2)",
            Phase::Preallocating,
        ),
        (
            "Update state (0x81) verifying update, progress: 93.65 (670327427 / 715792446)",
            Phase::Verifying,
        ),
        (
            "\\x1b[0m Update state (0x101) committing, progress: 100.00 (9 / 9)\\x1b[0m",
            Phase::Committing,
        ),
    ] {
        assert!(
            matches!(classify(line), Line::Progress(p) if p.phase == phase),
            "{line}"
        );
    }
}

#[test]
fn success_and_the_state_errors() {
    assert_eq!(
        classify("Success! App '222860' fully installed."),
        Line::Success {
            app: 222860,
            up_to_date: false
        }
    );
    assert_eq!(
        classify("Success! App '222860' already up to date."),
        Line::Success {
            app: 222860,
            up_to_date: true
        }
    );
    // WindowsGSM #59, LinuxGSM's error docs.
    assert_eq!(
        error("Error! App '222860' state is 0x202 after update job."),
        SteamError::DiskFull { state: 0x202 }
    );
    assert_eq!(
        error("Error! App '222860' state is 0x212 after update job."),
        SteamError::DiskFull { state: 0x212 }
    );
    // steam-for-linux #4341.
    assert_eq!(
        error("Error! App '237410' state is 0x602 after update job."),
        SteamError::Network { state: 0x602 }
    );
    assert_eq!(
        error("Error! App '222860' state is 0x402 after update job."),
        SteamError::Network { state: 0x402 }
    );
    assert_eq!(
        error("Error! App '222860' state is 0x606 after update job."),
        SteamError::Permissions { state: 0x606 }
    );
    // artem-panchenko/counter-strike-docker #10.
    assert_eq!(
        error("Error! App '90' state is 0xE after update job"),
        SteamError::State { state: 0xe }
    );
}

#[test]
fn install_and_login_errors() {
    // steam-for-linux #11522.
    assert_eq!(
        error("ERROR! Failed to install app '222860' (Invalid platform)"),
        SteamError::InvalidPlatform
    );
    assert_eq!(
        error("ERROR! Failed to install app '222860' (No subscription)"),
        SteamError::NoSubscription
    );
    assert_eq!(
        error("ERROR! Failed to install app '222860' (Disk write failure)"),
        SteamError::Install("Disk write failure".into())
    );
    // mr-guard/dayz-server-manager #23; pelican-eggs/games-steamcmd #226;
    // zeropingheroes/lancache-autofill #29.
    assert_eq!(
        error("Logging in user 'Andymantium' to Steam Public...FAILED (Rate Limit Exceeded)"),
        SteamError::RateLimit
    );
    assert_eq!(
        error("Logging in user xxxxxxxx to Steam Public...ERROR (Rate Limit Exceeded)"),
        SteamError::RateLimit
    );
    assert_eq!(
        error("FAILED login with result code Rate Limit Exceeded"),
        SteamError::RateLimit
    );
    assert_eq!(
        error("ERROR (Invalid Password)"),
        SteamError::Login(LoginFailure::InvalidPassword)
    );
    assert_eq!(
        error("Logging in user 'op' to Steam Public...FAILED (Two-factor code mismatch)"),
        SteamError::Login(LoginFailure::SteamGuard)
    );
    assert_eq!(
        error("FAILED (Account Logon Denied)"),
        SteamError::Login(LoginFailure::SteamGuard)
    );
    // Steam unreachable (steam-for-linux#12200): says what to check, not just the reason.
    let offline = error("Connecting anonymously to Steam Public...FAILED (No Connection)");
    assert_eq!(offline, SteamError::Login(LoginFailure::NoConnection));
    assert!(offline.to_string().contains("check that this host reaches"));
    assert_eq!(error("FAILED (No Connection)"), offline);
    assert_eq!(
        error("Cached credentials not found."),
        SteamError::Login(LoginFailure::NoCachedCredentials)
    );
    assert_eq!(
        error("ERROR! Timed out waiting for AppInfo update."),
        SteamError::AppInfoTimeout
    );
    assert_eq!(
        error("ERROR! Failed to request AppInfo update, not online or not logged in to Steam."),
        SteamError::AppInfoTimeout
    );
    assert_eq!(
        error("Password check for AppId 222860 failed"),
        SteamError::BetaPassword
    );
    for other in [
        "Loading Steam API...OK",
        "Connecting anonymously to Steam Public...OK",
        "Waiting for user info...OK",
        "[  0%] Checking for available updates...",
        "Redirecting stderr to '/home/steamcmd/Steam/logs/stderr.txt'",
        "",
    ] {
        assert_eq!(classify(other), Line::Other, "{other}");
    }
}

#[test]
fn the_verdict_never_trusts_a_success_line_alone() {
    let lines = |text: &[&str]| text.iter().map(|l| classify(l)).collect::<Vec<_>>();
    let ok = lines(&["Success! App '222860' fully installed."]);
    assert_eq!(judge(&ok, 0, true), Verdict::Claimed);
    assert_eq!(judge(&ok, 8, true), Verdict::Exit(8));
    assert_eq!(
        judge(&lines(&["Loading Steam API...OK"]), 0, true),
        Verdict::NoSuccessLine
    );
    assert_eq!(
        judge(&lines(&["Loading Steam API...OK"]), 0, false),
        Verdict::Claimed
    );
    // A success printed after an error does not undo it.
    let lied = lines(&[
        "Error! App '222860' state is 0x602 after update job.",
        "Success! App '222860' fully installed.",
    ]);
    assert_eq!(
        judge(&lied, 0, true),
        Verdict::Error(SteamError::Network { state: 0x602 })
    );
    // Disk full outranks the network state it causes.
    let both = lines(&[
        "Error! App '222860' state is 0x602 after update job.",
        "Error! App '222860' state is 0x202 after update job.",
    ]);
    assert_eq!(
        judge(&both, 8, true),
        Verdict::Error(SteamError::DiskFull { state: 0x202 })
    );
    assert_eq!(judge(&[], 1, false).remedy(), Some(Remedy::Retry));
    assert_eq!(
        judge(&[], 5, false).to_string(),
        "SteamCMD exited with status 5 (login failure)"
    );
    assert_eq!(
        SteamError::InvalidPlatform.remedy(),
        Remedy::PlatformWorkaround
    );
    assert_eq!(SteamError::RateLimit.remedy(), Remedy::Wait);
    assert_eq!(
        SteamError::DiskFull { state: 0x202 }.remedy(),
        Remedy::Fatal
    );
}

#[test]
fn cleans_escapes() {
    assert_eq!(clean("\u{1b}[0mAppID : 1\u{1b}[0m "), "AppID : 1");
    assert_eq!(clean("\\x1b[0m\"222860\"\\x1b[0m"), "\"222860\"");
    assert_eq!(clean("\\x1b"), "");
}

/// Every prefix and suffix of real lines, and every line with a byte replaced by one of the
/// characters the parsers split at, classifies without a panic (a cheap stand-in for the fuzz
/// target the pure functions are written for).
#[test]
fn never_panics_on_cut_or_mangled_lines() {
    let lines = [
        " Update state (0x61) downloading, progress: 45.12 (1234 / 5678)",
        "Error! App '222860' state is 0x202 after update job.",
        "ERROR! Failed to install app '222860' (Invalid platform)",
        "Logging in user 'op' to Steam Public...FAILED (Rate Limit Exceeded)",
        "Success! App '222860' fully installed.",
        "\\x1b[0mAppID : 222860\\x1b[",
    ];
    for line in lines {
        let chars: Vec<char> = line.chars().collect();
        for cut in 0..=chars.len() {
            let head: String = chars[..cut].iter().collect();
            let tail: String = chars[cut..].iter().collect();
            let _ = classify(&head);
            let _ = classify(&tail);
            for odd in ['(', ')', '/', ',', '\'', '\u{1b}', 'x', 'é'] {
                let mut mangled = chars.clone();
                if cut < mangled.len() {
                    mangled[cut] = odd;
                }
                let _ = classify(&mangled.iter().collect::<String>());
            }
        }
    }
}
