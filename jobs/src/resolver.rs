//! Name resolution for builds.
//!
//! A build may not reach loopback or private addresses (`IPAddressDeny=`), yet the host's
//! resolver usually sits exactly there: systemd-resolved's stub at 127.0.0.53, a local
//! dnsmasq/unbound at 127.0.0.1, or the LAN router at 192.168.x.y. So a build gets a resolv.conf
//! of its own, bound over `/etc/resolv.conf` in its unit:
//!
//! - the host's name servers from `/etc/resolv.conf`; when that names systemd-resolved's stub,
//!   the upstream servers resolved itself uses (`/run/systemd/resolve/resolv.conf`);
//! - loopback servers are left out: allowing one would open every local service on that
//!   address to the build (with the warning saying so);
//! - a server inside a denied private range is allowed exactly (its /32 or /128): the build can
//!   then reach that one address, on UDP any port and on TCP only the build's allowed ports
//!   (Landlock). The lesser evil against no DNS on hosts whose resolver is the LAN router;
//! - `search`, `domain` and `options` lines are kept.

use std::net::IpAddr;

use crate::netrange::is_allowed;

/// The host's resolver configuration.
pub const ETC_RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's list of its upstream servers.
pub const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// What a build's resolv.conf holds and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolverPlan {
    /// The servers the build uses, in the host's order.
    pub servers: Vec<IpAddr>,
    /// Servers inside the denied ranges: the unit allows these addresses exactly.
    pub exceptions: Vec<IpAddr>,
    /// Servers left out, with why.
    pub dropped: Vec<(String, &'static str)>,
    /// `search`, `domain` and `options` lines, as written.
    pub other_lines: Vec<String>,
    /// Whether resolved's upstream list replaced its stub.
    pub from_resolved: bool,
}

fn is_stub(address: IpAddr) -> bool {
    matches!(address, IpAddr::V4(v4) if v4.octets()[..3] == [127, 0, 0] && matches!(v4.octets()[3], 53 | 54))
}

/// `(servers, other lines, unparsable server entries)` of a resolv.conf text.
fn parse(text: &str) -> (Vec<IpAddr>, Vec<String>, Vec<String>) {
    let mut servers = Vec::new();
    let mut other = Vec::new();
    let mut bad = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                let entry = words.next().unwrap_or("");
                // An IPv6 link-local server carries its interface: fe80::1%eth0.
                let address = entry.split('%').next().unwrap_or("");
                match address.parse::<IpAddr>() {
                    Ok(address) if !servers.contains(&address) => servers.push(address),
                    Ok(_) => {}
                    Err(_) => bad.push(entry.to_owned()),
                }
            }
            Some("search" | "domain" | "options") => other.push(line.to_owned()),
            _ => {}
        }
    }
    (servers, other, bad)
}

/// The build resolver for a host whose `/etc/resolv.conf` reads `etc`, and whose
/// systemd-resolved upstream list reads `resolved` (when resolved runs).
pub fn plan(etc: &str, resolved: Option<&str>) -> ResolverPlan {
    let (mut servers, other_lines, bad) = parse(etc);
    let mut plan = ResolverPlan {
        other_lines,
        ..ResolverPlan::default()
    };
    for entry in bad {
        plan.dropped.push((entry, "not an IP address"));
    }
    if let Some(upstream) = resolved
        && servers.iter().any(|s| is_stub(*s))
    {
        let (upstream, _, _) = parse(upstream);
        let mut merged = Vec::new();
        for server in servers {
            if is_stub(server) {
                for u in &upstream {
                    if !merged.contains(u) {
                        merged.push(*u);
                    }
                }
            } else if !merged.contains(&server) {
                merged.push(server);
            }
        }
        servers = merged;
        plan.from_resolved = true;
    }
    for server in servers {
        if server.is_loopback() || server.is_unspecified() {
            plan.dropped.push((
                server.to_string(),
                "on loopback, which builds may not reach",
            ));
            continue;
        }
        if !is_allowed(server) {
            plan.exceptions.push(server);
        }
        plan.servers.push(server);
    }
    plan
}

impl ResolverPlan {
    /// The build's resolv.conf.
    pub fn render(&self) -> String {
        let mut text = String::from(
            "# The resolv.conf of a left4me overlay build, written by left4mectl from the \
             host's.\n",
        );
        if self.servers.is_empty() {
            text.push_str("# No name server the build may reach: names do not resolve.\n");
        }
        for server in &self.servers {
            text.push_str(&format!("nameserver {server}\n"));
        }
        for line in &self.other_lines {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// One line for the build's header: which servers, and what was left out.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.servers.is_empty() {
            parts.push("none: names will not resolve".to_owned());
        } else {
            let list: Vec<String> = self
                .servers
                .iter()
                .map(|s| {
                    if self.exceptions.contains(s) {
                        format!("{s} (private, allowed exactly)")
                    } else {
                        s.to_string()
                    }
                })
                .collect();
            parts.push(list.join(", "));
        }
        if self.from_resolved {
            parts.push("systemd-resolved's upstream servers".into());
        }
        for (server, why) in &self.dropped {
            parts.push(format!("left out {server}: {why}"));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn public_servers_pass_unchanged() {
        let p = plan(
            "# comment\nnameserver 9.9.9.9\nnameserver 2620:fe::fe\nsearch example.org\n\
             options edns0 trust-ad\n",
            None,
        );
        assert_eq!(p.servers, [ip("9.9.9.9"), ip("2620:fe::fe")]);
        assert!(p.exceptions.is_empty());
        assert!(p.dropped.is_empty());
        assert_eq!(
            p.render(),
            "# The resolv.conf of a left4me overlay build, written by left4mectl from the \
             host's.\nnameserver 9.9.9.9\nnameserver 2620:fe::fe\nsearch example.org\n\
             options edns0 trust-ad\n"
        );
    }

    #[test]
    fn resolved_stub_becomes_its_upstream() {
        let p = plan(
            "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n",
            Some("nameserver 192.168.1.1\nnameserver 1.1.1.1\nnameserver fe80::1%eth0\n"),
        );
        assert!(p.from_resolved);
        assert_eq!(p.servers, [ip("192.168.1.1"), ip("1.1.1.1"), ip("fe80::1")]);
        assert_eq!(p.exceptions, [ip("192.168.1.1"), ip("fe80::1")]);
        assert!(
            p.describe()
                .contains("192.168.1.1 (private, allowed exactly)")
        );
    }

    #[test]
    fn loopback_servers_are_left_out() {
        let p = plan(
            "nameserver 127.0.0.1\nnameserver ::1\nnameserver bogus\n",
            None,
        );
        assert!(p.servers.is_empty());
        assert_eq!(p.dropped.len(), 3);
        assert!(p.render().contains("names do not resolve"));
        assert!(p.describe().starts_with("none: names will not resolve"));
        // The stub without resolved's list is loopback like any other.
        let p = plan("nameserver 127.0.0.53\n", None);
        assert!(p.servers.is_empty());
    }
}
