//! The [`Progress`] a SteamCMD run streams into: every line scrubbed of the beta password,
//! classified ([`left4me_game::steamcmd::output`]), progress lines turned into [`Download`]s
//! with rate and ETA, and everything passed on to the caller's [`GameProgress`].

use std::time::Duration;

use left4me_game::steamcmd::output::{self, Line};

use super::{Download, GameEvent, GameProgress};
use crate::progress::{Event, Progress};

/// The most output of one run kept for `app_info_print` (the document is some 10 KiB).
const MAX_CAPTURE: usize = 8 << 20;

/// Where the current phase started: its state, time and bytes done.
#[derive(Debug, Clone, Copy)]
struct PhaseStart {
    state: u32,
    at: Duration,
    done: u64,
}

pub(super) struct Tap<'p> {
    out: &'p mut dyn GameProgress,
    secret: Option<String>,
    /// The classified lines of the current run that were not [`Line::Other`].
    pub lines: Vec<Line>,
    /// The current run's output (bounded), for `app_info_print`.
    pub text: String,
    phase: Option<PhaseStart>,
}

impl<'p> Tap<'p> {
    pub fn new(out: &'p mut dyn GameProgress, secret: Option<&str>) -> Self {
        Tap {
            out,
            secret: secret.filter(|s| !s.is_empty()).map(str::to_owned),
            lines: Vec::new(),
            text: String::new(),
            phase: None,
        }
    }

    /// Forgets the previous run's lines.
    pub fn begin_run(&mut self) {
        self.lines.clear();
        self.text.clear();
        self.phase = None;
    }

    /// Tells the caller `event`.
    pub fn tell(&mut self, event: GameEvent<'_>) {
        self.out.event(event);
    }

    /// `text` with the secret replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        match &self.secret {
            Some(secret) => text.replace(secret.as_str(), "***"),
            None => text.to_owned(),
        }
    }

    fn download(&mut self, at: Duration, p: &output::Progress) -> Download {
        let start = match self.phase {
            Some(start) if start.state == p.state && start.done <= p.done => start,
            _ => {
                let start = PhaseStart {
                    state: p.state,
                    at,
                    done: p.done,
                };
                self.phase = Some(start);
                start
            }
        };
        let elapsed = at.saturating_sub(start.at).as_secs_f64();
        let rate = (elapsed >= 1.0).then(|| (p.done - start.done) as f64 / elapsed);
        let eta = rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(p.total.saturating_sub(p.done) as f64 / r));
        Download {
            phase: p.phase,
            name: p.name.clone(),
            percent: p.percent,
            done: p.done,
            total: p.total,
            rate,
            eta,
        }
    }
}

impl Progress for Tap<'_> {
    fn event(&mut self, event: Event<'_>) {
        let Event::Line { at, text } = event else {
            self.out.event(GameEvent::Job(event));
            return;
        };
        let text = self.scrub(text);
        if self.text.len() + text.len() < MAX_CAPTURE {
            self.text.push_str(&text);
            self.text.push('\n');
        }
        let line = output::classify(&text);
        if let Line::Progress(p) = &line {
            let download = self.download(at, p);
            self.out.event(GameEvent::Download(&download));
        }
        if line != Line::Other {
            self.lines.push(line);
        }
        self.out
            .event(GameEvent::Job(Event::Line { at, text: &text }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_scrubs_and_keeps_what_counts() {
        let mut downloads = Vec::new();
        let mut shown = Vec::new();
        let mut sink = |event: GameEvent<'_>| match event {
            GameEvent::Download(d) => downloads.push(d.clone()),
            GameEvent::Job(Event::Line { text, .. }) => shown.push(text.to_owned()),
            _ => {}
        };
        let mut tap = Tap::new(&mut sink, Some("hunter2"));
        let line = |tap: &mut Tap<'_>, secs: u64, text: &str| {
            tap.event(Event::Line {
                at: Duration::from_secs(secs),
                text,
            })
        };
        line(
            &mut tap,
            0,
            "app_update 222860 -beta b -betapassword hunter2",
        );
        line(
            &mut tap,
            1,
            " Update state (0x61) downloading, progress: 10.00 (100 / 1000)",
        );
        line(
            &mut tap,
            3,
            " Update state (0x61) downloading, progress: 50.00 (500 / 1000)",
        );
        line(&mut tap, 4, "Success! App '222860' fully installed.");
        assert_eq!(tap.lines.len(), 3);
        assert!(!tap.text.contains("hunter2"));
        drop(tap);
        assert_eq!(shown[0], "app_update 222860 -beta b -betapassword ***");
        assert_eq!(downloads.len(), 2);
        assert_eq!(downloads[0].rate, None);
        assert_eq!(downloads[1].rate, Some(200.0));
        assert_eq!(downloads[1].eta, Some(Duration::from_secs_f64(2.5)));
    }
}
