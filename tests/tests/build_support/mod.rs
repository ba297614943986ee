//! What the booted build and escape suites share: test hosts inside the booted system's
//! network namespace (an HTTP file server, a UDP echo service, a DNS responder, an abstract
//! unix socket), archives made for them, and running `left4mectl overlay build`.
//!
//! Every server is bound inside the system's own network namespace ([`BootedSystem::in_netns`]),
//! on addresses the test gives the veth peer: nothing here ever sends a packet off the machine.

#![allow(dead_code)] // each suite uses a different part

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use left4me_tests::BootedSystem;

/// The documentation address the file server answers on (not in any denied range).
pub const FILE_HOST: &str = "192.0.2.10";
/// The name the DNS responder gives [`FILE_HOST`].
pub const FILE_HOST_NAME: &str = "files.test";
/// A private address the DNS responder listens on (the build may reach it only as its
/// resolver, by an exact exception).
pub const RESOLVER: &str = "10.0.0.53";

/// Files the HTTP server serves, by path (`/maps/index.txt`), and how often each was fetched.
#[derive(Debug, Clone, Default)]
pub struct Files {
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Files {
    pub fn put(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_owned(), body.into());
    }
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// The test hosts: servers on threads, stopped when dropped.
pub struct TestHosts {
    pub files: Files,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for TestHosts {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn serve_http(listener: TcpListener, files: Files, stop: Arc<AtomicBool>) {
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    while !stop.load(Ordering::SeqCst) {
        let (stream, _) = match listener.accept() {
            Ok(conn) => conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(_) => continue,
        };
        let files = files.clone();
        std::thread::spawn(move || {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(&stream);
            let mut request = String::new();
            if reader.read_line(&mut request).unwrap_or(0) == 0 {
                return; // a probe that only connected
            }
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let body = files.files.lock().unwrap().get(&path).cloned();
            *files.hits.lock().unwrap().entry(path).or_default() += 1;
            let mut stream = &stream;
            let _ = match body {
                Some(body) => stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .and_then(|()| stream.write_all(&body)),
                None => stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
            };
        });
    }
}

fn serve_accept(listener: TcpListener, stop: Arc<AtomicBool>) {
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn serve_udp_echo(socket: UdpSocket, stop: Arc<AtomicBool>) {
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::SeqCst) {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    }
}

/// A DNS answer to `query`: an A record with [`FILE_HOST`] for any name ending in `.test`,
/// an empty answer for other types of such names, NXDOMAIN for the rest.
pub fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 17 {
        return None;
    }
    // The question: labels from byte 12 to the zero label, then type and class.
    let mut i = 12;
    let mut labels = Vec::new();
    while i < query.len() && query[i] != 0 {
        let len = usize::from(query[i]);
        labels.push(String::from_utf8_lossy(query.get(i + 1..i + 1 + len)?).to_lowercase());
        i += 1 + len;
    }
    let qtype = u16::from_be_bytes([*query.get(i + 1)?, *query.get(i + 2)?]);
    let question_end = i + 5;
    let ours = labels.last().is_some_and(|l| l == "test");
    let answer_a = ours && qtype == 1;
    let mut out = Vec::new();
    out.extend_from_slice(&query[..2]);
    out.extend_from_slice(&[0x81, if ours { 0x80 } else { 0x83 }]);
    out.extend_from_slice(&[0, 1, 0, u8::from(answer_a), 0, 0, 0, 0]);
    out.extend_from_slice(query.get(12..question_end)?);
    if answer_a {
        let ip: std::net::Ipv4Addr = FILE_HOST.parse().ok()?;
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}

fn serve_dns(socket: UdpSocket, stop: Arc<AtomicBool>) {
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::SeqCst) {
        if let Ok((n, from)) = socket.recv_from(&mut buf)
            && let Some(answer) = dns_answer(&buf[..n])
        {
            let _ = socket.send_to(&answer, from);
        }
    }
}

/// Adds `cidr` to the veth peer without duplicate address detection (an IPv6 address would
/// otherwise stay "tentative" and unreachable for a second or two).
pub fn add_peer(sys: &BootedSystem, cidr: &str) -> Result<()> {
    sys.run_ok([
        "ip",
        "addr",
        "add",
        cidr,
        "dev",
        left4me_tests::PEER_DEVICE,
        "nodad",
    ])?;
    Ok(())
}

/// Starts the test hosts in `sys`'s network namespace: HTTP on port 80 and a bare accepting
/// TCP listener on 8080 (both on every address of the namespace, IPv4 and IPv6), a UDP echo
/// on 5353, and a DNS responder on [`RESOLVER`]:53. Gives the peer [`FILE_HOST`] and
/// [`RESOLVER`] plus `extra` addresses.
pub fn start_hosts(sys: &BootedSystem, extra: &[&str]) -> Result<TestHosts> {
    for cidr in [&format!("{FILE_HOST}/32"), &format!("{RESOLVER}/32")]
        .into_iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
    {
        add_peer(sys, cidr)?;
    }
    let (http, other, echo, dns) = sys.in_netns(|| -> std::io::Result<_> {
        Ok((
            TcpListener::bind("[::]:80")?,
            TcpListener::bind("[::]:8080")?,
            UdpSocket::bind("[::]:5353")?,
            UdpSocket::bind(format!("{RESOLVER}:53"))?,
        ))
    })??;
    let files = Files::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    {
        let (files, stop) = (files.clone(), stop.clone());
        threads.push(std::thread::spawn(move || serve_http(http, files, stop)));
    }
    {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || serve_accept(other, stop)));
    }
    {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || serve_udp_echo(echo, stop)));
    }
    {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || serve_dns(dns, stop)));
    }
    Ok(TestHosts {
        files,
        stop,
        threads,
    })
}

