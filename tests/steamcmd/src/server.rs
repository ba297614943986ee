//! The fake Steam: an HTTP/1.0 server (one thread per connection) in front of a [`Depot`].
//!
//! URL layout (all `GET`, bodies `text/plain`, percent-encoded query values and paths):
//!
//! ```text
//! /login?user=U[&password=P][&guard=G][&token=T]  "ok TOKEN" | "guard" | "error REASON"
//! /appinfo/222860?token=T                          "AppID : 222860, change number : …" + VDF
//! /manifest/222860?branch=B&betapassword=P&platform=linux|windows&token=T&installed=BUILD
//!     "build ID\n" then "file MODE SIZE HASH PATH\n"… [then "missing BYTES\n"] | "error REASON"
//! /depot/BUILD/PATH                                the file's bytes
//! ```

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::content::Hasher;
use crate::depot::{Depot, Fault};

/// The app the depot serves (Left 4 Dead 2 Dedicated Server) and its one depot.
const APP_ID: &str = "222860";
const DEPOT_ID: &str = "222861";

/// A running fake Steam; stopped when dropped.
#[derive(Debug)]
pub struct SteamServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SteamServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, for the kit's `steam_standin.cfg`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for SteamServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes accept()
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `depot` on `listener` in a background thread.
pub fn serve(depot: Depot, listener: TcpListener) -> io::Result<SteamServer> {
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let _ = accept_loop(depot, listener, &flag);
    });
    Ok(SteamServer {
        addr,
        stop,
        thread: Some(thread),
    })
}

/// Serves `depot` on `listener` until the process ends.
pub fn serve_forever(depot: Depot, listener: TcpListener) -> io::Result<()> {
    accept_loop(depot, listener, &AtomicBool::new(false))
}

fn accept_loop(depot: Depot, listener: TcpListener, stop: &AtomicBool) -> io::Result<()> {
    let faults_lock = Arc::new(Mutex::new(()));
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let depot = depot.clone();
        let lock = faults_lock.clone();
        std::thread::spawn(move || {
            let _ = handle(&depot, &lock, stream);
        });
    }
    Ok(())
}

fn handle(depot: &Depot, lock: &Mutex<()>, stream: TcpStream) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let target = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query: HashMap<String, String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect();
    let arg = |name: &str| query.get(name).map(String::as_str).unwrap_or("");
    let mut out = stream;
    if path == "/login" {
        let reply = login(
            depot,
            lock,
            arg("user"),
            arg("password"),
            arg("guard"),
            arg("token"),
        )?;
        respond(&mut out, 200, reply.as_bytes())
    } else if path == format!("/appinfo/{APP_ID}") {
        if token_user(depot, arg("token"))?.is_none() {
            return respond(&mut out, 403, b"error Not logged on\n");
        }
        respond(&mut out, 200, appinfo(depot)?.as_bytes())
    } else if path == format!("/manifest/{APP_ID}") {
        let reply = manifest(depot, &query)?;
        respond(&mut out, 200, reply.as_bytes())
    } else if let Some(rest) = path.strip_prefix("/depot/") {
        let (build, file) = rest.split_once('/').unwrap_or((rest, ""));
        let file = percent_decode(file);
        depot_file(depot, lock, &mut out, build, &file)
    } else {
        respond(&mut out, 404, b"not found\n")
    }
}

