//! `<game>/standin.control`: what tests ask of the running stand-in, one word per line.
//!
//! The file describes the *current* state, so removing a line undoes it (except `crash`):
//! `hang`, `wedge`, `crash`, `players N` (N anonymous players `Player 1`..), and
//! `player NAME [SCORE]` (one named player per line; a last word that is a number is the score).
//! `#` comments and empty lines are ignored; unknown words are logged once and ignored.

use std::collections::BTreeSet;
use std::path::Path;

use crate::players::Wanted;

/// Faults and players asked for through the control file.
#[derive(Debug, Default)]
pub struct Control {
    pub hang: bool,
    pub crash: bool,
    pub wedge: bool,
    /// `players N`: the anonymous players now (else `+standin_players`).
    pub players: Option<u8>,
    /// `player NAME [SCORE]` lines, in order.
    pub named: Vec<(String, i32)>,
    unknown_logged: BTreeSet<String>,
}

impl Control {
    /// Read the file again (a missing file asks for nothing); `log` gets one line per unknown
    /// word, the first time it is seen.
    pub fn reread(&mut self, path: &Path, log: &mut dyn FnMut(&str)) {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        self.parse(&text, log);
    }

    fn parse(&mut self, text: &str, log: &mut dyn FnMut(&str)) {
        (self.hang, self.crash, self.wedge, self.players) = (false, false, false, None);
        self.named.clear();
        for word in text.lines().map(str::trim) {
            let players = word
                .strip_prefix("players ")
                .and_then(|n| n.trim().parse::<u8>().ok());
            let player = word.strip_prefix("player ").map(str::trim);
            match word.to_ascii_lowercase().as_str() {
                "" => {}
                w if w.starts_with('#') => {}
                _ if players.is_some() => self.players = players,
                _ if player.is_some_and(|p| !p.is_empty()) => {
                    let player = player.unwrap_or_default();
                    let entry = match player.rsplit_once(char::is_whitespace) {
                        Some((name, score)) if score.parse::<i32>().is_ok() => {
                            (name.trim_end().to_owned(), score.parse().unwrap_or(0))
                        }
                        _ => (player.to_owned(), 0),
                    };
                    self.named.push(entry);
                }
                "hang" => self.hang = true,
                "crash" => self.crash = true,
                "wedge" => self.wedge = true,
                other => {
                    if self.unknown_logged.insert(other.to_owned()) {
                        log(&format!("control: unknown word {other:?} ignored"));
                    }
                }
            }
        }
    }

    /// The players asked for; `default_anonymous` (`+standin_players`) when there is no
    /// `players N` line.
    pub fn wanted(&self, default_anonymous: u8) -> Wanted {
        Wanted {
            anonymous: self.players.unwrap_or(default_anonymous),
            named: self.named.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_word() {
        let mut control = Control::default();
        let mut logged = Vec::new();
        control.parse(
            "# a test\nhang\nplayers 2\nplayer Alice\nplayer Bob Smith 12\nplayer   \nbogus\nbogus\n",
            &mut |l: &str| logged.push(l.to_owned()),
        );
        assert!(control.hang && !control.wedge && !control.crash);
        assert_eq!(control.players, Some(2));
        assert_eq!(
            control.named,
            [("Alice".to_owned(), 0), ("Bob Smith".to_owned(), 12)]
        );
        assert_eq!(logged.len(), 2, "{logged:?}");
        assert_eq!(control.wanted(5).anonymous, 2);
        control.parse("", &mut |_: &str| {});
        assert_eq!(
            control.wanted(5),
            Wanted {
                anonymous: 5,
                named: vec![]
            }
        );
    }
}