/// Points the booted system's resolver at [`RESOLVER`].
pub fn use_test_resolver(sys: &BootedSystem) -> Result<()> {
    let path = sys.host_path("/etc/resolv.conf");
    let _ = std::fs::remove_file(&path);
    std::fs::write(
        &path,
        format!("nameserver {RESOLVER}\noptions timeout:2 attempts:2\n"),
    )
    .with_context(|| format!("write {}", path.display()))
}

/// Stdout and stderr of an output, together.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Makes the state dir and `overlays/` root's (DESIGN.md §2) when the installed tmpfiles.d
/// still gave them to the game user (installs from before the ownership rule): builds refuse
/// a game-user-owned `overlays/`. A no-op once tmpfiles.d says root.
pub fn root_owned_overlays(sys: &BootedSystem) -> Result<()> {
    let state = left4me_tests::STATE_DIR;
    let overlays = format!("{state}/overlays");
    sys.run_ok(["chown", "root:root", state, &overlays])?;
    sys.run_ok(["chmod", "0755", state, &overlays])?;
    Ok(())
}

/// Writes overlay definition `name` (inside the system's /etc/left4me/overlays).
pub fn define_overlay(sys: &BootedSystem, name: &str, toml: &str) -> Result<()> {
    let path = sys.host_path(format!("/etc/left4me/overlays/{name}.toml"));
    std::fs::create_dir_all(path.parent().context("parent")?)?;
    std::fs::write(&path, toml).with_context(|| format!("write {}", path.display()))
}

/// A script overlay definition; `tables` (e.g. `[limits]` lines) go after the script.
pub fn script_overlay(script: &str, tables: &str) -> String {
    assert!(!script.contains("'''"));
    format!("kind = \"script\"\nscript = '''\n{script}'''\n{tables}")
}

/// `left4mectl overlay build NAME` inside; returns (success, stdout+stderr) and says how long
/// it took.
pub fn build(sys: &BootedSystem, name: &str) -> Result<(bool, String)> {
    let started = Instant::now();
    let out = sys.run_timeout(
        ["left4mectl", "overlay", "build", name],
        Duration::from_secs(180),
    )?;
    let text = text(&out);
    let code = out.status.code();
    ensure!(
        matches!(code, Some(0) | Some(1)),
        "`left4mectl overlay build {name}` exited {:?}:\n{text}",
        out.status
    );
    eprintln!(
        "left4me builds: overlay build {name}: exit {:?} in {:.1}s",
        code.unwrap_or(-1),
        started.elapsed().as_secs_f64()
    );
    Ok((code == Some(0), text))
}

/// [`build`] that must succeed.
pub fn build_ok(sys: &BootedSystem, name: &str) -> Result<String> {
    let (ok, text) = build(sys, name)?;
    ensure!(ok, "overlay build {name} failed:\n{text}");
    Ok(text)
}

/// [`build`] that must fail, with `why` in its message.
pub fn build_fails(sys: &BootedSystem, name: &str, why: &str) -> Result<String> {
    let (ok, text) = build(sys, name)?;
    ensure!(
        !ok,
        "overlay build {name} succeeded but should have failed:\n{text}"
    );
    ensure!(
        text.contains(why),
        "overlay build {name} failed, but not with {why:?}:\n{text}"
    );
    Ok(text)
}

/// The hidden build dirs of the state dir's overlays (there should be none after a build).
pub fn build_dirs(sys: &BootedSystem) -> Result<Vec<String>> {
    let dir = sys.host_path(format!("{}/overlays", left4me_tests::STATE_DIR));
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.contains(".build-") {
            found.push(name);
        }
    }
    Ok(found)
}

/// Runs python3 inside the system with `script` and `args`; must succeed.
pub fn python(sys: &BootedSystem, script: &str, args: &[&str]) -> Result<String> {
    let mut argv = vec!["python3", "-c", script];
    argv.extend_from_slice(args);
    let out = sys.run(argv)?;
    if !out.status.success() {
        bail!("python3 failed:\n{}", text(&out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reads a file of the system as bytes.
pub fn read_inside(sys: &BootedSystem, path: &str) -> Result<Vec<u8>> {
    let host = sys.host_path(path);
    let mut bytes = Vec::new();
    std::fs::File::open(&host)
        .with_context(|| format!("open {}", host.display()))?
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// md5 of `bytes`, hex, computed by md5sum inside the system (no crate for it here).
pub fn md5_inside(sys: &BootedSystem, path: &str) -> Result<String> {
    let out = sys.run_stdout(["md5sum", path])?;
    Ok(out.split_whitespace().next().unwrap_or("").to_owned())
}

/// Whether `path` (inside) exists, without following a final symlink.
pub fn exists_inside(sys: &BootedSystem, path: &str) -> bool {
    std::fs::symlink_metadata(sys.host_path(path)).is_ok()
}

/// The workspace's file `rel`.
pub fn workspace_file(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_answers_test_names() {
        // id 0x1234, RD, one question: files.test A IN
        let mut query = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        query.extend_from_slice(b"\x05files\x04test\x00\x00\x01\x00\x01");
        let answer = dns_answer(&query).unwrap();
        assert_eq!(&answer[..4], &[0x12, 0x34, 0x81, 0x80]);
        assert_eq!(&answer[6..8], &[0, 1]);
        assert_eq!(&answer[answer.len() - 4..], &[192, 0, 2, 10]);
        let mut other = query.clone();
        other[13..18].copy_from_slice(b"files");
        let len = other.len();
        other[len - 9..len - 5].copy_from_slice(b"corp");
        assert_eq!(dns_answer(&other).unwrap()[3], 0x83);
    }
}