fn respond(out: &mut TcpStream, status: u16, body: &[u8]) -> io::Result<()> {
    let reason = if status == 200 { "OK" } else { "Error" };
    write!(
        out,
        "HTTP/1.0 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    out.write_all(body)?;
    out.flush()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if bytes[i] == b'%'
            && let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The login token of an account: what the client caches in its config.vdf.
fn token_for(user: &str, password: &str) -> String {
    let mut hasher = Hasher::new();
    hasher.feed(format!("{user}\n{password}").as_bytes());
    format!("{:016x}", hasher.finish())
}

/// Who a token belongs to ("anonymous" for the anonymous token).
fn token_user(depot: &Depot, token: &str) -> io::Result<Option<String>> {
    if token == "anonymous" {
        return Ok(Some("anonymous".into()));
    }
    Ok(depot
        .accounts()?
        .into_iter()
        .find(|(user, (password, _))| token_for(user, password) == token)
        .map(|(user, _)| user))
}

/// Takes one from a counted fault; whether it fired.
fn take_fault(
    depot: &Depot,
    lock: &Mutex<()>,
    pick: fn(&Fault) -> Option<u32>,
) -> io::Result<bool> {
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    let mut faults = depot.faults()?;
    let Some(pos) = faults.iter().position(|f| pick(f).is_some_and(|n| n > 0)) else {
        return Ok(false);
    };
    faults[pos] = match faults[pos] {
        Fault::TransientNetworkFailures(n) => Fault::TransientNetworkFailures(n - 1),
        Fault::RateLimit(n) => Fault::RateLimit(n - 1),
        other => other,
    };
    depot.write_faults(&faults)?;
    Ok(true)
}

fn login(
    depot: &Depot,
    lock: &Mutex<()>,
    user: &str,
    password: &str,
    guard: &str,
    token: &str,
) -> io::Result<String> {
    let rate_limit = |f: &Fault| match f {
        Fault::RateLimit(n) => Some(*n),
        _ => None,
    };
    if take_fault(depot, lock, rate_limit)? {
        return Ok("error Rate Limit Exceeded".into());
    }
    if user == "anonymous" {
        return Ok("ok anonymous".into());
    }
    if !token.is_empty() {
        return Ok(match token_user(depot, token)? {
            Some(owner) if owner == user => format!("ok {token}"),
            _ => "error Invalid Password".into(),
        });
    }
    let accounts = depot.accounts()?;
    let Some((expected, code)) = accounts.get(user) else {
        return Ok("error Invalid Password".into());
    };
    if password != expected {
        return Ok("error Invalid Password".into());
    }
    match code {
        Some(_) if guard.is_empty() => Ok("guard".into()),
        Some(code) if code != guard => Ok("error Invalid Login Auth Code".into()),
        _ => Ok(format!("ok {}", token_for(user, password))),
    }
}

fn manifest(depot: &Depot, query: &HashMap<String, String>) -> io::Result<String> {
    let arg = |name: &str| query.get(name).map(String::as_str).unwrap_or("");
    let Some(user) = token_user(depot, arg("token"))? else {
        return Ok("error No Connection\n".into());
    };
    let faults = depot.faults()?;
    if faults.contains(&Fault::NoSubscription) {
        return Ok("error No subscription\n".into());
    }
    let installed: u64 = arg("installed").parse().unwrap_or(0);
    if faults.contains(&Fault::InvalidPlatformForAnonymous)
        && user == "anonymous"
        && arg("platform") != "windows"
        && installed == 0
    {
        return Ok("error Invalid platform\n".into());
    }
    let branch = if arg("branch").is_empty() {
        "public"
    } else {
        arg("branch")
    };
    let Some((build, password)) = depot.branches()?.get(branch).cloned() else {
        return Ok(format!("error Invalid beta branch '{branch}'\n"));
    };
    if password.is_some_and(|pw| pw != arg("betapassword")) {
        return Ok("error Invalid beta password\n".into());
    }
    let mut files = depot.manifest(build)?;
    let mut text = format!("build {build}\n");
    if faults.contains(&Fault::Lie)
        && let Some(left_out) = files.pop()
    {
        text.push_str(&format!("missing {}\n", left_out.size));
    }
    for file in &files {
        text.push_str(&format!(
            "file {:o} {} {:016x} {}\n",
            file.mode,
            file.size,
            file.hash,
            percent_encode(&file.path)
        ));
    }
    Ok(text)
}

fn depot_file(
    depot: &Depot,
    lock: &Mutex<()>,
    out: &mut TcpStream,
    build: &str,
    path: &str,
) -> io::Result<()> {
    let Ok(build) = build.parse::<u64>() else {
        return respond(out, 404, b"no such build\n");
    };
    let Some(entry) = depot.manifest(build)?.into_iter().find(|f| f.path == path) else {
        return respond(out, 404, b"no such file\n");
    };
    let transient = |f: &Fault| match f {
        Fault::TransientNetworkFailures(n) => Some(*n),
        _ => None,
    };
    let break_off = take_fault(depot, lock, transient)?;
    write!(
        out,
        "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        entry.size
    )?;
    let limit = if break_off {
        entry.size / 2
    } else {
        entry.size
    };
    let mut sent = 0u64;
    let result = entry.content()?.for_each_chunk(|chunk| {
        let n = (limit - sent).min(chunk.len() as u64) as usize;
        out.write_all(&chunk[..n])?;
        sent += n as u64;
        if sent >= limit && limit < entry.size {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "transient fault",
            ));
        }
        Ok(())
    });
    if break_off {
        let _ = out.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    result
}

/// Days since 1970-01-01 → (year, month, day) (H. Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// "Tuesday, November 26, 2024 - 18:43:24 UTC", as app_info_print shows "last change".
fn human_time(unix: i64) -> String {
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{}, {} {d}, {y} - {:02}:{:02}:{:02} UTC",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn appinfo(depot: &Depot) -> io::Result<String> {
    let changed = std::fs::metadata(depot.dir().join("branches"))
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now())
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut branches = String::new();
    let mut manifests = String::new();
    for (name, (build, password)) in depot.branches()? {
        let pwd = if password.is_some() {
            "\t\t\t\t\"pwdrequired\"\t\t\"1\"\n"
        } else {
            ""
        };
        branches.push_str(&format!(
            "\t\t\t\"{name}\"\n\t\t\t{{\n\t\t\t\t\"buildid\"\t\t\"{build}\"\n{pwd}\t\t\t\t\"timeupdated\"\t\t\"{changed}\"\n\t\t\t}}\n"
        ));
        manifests.push_str(&format!(
            "\t\t\t\t\"{name}\"\n\t\t\t\t{{\n\t\t\t\t\t\"gid\"\t\t\"{build}\"\n\t\t\t\t}}\n"
        ));
    }
    Ok(format!(
        "AppID : {APP_ID}, change number : {}/0, last change : {}\n\
\"{APP_ID}\"\n{{\n\
\t\"common\"\n\t{{\n\
\t\t\"name\"\t\t\"Left 4 Dead 2 Dedicated Server\"\n\
\t\t\"type\"\t\t\"Tool\"\n\
\t\t\"oslist\"\t\t\"windows,linux\"\n\
\t\t\"gameid\"\t\t\"{APP_ID}\"\n\
\t}}\n\
\t\"config\"\n\t{{\n\
\t\t\"installdir\"\t\t\"Left 4 Dead 2 Dedicated Server\"\n\
\t}}\n\
\t\"depots\"\n\t{{\n\
\t\t\"{DEPOT_ID}\"\n\t\t{{\n\
\t\t\t\"manifests\"\n\t\t\t{{\n{manifests}\t\t\t}}\n\
\t\t}}\n\
\t\t\"branches\"\n\t\t{{\n{branches}\t\t}}\n\
\t}}\n\
}}\n",
        depot.change_number()?,
        human_time(changed)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_time_matches_known_dates() {
        assert_eq!(human_time(0), "Thursday, January 1, 1970 - 00:00:00 UTC");
        assert_eq!(
            human_time(1_732_646_604),
            "Tuesday, November 26, 2024 - 18:43:24 UTC"
        );
    }

    #[test]
    fn percent_coding_round_trips() {
        let path = "left4dead2/a b%c+d/é.txt";
        assert_eq!(percent_decode(&percent_encode(path)), path);
    }
}
