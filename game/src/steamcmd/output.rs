//! What SteamCMD's output means: one line classified ([`classify`]), and a whole run judged
//! from its lines and its exit status ([`judge`]).
//!
//! SteamCMD's exit status is coarse and its success line is not proof: it prints `Success!`
//! after a download that did not finish, and `0x602` runs end with status 8 as do disk-full
//! ones (steam-for-linux #4341, whose thread collects: 0 success, 1 "Timed out waiting for
//! AppInfo update", 5 login failures, 8 failed installs and "state is 0x… after update job").
//! So the verdict comes from the lines first, the status second, and a claimed success is
//! only a [`Verdict::Claimed`]: the caller still checks the appmanifest
//! ([`super::manifest`]) before it believes it.
//!
//! Line shapes, each seen in real output (sources in the tests):
//! - ` Update state (0x61) downloading, progress: 45.12 (1234 / 5678)` (and `0x3`
//!   reconfiguring, `0x5` verifying install, `0x11` preallocating, `0x81` verifying update,
//!   `0x101` committing);
//! - `Success! App '222860' fully installed.` / `… already up to date.`;
//! - `Error! App '222860' state is 0x202 after update job.`;
//! - `ERROR! Failed to install app '222860' (Invalid platform)` / `(No subscription)`;
//! - `Logging in user 'x' to Steam Public...FAILED (Rate Limit Exceeded)`, `ERROR (Rate Limit
//!   Exceeded)`, `FAILED login with result code Rate Limit Exceeded`;
//! - `ERROR! Timed out waiting for AppInfo update.`.

use std::fmt;

/// SteamCMD's update states (`Update state (0x…)`), from its AppState flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Reconfiguring,
    Validating,
    Preallocating,
    Downloading,
    Verifying,
    Committing,
    Other,
}

impl Phase {
    fn of(state: u32) -> Self {
        match state {
            0x3 => Phase::Reconfiguring,
            0x5 => Phase::Validating,
            0x11 => Phase::Preallocating,
            0x61 => Phase::Downloading,
            0x81 => Phase::Verifying,
            0x101 => Phase::Committing,
            _ => Phase::Other,
        }
    }
}

/// One `Update state` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The state flags (`0x61`).
    pub state: u32,
    pub phase: Phase,
    /// What SteamCMD calls it (`downloading`, `verifying update`).
    pub name: String,
    pub percent: f64,
    /// Bytes done and in all, for this phase.
    pub done: u64,
    pub total: u64,
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginFailure {
    /// "Cached credentials not found": run `left4mectl game login USER` first.
    NoCachedCredentials,
    InvalidPassword,
    /// "Two-factor code mismatch", "Account Logon Denied", "Invalid Login Auth Code": Steam
    /// Guard wants a code.
    SteamGuard,
    /// "No Connection": SteamCMD could not reach Steam (it retries a few times itself first).
    NoConnection,
    /// Any other `FAILED (…)` of a login, with SteamCMD's reason.
    Other(String),
}

/// An error SteamCMD reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SteamError {
    /// `state is 0x202` / `0x212`: no room for the download (LinuxGSM core_dl.sh).
    DiskFull {
        state: u32,
    },
    /// `state is 0x402` / `0x602`: the update did not finish, usually the network
    /// (LinuxGSM core_dl.sh: "Update required but not completed - check network").
    Network {
        state: u32,
    },
    /// `state is 0x606`: files it could not write (ownership or mode of the install dir).
    Permissions {
        state: u32,
    },
    /// Another `state is 0x… after update job`.
    State {
        state: u32,
    },
    /// `Failed to install app '222860' (Invalid platform)`: anonymous installs of 222860
    /// since 2024-11-26 (steam-for-linux #11522).
    InvalidPlatform,
    /// `(No subscription)`: the account does not own the app.
    NoSubscription,
    /// `Rate Limit Exceeded`: too many logins; Steam blocks them for a while.
    RateLimit,
    Login(LoginFailure),
    /// `Password check for AppId … failed`: the beta password is wrong (LinuxGSM core_dl.sh).
    BetaPassword,
    /// `Timed out waiting for AppInfo update` / not online: Steam did not answer.
    AppInfoTimeout,
    /// Another `Failed to install app` reason.
    Install(String),
}

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// Nothing a retry fixes.
    Fatal,
    /// Retry, with backoff.
    Retry,
    /// Wait (Steam's login rate limit), then retry.
    Wait,
    /// Anonymous: the two-pass platform workaround (windows first, then linux with validate).
    PlatformWorkaround,
}

