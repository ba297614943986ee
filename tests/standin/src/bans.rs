//! Failed RCON auths and the address bans they lead to, as srcds's `HandleFailedRconAuth`
//! (`engine/sv_rcon.cpp`) and its `addip` ban list keep them.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::rcon::Settings;

/// Failed-auth records kept (srcds keeps 32, dropping the one with the oldest failure).
const MAX_FAILURE_RECORDS: usize = 32;
/// Failure times kept per address (`sv_rcon_maxfailures` is at most 20).
const MAX_FAILURE_TIMES: usize = 20;

/// Failed auths and bans, by address (the port does not count).
#[derive(Debug, Default)]
pub struct Guard {
    failures: Vec<Failures>,
    /// Banned addresses, with the end of the ban (`None`: until restart).
    bans: Vec<(IpAddr, Option<Instant>)>,
}

#[derive(Debug)]
struct Failures {
    ip: IpAddr,
    count: u32,
    times: VecDeque<Instant>,
}

impl Guard {
    /// Whether `ip` is banned at `now` (an expired ban is lifted).
    pub fn is_banned(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.bans
            .retain(|(_, until)| until.is_none_or(|until| now < until));
        self.bans.iter().any(|(banned, _)| *banned == ip)
    }

    /// srcds's `HandleFailedRconAuth`: count a failure of `ip`; returns the log lines and
    /// whether the address is now banned.
    pub fn failed(&mut self, ip: IpAddr, s: &Settings, now: Instant) -> (Vec<String>, bool) {
        if !s.whitelist.is_empty() && s.whitelist == ip.to_string() {
            return (
                vec![format!("Rcon auth failed from rcon whitelist address {ip}")],
                false,
            );
        }
        let index = match self.failures.iter().position(|f| f.ip == ip) {
            Some(index) => index,
            None => {
                if self.failures.len() >= MAX_FAILURE_RECORDS {
                    let oldest = (0..self.failures.len())
                        .min_by_key(|&i| self.failures[i].times.back().copied())
                        .expect("records exist");
                    self.failures.remove(oldest);
                }
                self.failures.push(Failures {
                    ip,
                    count: 0,
                    times: VecDeque::new(),
                });
                self.failures.len() - 1
            }
        };
        let record = &mut self.failures[index];
        record.count += 1;
        record.times.push_back(now);
        while record.times.len() > MAX_FAILURE_TIMES {
            record.times.pop_front();
        }
        // srcds swaps the two cvars when max < min.
        let (min, max) = if s.max_failures < s.min_failures {
            (s.max_failures, s.min_failures)
        } else {
            (s.min_failures, s.max_failures)
        };
        let recent = record
            .times
            .iter()
            .filter(|&&at| at + s.min_failure_time >= now)
            .count();
        if record.count > max || recent > min as usize {
            let until = (s.ban_minutes > 0)
                .then(|| now + Duration::from_secs(u64::from(s.ban_minutes) * 60));
            self.bans.retain(|(banned, _)| *banned != ip);
            self.bans.push((ip, until));
            return (
                vec![
                    format!("Banning {ip} for rcon hacking attempts"),
                    format!("addip {} {ip}", s.ban_minutes),
                ],
                true,
            );
        }
        (Vec::new(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            password: "pw".into(),
            max_failures: 10,
            min_failures: 2,
            min_failure_time: Duration::from_secs(30),
            ban_minutes: 1,
            whitelist: String::new(),
            max_packet_size: 0,
            max_packet_bans: true,
        }
    }

    #[test]
    fn bans_after_too_many_recent_failures_for_the_penalty() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        let mut guard = Guard::default();
        assert!(!guard.failed(ip, &settings(), t0).1);
        assert!(!guard.failed(ip, &settings(), t0).1);
        let (lines, banned) = guard.failed(ip, &settings(), t0 + Duration::from_secs(1));
        assert!(banned, "3 failures > sv_rcon_minfailures 2 within 30 s");
        assert_eq!(lines[0], "Banning 127.0.0.1 for rcon hacking attempts");
        assert!(guard.is_banned(ip, t0 + Duration::from_secs(60)));
        assert!(!guard.is_banned(other, t0));
        assert!(
            !guard.is_banned(ip, t0 + Duration::from_secs(61)),
            "1 minute"
        );

        // Old failures fall out of the window; the total still counts.
        let mut guard = Guard::default();
        let s = Settings {
            max_failures: 3,
            ..settings()
        };
        for n in 0..3 {
            let at = t0 + Duration::from_secs(100 * n);
            assert!(!guard.failed(ip, &s, at).1);
        }
        assert!(
            guard.failed(ip, &s, t0 + Duration::from_secs(400)).1,
            "4 > 3"
        );

        let whitelisted = Settings {
            whitelist: "127.0.0.1".into(),
            ..settings()
        };
        let mut guard = Guard::default();
        for _ in 0..10 {
            assert!(!guard.failed(ip, &whitelisted, t0).1);
        }
        let permanent = Settings {
            ban_minutes: 0,
            ..settings()
        };
        for _ in 0..3 {
            guard.failed(other, &permanent, t0);
        }
        assert!(guard.is_banned(other, t0 + Duration::from_secs(1_000_000)));
    }
}
