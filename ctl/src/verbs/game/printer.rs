//! What a game verb prints while SteamCMD runs: a progress bar with rate and ETA on a
//! terminal, SteamCMD's own lines (with the time since the start) otherwise; notes on stderr.

use std::io::{IsTerminal as _, Write as _};

use left4me_jobs::steamcmd::{Download, GameEvent, GameProgress};
use left4me_jobs::{Event, Progress, format_bytes, format_duration};

/// The width of the bar, in characters.
const BAR: usize = 30;

/// Prints a game job's events.
pub struct Printer {
    verbose: u8,
    /// Draw a bar (stderr is a terminal) instead of printing progress lines.
    bar: bool,
    /// A bar is on the screen (the next line must clear it).
    drawn: bool,
    /// Print SteamCMD's lines at all (`check` keeps quiet unless `-v`).
    lines: bool,
}

impl Printer {
    pub fn new(verbose: u8) -> Self {
        Printer {
            verbose,
            bar: std::io::stderr().is_terminal(),
            drawn: false,
            lines: true,
        }
    }

    /// A printer that shows SteamCMD's lines only with `-v`.
    pub fn quiet(verbose: u8) -> Self {
        Printer {
            lines: verbose >= 1,
            ..Printer::new(verbose)
        }
    }

    /// Ends the bar's line.
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }

    fn line(&mut self, text: &str) {
        self.finish();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    fn draw(&mut self, d: &Download) {
        let filled = ((d.percent / 100.0) * BAR as f64)
            .round()
            .clamp(0.0, BAR as f64) as usize;
        let rate = d
            .rate
            .map_or(String::new(), |r| format!("  {}/s", format_bytes(r as u64)));
        let eta = d
            .eta
            .map_or(String::new(), |e| format!("  ETA {}", format_duration(e)));
        eprint!(
            "\r{:<18} [{}{}] {:>6.2}%  {} / {}{rate}{eta}\x1b[K",
            d.name,
            "#".repeat(filled),
            "-".repeat(BAR - filled),
            d.percent,
            format_bytes(d.done),
            format_bytes(d.total),
        );
        let _ = std::io::stderr().flush();
        self.drawn = true;
    }
}

impl GameProgress for Printer {
    fn event(&mut self, event: GameEvent<'_>) {
        match event {
            GameEvent::Job(event) => Progress::event(self, event),
            GameEvent::Run { pass, run } => {
                if self.lines || self.verbose >= 1 {
                    let platform = pass
                        .platform
                        .map_or(String::new(), |p| format!(", platform {}", p.as_str()));
                    let validate = if pass.validate { ", validate" } else { "" };
                    self.line(&format!("SteamCMD run {run}{platform}{validate}"));
                }
            }
            GameEvent::Download(download) if self.bar && self.lines => self.draw(download),
            GameEvent::Download(_) => {}
            GameEvent::Waiting { why, wait } => {
                self.finish();
                eprintln!("{why}: trying again in {}", format_duration(wait));
            }
            GameEvent::PlatformWorkaround => {
                self.finish();
                eprintln!(
                    "Steam refused the anonymous Linux install (\"Invalid platform\"): taking the \
                     known workaround, a windows pass then a linux pass with validate"
                );
            }
        }
    }
}

impl Progress for Printer {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Line { at, text } => {
                // On a terminal the bar stands for SteamCMD's progress lines.
                if !self.lines || (self.bar && text.contains("Update state (")) {
                    return;
                }
                self.line(&format!("[{:>7.1}s] {text}", at.as_secs_f64()));
            }
            Event::Starting(start) if self.verbose >= 1 => {
                self.finish();
                eprintln!("SteamCMD runs in {}", start.unit);
            }
            Event::Stopping { signal, unit } => {
                self.finish();
                eprintln!("left4mectl: signal {signal}: stopping {unit}");
            }
            Event::Warning(warning) => {
                self.finish();
                eprintln!("warning: {warning}");
            }
            _ => {}
        }
    }
}