impl SteamError {
    pub fn remedy(&self) -> Remedy {
        match self {
            SteamError::Network { .. } | SteamError::AppInfoTimeout | SteamError::State { .. } => {
                Remedy::Retry
            }
            SteamError::RateLimit => Remedy::Wait,
            SteamError::InvalidPlatform => Remedy::PlatformWorkaround,
            _ => Remedy::Fatal,
        }
    }

    /// Which of two errors in one run decides it: the lower rank wins.
    fn rank(&self) -> u8 {
        match self {
            SteamError::DiskFull { .. } => 0,
            SteamError::NoSubscription => 1,
            SteamError::Login(_) => 2,
            SteamError::BetaPassword => 3,
            SteamError::RateLimit => 4,
            SteamError::InvalidPlatform => 5,
            SteamError::Permissions { .. } => 6,
            SteamError::Install(_) => 7,
            SteamError::Network { .. } => 8,
            SteamError::AppInfoTimeout => 9,
            SteamError::State { .. } => 10,
        }
    }
}

impl fmt::Display for SteamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SteamError::DiskFull { state } => write!(
                f,
                "SteamCMD ran out of disk space (state {state:#x}): make room in the state dir"
            ),
            SteamError::Network { state } => write!(
                f,
                "SteamCMD could not finish the download (state {state:#x}): check the network"
            ),
            SteamError::Permissions { state } => write!(
                f,
                "SteamCMD could not write the install dir (state {state:#x}): check ownership"
            ),
            SteamError::State { state } => {
                write!(f, "SteamCMD ended the update in state {state:#x}")
            }
            SteamError::InvalidPlatform => f.write_str(
                "Steam refused the linux build to this login (Invalid platform, \
                 steam-for-linux #11522)",
            ),
            SteamError::NoSubscription => f.write_str(
                "the Steam account does not own Left 4 Dead 2 Dedicated Server (No subscription)",
            ),
            SteamError::RateLimit => {
                f.write_str("Steam's login rate limit was exceeded: wait before trying again")
            }
            SteamError::Login(LoginFailure::NoCachedCredentials) => f.write_str(
                "SteamCMD has no cached credentials for the account: run `left4mectl game login \
                 USER` first",
            ),
            SteamError::Login(LoginFailure::InvalidPassword) => f.write_str(
                "Steam refused the account's password: run `left4mectl game login USER` again",
            ),
            SteamError::Login(LoginFailure::SteamGuard) => {
                f.write_str("Steam Guard wants a code: run `left4mectl game login USER` again")
            }
            SteamError::Login(LoginFailure::NoConnection) => f.write_str(
                "SteamCMD could not reach Steam (No Connection): check that this host reaches \
                 the internet (network, DNS, firewall), then try again",
            ),
            SteamError::Login(LoginFailure::Other(why)) => {
                write!(f, "the Steam login failed ({why})")
            }
            SteamError::BetaPassword => f.write_str("the beta branch's password is wrong"),
            SteamError::AppInfoTimeout => {
                f.write_str("Steam did not answer the app info request in time")
            }
            SteamError::Install(why) => write!(f, "SteamCMD failed to install the app ({why})"),
        }
    }
}

/// What one line says.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Progress(Progress),
    /// `Success! App 'ID' fully installed.` (or `already up to date.`).
    Success {
        app: u32,
        up_to_date: bool,
    },
    Error(SteamError),
    Other,
}

/// The line without terminal escapes and surrounding blanks ([`strip_escapes`], trimmed).
pub fn clean(line: &str) -> String {
    strip_escapes(line).trim().to_owned()
}

