//! `left4me-docgen OUT`: writes what `make install` installs beside the binaries and is made
//! from `left4mectl`'s clap tree, so a new verb or flag is documented and completed without
//! anyone listing it:
//!
//! - `OUT/man/man1/left4mectl.1` and one page per subcommand (`left4mectl-start.1`,
//!   `left4mectl-game-update.1`, …), by clap_mangen, each with a SEE ALSO section;
//! - `OUT/completions/bash/left4mectl`, `OUT/completions/zsh/_left4mectl`,
//!   `OUT/completions/fish/left4mectl.fish`: the scripts that call `left4mectl` back for each
//!   Tab (`left4mectl::complete`), under the names each shell looks them up by.
//!
//! Build time only: the Makefile runs it and nothing installs it. The generated files are not
//! committed; the hand-written pages are in `man/`.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Command;
use left4mectl::complete;

/// The hand-written pages every generated page points to.
const SEE_ALSO: &str = ".SH \"SEE ALSO\"\n\
    .BR left4me (7),\n\
    .BR left4me.toml (5),\n\
    .BR left4me\\-generator (8),\n\
    .BR left4me\\-supervisor (8),\n\
    .BR left4me\\-sandbox (8),\n\
    .BR systemctl (1)\n";

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        bail!("usage: left4me-docgen OUT_DIR (writes OUT_DIR/man and OUT_DIR/completions)");
    };
    let out = PathBuf::from(out);
    let pages = write_man_pages(&out.join("man/man1"))?;
    write_completions(&out.join("completions"))?;
    println!(
        "left4me-docgen: {pages} man pages and {} completion scripts in {}",
        complete::SHELLS.len(),
        out.display()
    );
    Ok(())
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// A file written whole, or an error naming it.
fn write_file(path: &Path, write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> Result<()> {
    let mut text = Vec::new();
    write(&mut text).with_context(|| format!("cannot render {}", path.display()))?;
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// One page for the command and one for each (non-hidden) subcommand, recursively; returns
/// how many.
fn write_man_pages(dir: &Path) -> Result<usize> {
    create_dir(dir)?;
    let mut cmd = complete::command().disable_help_subcommand(true);
    cmd.build();
    write_page(cmd, dir)
}

fn write_page(cmd: Command, dir: &Path) -> Result<usize> {
    let mut count = 0;
    for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        count += write_page(sub.clone(), dir)?;
    }
    let man = clap_mangen::Man::new(cmd).manual("left4me");
    let path = dir.join(man.get_filename());
    write_file(&path, |text| {
        man.render(text)?;
        text.write_all(SEE_ALSO.as_bytes())
    })?;
    Ok(count + 1)
}

fn write_completions(dir: &Path) -> Result<()> {
    for shell in complete::SHELLS {
        let file = match *shell {
            "bash" => "left4mectl",
            "zsh" => "_left4mectl",
            "fish" => "left4mectl.fish",
            other => bail!("no install name for the {other} completion"),
        };
        let shell_dir = dir.join(shell);
        create_dir(&shell_dir)?;
        write_file(&shell_dir.join(file), |text| {
            complete::write_registration(shell, text)
        })?;
    }
    Ok(())
}
