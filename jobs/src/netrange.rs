//! The networks a job may reach: every public IPv4 address and the IPv6 global unicast range,
//! as the CIDR blocks of the unit's `IPAddressAllow=` (the unit denies everything else).
//! Loopback, private, link-local (cloud metadata), multicast and the tunnel prefixes that embed
//! IPv4 addresses are left out, each with its reason.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 networks a build never reaches: (network, prefix length, what it is). The unit denies
/// everything and allows the complement of these ([`allowed_networks`]).
pub const DENIED_V4: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\""),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "RFC 1918 private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "CGNAT shared space"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        "link-local, cloud metadata",
    ),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "RFC 1918 private"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "RFC 1918 private"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved, broadcast"),
];

/// IPv6: only global unicast (2000::/3) is allowed at all, which leaves out loopback (::1),
/// link-local (fe80::/10), multicast (ff00::/8), unique local (fc00::/7) and IPv4-mapped
/// addresses (on an IPv6 socket those go out as IPv4 and meet the IPv4 rules). Inside it, these
/// tunnel prefixes embed IPv4 addresses and are denied too.
pub const IPV6_UNIVERSE: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);
pub const DENIED_V6: &[(Ipv6Addr, u8, &str)] = &[
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32, "Teredo"),
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16, "6to4"),
];

/// One network as `ADDRESS/PREFIX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub address: IpAddr,
    pub prefix: u8,
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl Network {
    /// Whether `address` lies in this network.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let (start, end) = range(u128::from(u32::from(net)), self.prefix, 32);
                (start..=end).contains(&u128::from(u32::from(a)))
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let (start, end) = range(u128::from(net), self.prefix, 128);
                (start..=end).contains(&u128::from(a))
            }
            _ => false,
        }
    }
}

/// First and last address of `start/prefix` in a `bits`-bit family.
fn range(start: u128, prefix: u8, bits: u8) -> (u128, u128) {
    let host_bits = u32::from(bits - prefix);
    let size_minus_one = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    (
        start & !size_minus_one,
        (start & !size_minus_one) | size_minus_one,
    )
}

/// The last address of the block of `2^host_bits` addresses starting at `start`.
fn block_last(start: u128, host_bits: u32) -> Option<u128> {
    let size_minus_one = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    start.checked_add(size_minus_one)
}

/// The fewest CIDR blocks covering `[start, end]` of a `bits`-bit family.
fn cidr_blocks(mut start: u128, end: u128, bits: u8) -> Vec<(u128, u8)> {
    let mut blocks = Vec::new();
    loop {
        // The largest block that starts at `start` (aligned) and does not pass `end`.
        let mut host_bits = start.trailing_zeros().min(u32::from(bits));
        while host_bits > 0 && block_last(start, host_bits).is_none_or(|last| last > end) {
            host_bits -= 1;
        }
        blocks.push((start, bits - host_bits as u8));
        let last = block_last(start, host_bits).expect("checked in the loop above");
        if last >= end {
            return blocks;
        }
        start = last + 1;
    }
}

/// `universe` minus every network of `denied`, as CIDR blocks, in address order.
fn complement(universe: (u128, u8), denied: &[(u128, u8)], bits: u8) -> Vec<(u128, u8)> {
    let (first, last) = range(universe.0, universe.1, bits);
    let mut holes: Vec<(u128, u128)> = denied
        .iter()
        .map(|&(net, prefix)| range(net, prefix, bits))
        .collect();
    holes.sort();
    let mut blocks = Vec::new();
    let mut next = Some(first);
    for (hole_start, hole_end) in holes {
        let Some(from) = next else { break };
        if hole_end < from || hole_start > last {
            continue;
        }
        if hole_start > from {
            blocks.extend(cidr_blocks(from, hole_start - 1, bits));
        }
        next = hole_end.checked_add(1).filter(|n| *n <= last);
    }
    if let Some(from) = next {
        blocks.extend(cidr_blocks(from, last, bits));
    }
    blocks
}

/// The networks a build may reach: every IPv4 address outside [`DENIED_V4`] and the IPv6
/// global unicast range outside [`DENIED_V6`]. About 80 blocks.
pub fn allowed_networks() -> Vec<Network> {
    let v4: Vec<(u128, u8)> = DENIED_V4
        .iter()
        .map(|(net, prefix, _)| (u128::from(u32::from(*net)), *prefix))
        .collect();
    let v6: Vec<(u128, u8)> = DENIED_V6
        .iter()
        .map(|(net, prefix, _)| (u128::from(*net), *prefix))
        .collect();
    let mut out: Vec<Network> = complement((0, 0), &v4, 32)
        .into_iter()
        .map(|(start, prefix)| Network {
            address: IpAddr::V4(Ipv4Addr::from(start as u32)),
            prefix,
        })
        .collect();
    out.extend(
        complement((u128::from(IPV6_UNIVERSE.0), IPV6_UNIVERSE.1), &v6, 128)
            .into_iter()
            .map(|(start, prefix)| Network {
                address: IpAddr::V6(Ipv6Addr::from(start)),
                prefix,
            }),
    );
    out
}

/// Whether a build may reach `address` without an exception (see [`allowed_networks`]).
pub fn is_allowed(address: IpAddr) -> bool {
    let address = match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    };
    allowed_networks().iter().any(|n| n.contains(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> IpAddr {
        IpAddr::V4(text.parse().unwrap())
    }

    fn v6(text: &str) -> IpAddr {
        IpAddr::V6(text.parse().unwrap())
    }

    #[test]
    fn cidr_blocks_are_minimal() {
        assert_eq!(cidr_blocks(0, u128::from(u32::MAX), 32), [(0, 0)]);
        assert_eq!(cidr_blocks(1, 6, 32), [(1, 32), (2, 31), (4, 31), (6, 32)]);
        assert_eq!(cidr_blocks(0, u128::MAX, 128), [(0, 0)]);
    }

    #[test]
    fn denied_ranges_are_not_allowed() {
        let allowed = allowed_networks();
        for (net, prefix, what) in DENIED_V4 {
            let (first, last) = range(u128::from(u32::from(*net)), *prefix, 32);
            for address in [first, first + 1, (first + last) / 2, last] {
                let address = v4(&Ipv4Addr::from(address as u32).to_string());
                assert!(!is_allowed(address), "{address} ({what})");
            }
        }
        for address in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.251",
        ] {
            assert!(!is_allowed(v4(address)), "{address}");
        }
        for address in [
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2002:a00:1::1",
            "2001:0:a00:1::1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_allowed(v6(address)), "{address}");
        }
        // The list is the exact complement: no block touches a denied one.
        for block in &allowed {
            for (net, prefix, _) in DENIED_V4 {
                let denied = Network {
                    address: IpAddr::V4(*net),
                    prefix: *prefix,
                };
                assert!(!denied.contains(block.address), "{block}");
            }
        }
    }

    #[test]
    fn public_and_documentation_addresses_are_allowed() {
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.2.10",
            "192.167.255.255",
            "192.169.0.0",
            "223.255.255.255",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "169.255.0.0",
        ] {
            assert!(is_allowed(v4(address)), "{address}");
        }
        for address in ["2606:4700::1111", "2001:db8::1", "2a00::1", "3fff::1"] {
            assert!(is_allowed(v6(address)), "{address}");
        }
        assert!(allowed_networks().len() < 100);
    }
}