/// The line without terminal escapes: raw `ESC[…m`, or the `\x1b[…m` text the job stream
/// turns them into (SteamCMD colours some lines, even into a pipe).
pub fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    loop {
        let raw = rest.find('\u{1b}');
        let shown = rest.find("\\x1b");
        let (at, len) = match (raw, shown) {
            (Some(r), Some(s)) if s < r => (s, 4),
            (Some(r), _) => (r, 1),
            (None, Some(s)) => (s, 4),
            (None, None) => break,
        };
        out.push_str(&rest[..at]);
        rest = &rest[at + len..];
        if let Some(csi) = rest.strip_prefix('[') {
            let end = csi
                .find(|c: char| c.is_ascii_alphabetic())
                .map_or(csi.len(), |i| i + 1);
            rest = &csi[end..];
        }
    }
    out.push_str(rest);
    out
}

fn hex(text: &str) -> Option<u32> {
    let digits = text
        .trim()
        .strip_prefix("0x")
        .or(text.trim().strip_prefix("0X"))?;
    u32::from_str_radix(digits, 16).ok()
}

/// ` Update state (0x61) downloading, progress: 45.12 (1234 / 5678)`.
fn progress(line: &str) -> Option<Progress> {
    let rest = line.strip_prefix("Update state (")?;
    let (state, rest) = rest.split_once(')')?;
    let state = hex(state)?;
    let (name, rest) = rest.split_once(',')?;
    let rest = rest.trim_start().strip_prefix("progress:")?.trim_start();
    let (percent, rest) = rest.split_once('(').unwrap_or((rest, ""));
    let percent: f64 = percent.trim().parse().ok()?;
    let (done, total) = match rest.strip_suffix(')').and_then(|r| r.split_once('/')) {
        Some((done, total)) => (done.trim().parse().ok()?, total.trim().parse().ok()?),
        None => (0, 0),
    };
    Some(Progress {
        state,
        phase: Phase::of(state),
        name: name.trim().to_owned(),
        percent: if percent.is_finite() { percent } else { 0.0 },
        done,
        total,
    })
}

/// The text in the last `(…)` of `line`.
fn last_parens(line: &str) -> Option<&str> {
    let open = line.rfind('(')?;
    let close = line[open..].find(')')? + open;
    Some(&line[open + 1..close])
}

fn login_failure(reason: &str) -> SteamError {
    let lower = reason.to_ascii_lowercase();
    if lower.contains("rate limit") {
        SteamError::RateLimit
    } else if lower.contains("no connection") {
        SteamError::Login(LoginFailure::NoConnection)
    } else if lower.contains("invalid password") {
        SteamError::Login(LoginFailure::InvalidPassword)
    } else if lower.contains("two-factor")
        || lower.contains("logon denied")
        || lower.contains("auth code")
        || lower.contains("steam guard")
    {
        SteamError::Login(LoginFailure::SteamGuard)
    } else {
        SteamError::Login(LoginFailure::Other(reason.chars().take(80).collect()))
    }
}

/// Classifies one output line (already split at newlines; escapes and blanks are ignored).
pub fn classify(line: &str) -> Line {
    let line = clean(line);
    if let Some(progress) = progress(&line) {
        return Line::Progress(progress);
    }
    if let Some(rest) = line.strip_prefix("Success! App '") {
        let (app, rest) = rest.split_once('\'').unwrap_or(("", ""));
        if let Ok(app) = app.parse() {
            return Line::Success {
                app,
                up_to_date: rest.contains("already up to date"),
            };
        }
    }
    let lower = line.to_ascii_lowercase();
    if let Some(at) = lower.find("state is 0x")
        && lower.contains("after update job")
    {
        let digits: String = lower[at + "state is ".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if let Some(state) = hex(&digits) {
            return Line::Error(match state {
                0x202 | 0x212 => SteamError::DiskFull { state },
                0x402 | 0x602 => SteamError::Network { state },
                0x606 => SteamError::Permissions { state },
                _ => SteamError::State { state },
            });
        }
    }
    if lower.contains("failed to install app") {
        let reason = last_parens(&line).unwrap_or("").to_owned();
        return Line::Error(match reason.to_ascii_lowercase().as_str() {
            "invalid platform" => SteamError::InvalidPlatform,
            "no subscription" => SteamError::NoSubscription,
            _ => SteamError::Install(reason),
        });
    }
    if lower.contains("failed (no subscription)") || lower.contains("(no subscription)") {
        return Line::Error(SteamError::NoSubscription);
    }
    if lower.contains("cached credentials not found") {
        return Line::Error(SteamError::Login(LoginFailure::NoCachedCredentials));
    }
    if lower.contains("password check for appid") {
        return Line::Error(SteamError::BetaPassword);
    }
    if lower.contains("timed out waiting for appinfo update")
        || lower.contains("failed to request appinfo update")
        || lower.contains("failed to request app info update")
    {
        return Line::Error(SteamError::AppInfoTimeout);
    }
    // "Logging in user 'x' to Steam Public...FAILED (Rate Limit Exceeded)",
    // "ERROR (Rate Limit Exceeded)", "FAILED login with result code Rate Limit Exceeded".
    if (lower.contains("logging in user") || lower.contains("connecting anonymously"))
        && lower.contains("failed")
        || lower.starts_with("error (")
        || lower.starts_with("failed (")
        || lower.starts_with("failed login with result code")
        || lower.contains("login failure")
    {
        let reason = last_parens(&line)
            .map(str::to_owned)
            .or_else(|| {
                line.split_once("result code")
                    .map(|(_, r)| r.trim().to_owned())
            })
            .or_else(|| line.split_once(':').map(|(_, r)| r.trim().to_owned()))
            .unwrap_or_else(|| line.clone());
        return Line::Error(login_failure(&reason));
    }
    if lower.contains("rate limit exceeded") {
        return Line::Error(SteamError::RateLimit);
    }
    Line::Other
}

/// How a run ended, all things considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// SteamCMD says it succeeded and nothing contradicts it: check the appmanifest before
    /// believing it.
    Claimed,
    /// An error line (the most telling one when there were several).
    Error(SteamError),
    /// No error line, but exit status `status` (1: Steam did not answer, 5: login).
    Exit(i32),
    /// Exit status 0 without the line that would say so (`Success!` for an update).
    NoSuccessLine,
}

impl Verdict {
    /// What to do about it (a claimed success: nothing).
    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            Verdict::Claimed => None,
            Verdict::Error(error) => Some(error.remedy()),
            Verdict::Exit(1) => Some(Remedy::Retry),
            Verdict::Exit(_) | Verdict::NoSuccessLine => Some(Remedy::Fatal),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Claimed => f.write_str("SteamCMD reported success"),
            Verdict::Error(error) => error.fmt(f),
            Verdict::Exit(1) => f.write_str(
                "SteamCMD exited with status 1 (Steam did not answer the app info request)",
            ),
            Verdict::Exit(5) => f.write_str("SteamCMD exited with status 5 (login failure)"),
            Verdict::Exit(status) => write!(f, "SteamCMD exited with status {status}"),
            Verdict::NoSuccessLine => {
                f.write_str("SteamCMD exited with status 0 but never said the app was installed")
            }
        }
    }
}

/// Judges a run from its classified `lines` and SteamCMD's `exit` status. `needs_success`:
/// an `app_update` run must print `Success! App '222860' …`; an `app_info_print` run need
/// not. Error lines win over the status and over a success line printed after them.
pub fn judge(lines: &[Line], exit: i32, needs_success: bool) -> Verdict {
    let worst = lines
        .iter()
        .filter_map(|line| match line {
            Line::Error(error) => Some(error),
            _ => None,
        })
        .min_by_key(|error| error.rank());
    if let Some(error) = worst {
        return Verdict::Error(error.clone());
    }
    if exit != 0 {
        return Verdict::Exit(exit);
    }
    let app = left4me_contract::game::APP_ID;
    let success = lines
        .iter()
        .any(|line| matches!(line, Line::Success { app: a, .. } if *a == app));
    if needs_success && !success {
        return Verdict::NoSuccessLine;
    }
    Verdict::Claimed
}

#[cfg(test)]
#[path = "output_tests.rs"]
mod tests;
