//! The command line: a derive `Parser` with one variant per verb.
//!
//! Every verb has a long help with an EXAMPLES section; `left4mectl VERB --help` is meant to be
//! enough to use it. The help of every command is snapshot-tested
//! (`tests/snapshots/help/*.txt`, one file per command, the list taken from this tree).
//!
//! Longer than 600 lines on purpose: most of it is help text, and the whole command tree reads
//! top to bottom in one file, in the order `left4mectl --help` shows it.

use clap::{ArgAction, Args, Parser, Subcommand};

/// Operate left4me: the Left 4 Dead 2 server instances of this host.
#[derive(Debug, Parser)]
#[command(
    name = "left4mectl",
    version = env!("LEFT4ME_LONG_VERSION"),
    max_term_width = 100,
    long_about = "Operate left4me: the Left 4 Dead 2 server instances of this host.\n\n\
        Each instance is one spec file, /etc/left4me/instances/NAME.toml; blueprints \
        (/etc/left4me/blueprints/NAME.toml) hold settings several instances share. left4mectl \
        creates, edits and checks these files. It never installs a spec that does not validate, \
        and after a change it runs `systemctl daemon-reload` so the boot-time generator turns \
        the specs into unit settings again.\n\n\
        It also runs the instances, each the systemd unit left4me-server@NAME.service: start, \
        stop, restart, reset and delete wait for the outcome and say it; status and list show \
        the live state.\n\n\
        Overlays, the content layers instances stack over the game install, are defined, \
        built in a sandbox and listed with `left4mectl overlay`.\n\n\
        LEFT4ME_CONFIG_DIR and LEFT4ME_STATE_DIR point it at another config or state directory.",
    after_long_help = "EXIT STATUS:\n  \
        0  success\n  \
        1  runtime error (I/O, systemctl failed)\n  \
        2  usage or validation error; nothing was changed\n\n\
        EXAMPLES:\n  \
        left4mectl create coop1 --port 27015 --blueprint coop\n  \
        left4mectl set coop1 map=c2m1_highway resources.memory_max=3G\n  \
        left4mectl edit coop1\n  \
        left4mectl list\n  \
        left4mectl validate\n  \
        left4mectl render coop1\n  \
        left4mectl start coop1\n  \
        left4mectl status coop1"
)]
pub struct Cli {
    /// Say more about what happens (repeat for more)
    #[arg(short, long, action = ArgAction::Count, global = true, help_heading = "Global options")]
    pub verbose: u8,

    /// Do not run `systemctl daemon-reload` after a change
    #[arg(long, global = true, help_heading = "Global options")]
    pub no_reload: bool,

    /// Why: kept with the revision of this change (`left4mectl history`)
    #[arg(
        short,
        long,
        global = true,
        value_name = "MSG",
        help_heading = "Global options"
    )]
    pub message: Option<String>,

    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Create an instance spec
    #[command(
        long_about = "Create an instance spec: write /etc/left4me/instances/NAME.toml.\n\n\
            Refuses when the instance exists or when the spec would not validate: the port must \
            lie in the host's port_range and be used by no other instance, the blueprint must \
            exist, overlay paths must lie beneath overlays/, workshop_cache/ or installation/ of \
            the state dir. Settings not given here come from the blueprint or the defaults; \
            change them later with `left4mectl set` or `left4mectl edit`.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl create coop1 --port 27015\n  \
            left4mectl create coop2 --port 27016 --blueprint coop --map c2m1_highway\n  \
            left4mectl create vs1 --port 27020 --maxplayers 8 \\\n      \
            --overlay overlays/sourcemod --overlay overlays/tickrate:tickrate"
    )]
    Create(CreateArgs),

    /// Edit an instance spec in $VISUAL / $EDITOR
    #[command(
        long_about = "Edit an instance spec in your editor ($VISUAL, else $EDITOR, else `editor`, \
            else `vi`).\n\n\
            The editor works on a hidden copy next to the spec. When it exits, the copy is \
            validated; a valid copy replaces the spec, an unchanged one changes nothing. When \
            the copy is invalid the error is shown and you are asked whether to edit again; the \
            spec is never replaced by an invalid one. Without a terminal on stdin an invalid \
            copy is an error (exit status 2).",
        after_long_help = "EXAMPLES:\n  \
            left4mectl edit coop1\n  \
            EDITOR=nano left4mectl edit coop1"
    )]
    Edit {
        /// The instance
        name: String,
    },

    /// Change keys of an instance spec, keeping comments and layout
    #[command(
        long_about = "Change keys of an instance spec, keeping its comments and layout.\n\n\
            KEY is a spec key; keys of tables are dotted (resources.memory_max, \
            health.watchdog). VALUE is read as TOML when it is a TOML value (27016, true, \
            [\"-tickrate\", \"60\"]) and as a plain string otherwise (c2m1_highway). Keys that \
            hold text (map, blueprint, config, resources.cpu_affinity, resources.memory_high, \
            resources.memory_max, health.ready_timeout, health.watchdog, schedule.restart, \
            schedule.max_wait) always take VALUE as a string, so watchdog=0 means \"0\". An \
            empty VALUE (KEY=) is refused: remove a key with --unset KEY.\n\n\
            The result is validated before it is installed; on an error nothing changes.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl set coop1 map=c2m1_highway maxplayers=8\n  \
            left4mectl set coop1 port=27016\n  \
            left4mectl set coop1 'args=[\"-tickrate\", \"60\"]'\n  \
            left4mectl set coop1 resources.memory_max=3G health.watchdog=0\n  \
            left4mectl set coop1 schedule.restart='*-*-* 05:00:00' schedule.max_wait=90min\n  \
            left4mectl set coop1 --unset maxplayers --unset resources.nice"
    )]
    Set(SetArgs),

    /// Show the effective spec of an instance (blueprint merged)
    #[command(
        long_about = "Show the effective spec of an instance: its file with the blueprint merged \
            in and defaults filled in, as the generator and the supervisor see it.\n\n\
            --json prints the spec as one JSON object (see ctl/README.md for its shape).",
        after_long_help = "EXAMPLES:\n  \
            left4mectl show coop1\n  \
            left4mectl show coop1 --json | jq .port"
    )]
    Show {
        /// The instance
        name: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },

    /// List every instance spec and whether it is valid
    #[command(
        long_about = "List every instance spec: name, port, map, blueprint and \"ok\" or why the \
            spec is refused. An invalid instance is skipped by the generator at boot.\n\n\
            --json prints an array of objects (see ctl/README.md for its shape).",
        after_long_help = "EXAMPLES:\n  \
            left4mectl list\n  \
            left4mectl list --json | jq -r '.[] | select(.ok | not) | .name'"
    )]
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },

    /// Validate specs the way the generator does
    #[command(
        long_about = "Validate specs with the code the generator runs at boot.\n\n\
            Without an argument: every instance, blueprint and overlay definition (and \
            host.toml); one line per invalid file, then a summary. With a NAME: that instance. \
            With a FILE (a path containing '/' or ending in .toml): that file, as a blueprint \
            when it lies in a directory named blueprints, as an overlay definition in one named \
            overlays, as host settings when it is host.toml, else as an instance spec named by \
            the file stem. Exit status 2 when anything is invalid.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl validate\n  \
            left4mectl validate coop1\n  \
            left4mectl validate ./coop9.toml\n  \
            left4mectl validate /etc/left4me/blueprints/coop.toml"
    )]
    Validate {
        /// An instance name or a spec file; none: everything
        target: Option<String>,
    },

    /// Show what an instance's spec turns into (dry run)
    #[command(
        long_about = "Show what an instance's spec turns into, without changing anything: the \
            generator's drop-in, the composed server.cfg, the overlay lower-dir stack (topmost \
            first), the alias cfgs staged into the upper dir, and the srcds command line.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl render coop1\n  \
            left4mectl render coop1 --json | jq -r '.argv | @sh'"
    )]
    Render {
        /// The instance
        name: String,
        /// Print JSON instead of labelled sections
        #[arg(long)]
        json: bool,
    },

    /// Start instances; wait until the game answers
    #[command(
        long_about = "Start instances: `systemctl enable --now left4me-server@NAME`, so they \
            also start at boot.\n\n\
            Waits until each instance is active, which means its game server answers queries \
            (the supervisor tells systemd only then), and prints its status line. When one does \
            not start, prints why: the unit's state and result, the supervisor's status, how \
            the game ended and the unit's last journal lines; the exit status is then 1.\n\n\
            A spec that does not validate is not started (exit status 2). When systemd has not \
            read the current spec yet, `systemctl daemon-reload` runs first; an instance that \
            systemd gave up on (failed, start limit hit) gets a fresh try.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl start coop1\n  \
            left4mectl start coop1 coop2 vs1"
    )]
    Start {
        /// The instances
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },

    /// Stop instances; they no longer start at boot
    #[command(
        long_about = "Stop instances: `systemctl disable --now left4me-server@NAME`.\n\n\
            Waits until the game has quit and the overlay is unmounted. The instance's files \
            (runtime/NAME) and spec are kept; `left4mectl start NAME` starts it again.\n\n\
            --when-empty first waits until nobody plays on each instance (its A2S player count \
            is 0; bots do not count; one that does not answer is not empty) and stops each as \
            soon as it is; see `left4mectl restart --help` for --max-wait, --announce, \
            --or-skip and the exit statuses.",
        after_long_help = "EXIT STATUS:\n  \
            0  every instance stopped (with --when-empty: each once it was empty)\n  \
            1  runtime error (a stop failed, systemctl failed)\n  \
            2  usage or validation error; nothing was changed\n  \
            3  --max-wait passed: an instance was stopped with players still on it\n  \
            4  --max-wait passed with --or-skip: an instance was left running\n\n\
            EXAMPLES:\n  \
            left4mectl stop coop1\n  \
            left4mectl stop coop1 coop2\n  \
            left4mectl stop coop1 --when-empty --max-wait 2h --announce 'Server closes at 3:00'"
    )]
    Stop {
        /// The instances
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        #[command(flatten)]
        when: WhenEmptyArgs,
    },

    /// Restart instances; wait until the game answers
    #[command(
        long_about = "Restart instances: stop them if they run, then start them as `start` \
            does (enabled, waiting until the game answers). A changed spec takes effect.\n\n\
            --when-empty first waits until nobody plays on each instance: its A2S player count \
            (humans; bots do not count) is 0. Each instance is restarted on its own as soon as \
            it is empty; the others are asked again every 250 ms, so a restart follows the \
            last player's leaving within a second. An instance that does not answer queries \
            (loading, changing maps, hung) is not empty: it is asked again. --announce MSG \
            says MSG to the players (`say` over RCON) when an instance is first found with \
            players. After --max-wait the instance is restarted anyway, after saying MSG \
            again, or with --or-skip left running (exit statuses 3 and 4). Without --max-wait \
            the wait has no end (Ctrl-C ends it; nothing was changed on the instances still \
            waited for).\n\n\
            --if-running leaves instances that are not running alone (exit status 0): what a \
            scheduled restart wants.",
        after_long_help = "EXIT STATUS:\n  \
            0  every instance restarted (with --when-empty: each once it was empty), or left \
            alone by --if-running\n  \
            1  runtime error (an instance did not start again, systemctl failed)\n  \
            2  usage or validation error; nothing was changed\n  \
            3  --max-wait passed: an instance was restarted with players still on it\n  \
            4  --max-wait passed with --or-skip: an instance was left as it was\n\n\
            EXAMPLES:\n  \
            left4mectl restart coop1\n  \
            left4mectl restart coop1 coop2 --when-empty\n  \
            left4mectl restart coop1 --when-empty --max-wait 30min --announce 'Restart in 30 min'\n  \
            left4mectl restart coop1 --when-empty --max-wait 2h --or-skip\n  \
            left4mectl restart coop1 --if-running --when-empty --max-wait 2h"
    )]
    Restart {
        /// The instances
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        #[command(flatten)]
        when: WhenEmptyArgs,
        /// Leave instances that are not running alone (exit status 0)
        #[arg(long)]
        if_running: bool,
    },

    /// Stop an instance and delete its files; keep the spec
    #[command(
        long_about = "Reset an instance: stop it, make sure its overlay is unmounted \
            (`left4me-supervisor cleanup NAME`) and delete its runtime dir \
            (<state dir>/runtime/NAME: the writable layer with everything the game wrote, logs \
            included). The spec, and whether the instance starts at boot, are kept: the next \
            start begins from scratch.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl reset coop1 && left4mectl start coop1"
    )]
    Reset {
        /// The instance
        name: String,
    },

    /// Stop an instance and delete it, spec included
    #[command(
        long_about = "Delete an instance: reset it (stop, unmount, delete its runtime dir), \
            disable it, remove its spec and reload systemd.\n\n\
            Asks for confirmation on a terminal; without a terminal it refuses unless --yes is \
            given (exit status 2).",
        after_long_help = "EXAMPLES:\n  \
            left4mectl delete coop9\n  \
            left4mectl delete coop9 --yes"
    )]
    Delete {
        /// The instance
        name: String,
        /// Do not ask for confirmation
        #[arg(short, long)]
        yes: bool,
    },

    /// Show whether an instance runs, and how
    #[command(
        long_about = "Show an instance's live state: whether its spec is valid, the unit's \
            state (active, activating, failed …) and since when, the supervisor's status line \
            (map, players, or what it waits for), main PID, memory, restarts, how the game \
            last ended, systemd's result (e.g. start-limit-hit) and the last journal lines.\n\n\
            --json prints one JSON object (see ctl/README.md for its shape).",
        after_long_help = "EXAMPLES:\n  \
            left4mectl status coop1\n  \
            left4mectl status coop1 --json | jq -r .status_text"
    )]
    Status {
        /// The instance
        name: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },

    /// List the players on an instance (A2S_PLAYER)
    #[command(
        long_about = "List the players on a running instance, as its game answers A2S_PLAYER \
            on its port: name, score and time connected (h:mm:ss), then the count of human \
            players, bots and the player limit (A2S_INFO). A player still connecting has no \
            name yet and shows as (connecting).\n\n\
            --json prints an array of {\"name\", \"score\", \"seconds\"}. An instance that is not \
            running, or whose game does not answer, is an error (exit status 1).",
        after_long_help = "EXAMPLES:\n  \
            left4mectl players coop1\n  \
            left4mectl players coop1 --json | jq -r '.[].name'"
    )]
    Players {
        /// The instance
        name: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },

    /// Run console commands on a running instance (RCON)
    #[command(
        long_about = "Run console commands on a running instance over RCON (TCP to the \
            instance's port on 127.0.0.1), authenticated with the instance's password, which \
            root keeps in <admin dir>/rcon/NAME: run it as root (sudo).\n\n\
            With a COMMAND (its words joined by spaces), run it, print the server's reply and \
            exit. Without one, on a terminal: an interactive console with line editing and \
            history (~/.local/state/left4me/rcon_history, or under $XDG_STATE_HOME); Ctrl-C \
            clears the line and never reaches the server, Ctrl-D leaves. Without one and with \
            stdin not a terminal: run each line of stdin as a command, stopping at the first \
            failure.\n\n\
            Exit status 1 when the server cannot be reached (not running), refuses the \
            password or does not answer within --timeout.",
        after_long_help = "EXAMPLES:\n  \
            sudo left4mectl rcon coop1 status\n  \
            sudo left4mectl rcon coop1 changelevel c2m1_highway\n  \
            sudo left4mectl rcon coop1 say \"restart in 5 minutes\"\n  \
            sudo left4mectl rcon coop1\n  \
            printf 'status\\nmaps *\\n' | sudo left4mectl rcon coop1\n  \
            sudo left4mectl rcon --timeout 30s coop1 cvarlist"
    )]
    Rcon {
        /// The instance
        name: String,
        /// The command and its arguments; none: a console (or stdin's lines)
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<String>,
        /// How long to wait for the server to connect and to answer each command
        #[arg(long, value_name = "SPAN", default_value = "5s", value_parser = parse_timeout)]
        timeout: std::time::Duration,
    },

    /// Print or rotate an instance's RCON password
    #[command(
        long_about = "Print an instance's RCON password (root only), or with --rotate make a \
            new one and keep it. When the instance is running, --rotate also sets the new \
            password live over RCON (authenticated with the old one) and checks that it works; \
            the next start stages it anyway.\n\n\
            The password is generated at `left4mectl create` (or at the first start of an \
            instance whose spec was written by hand) and never appears in the spec, the \
            command line of the game, the journal or `left4mectl render`.",
        after_long_help = "EXAMPLES:\n  \
            sudo left4mectl rcon-password coop1\n  \
            sudo left4mectl rcon-password coop1 --rotate"
    )]
    RconPassword {
        /// The instance
        name: String,
        /// Make and keep a new password (and set it live when the instance runs)
        #[arg(long)]
        rotate: bool,
        /// How long to wait for a running server when setting the new password live
        #[arg(long, value_name = "SPAN", default_value = "5s", value_parser = parse_timeout)]
        timeout: std::time::Duration,
    },

    /// Show an instance's log (journalctl -u)
    #[command(
        long_about = "Show an instance's log: `journalctl -u left4me-server@NAME.service`, \
            which holds what the supervisor and the game printed and what systemd did.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl logs coop1 -n 50\n  \
            left4mectl logs coop1 -f"
    )]
    Logs {
        /// The instance
        name: String,
        /// Keep printing new lines as they come
        #[arg(short, long)]
        follow: bool,
        /// Show the last N lines
        #[arg(short = 'n', long, value_name = "N")]
        lines: Option<u32>,
    },

    /// Archive the config, manual overlays, upper layers and secrets in one file
    #[command(
        long_about = "Write one backup archive (tar + zstd, mode 0600) of what cannot be \
            downloaded or built again: host.toml, the instance specs, blueprints and overlay \
            definitions, the content of manual overlays, each selected instance's upper layer \
            (<state dir>/runtime/NAME/upper: everything the game wrote) and its RCON password, \
            with a manifest.json first listing every file with its size, SHA-256 and mode. The \
            game install, the workshop cache and the content of script and workshop overlays \
            are not archived: the manifest lists those overlays as rebuildable.\n\n\
            Without NAMEs every instance is archived. Each file is read once and archived \
            exactly as checksummed. A running instance is frozen (`systemctl freeze`, on \
            cgroup v2) while its files are read and thawed afterwards, so its upper layer is \
            archived as one moment; the game pauses for that long. Where systemd cannot \
            freeze, the upper layer is read live, file by file.\n\n\
            The archive goes to /var/lib/left4me-admin/backups/left4me-HOST-TIMESTAMP.tar.zst \
            unless -o names a file; it is written to a temp file and renamed into place. \
            --keep N then removes all but the newest N backups in that directory. The \
            left4me-backup.timer runs `left4mectl backup --keep 7` daily once enabled.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl backup\n  \
            left4mectl backup coop1 coop2 -o /root/coop.tar.zst\n  \
            left4mectl backup --keep 7\n  \
            systemctl enable --now left4me-backup.timer"
    )]
    Backup {
        /// The instances to archive (default: all)
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// Write the archive to FILE
        #[arg(short, long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Afterwards, remove all but the newest N backups in the archive's directory
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        keep: Option<u32>,
    },

    /// Restore instances, config and secrets from a backup archive
    #[command(
        long_about = "Restore from an archive made by `left4mectl backup`. The whole archive \
            is read and checked first: a corrupted or truncated file, a checksum mismatch or an \
            entry that is not a plain file or directory listed in the manifest (absolute paths, \
            `..`, links, devices) is refused before anything is written. Every restored spec is \
            then validated against this host as it would be afterwards (ports free and unique, \
            blueprints present).\n\n\
            Without NAMEs every instance in the archive is restored, with the blueprints, overlay \
            definitions and manual overlay content of the archive. An existing instance, or a \
            blueprint or overlay definition that differs, is refused unless --replace; the \
            upper layer of a running instance is never replaced (stop it first). This host's \
            host.toml and existing overlay content are kept.\n\n\
            Files are written atomically, upper layers owned by the game user, secrets 0600; \
            then systemd is reloaded. restore prints the instances to start and the overlays to \
            rebuild (`left4mectl overlay build NAME`).",
        after_long_help = "EXAMPLES:\n  \
            left4mectl restore /var/lib/left4me-admin/backups/left4me-host-20261206T040000Z.tar.zst --dry-run\n  \
            left4mectl restore backup.tar.zst\n  \
            left4mectl restore backup.tar.zst coop1 --replace"
    )]
    Restore {
        /// The archive
        file: std::path::PathBuf,
        /// The instances to restore (default: all in the archive)
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// Say what would be done; write nothing
        #[arg(long)]
        dry_run: bool,
        /// Overwrite existing instances (specs, upper layers) and differing blueprints and
        /// overlay definitions
        #[arg(long)]
        replace: bool,
    },

    /// Show the revisions of the specs: who changed what, when, and why
    #[command(
        long_about = "Show the revisions of the specs, newest first: every change left4mectl \
            made to an instance, a blueprint, an overlay definition or host.toml, and every \
            change made outside left4mectl (an editor, config management), found by content \
            hash on the next left4mectl run and recorded as \"changed outside left4mectl\".\n\n\
            Each revision has a number (one sequence for all specs), the time, who made it \
            (user, and the sudo user when run through sudo), the verb, what it did (created, \
            changed, removed) and the -m message. Without NAME it shows every spec's revisions. \
            The revisions are kept in root's database <admin dir>/left4me.db.\n\n\
            --json prints one JSON array (see ctl/README.md for its shape).",
        after_long_help = "EXAMPLES:\n  \
            left4mectl history coop1\n  \
            left4mectl history --blueprint coop\n  \
            left4mectl history --json | jq '.[] | select(.sudo_user == \"alice\")'\n  \
            left4mectl set coop1 hostname='\"Coop #1\"' -m 'new name for the league'"
    )]
    History {
        /// The instance
        #[arg(conflicts_with_all = ["blueprint", "overlay"])]
        name: Option<String>,
        /// Show the revisions of blueprint B
        #[arg(long, value_name = "B", conflicts_with = "overlay")]
        blueprint: Option<String>,
        /// Show the revisions of overlay definition O
        #[arg(long, value_name = "O")]
        overlay: Option<String>,
        /// Show at most N revisions
        #[arg(short = 'n', long, value_name = "N")]
        limit: Option<usize>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },

    /// Show what changed in a spec, as a unified diff
    #[command(
        long_about = "Show what changed in a spec, as a unified diff (coloured on a terminal).\n\n\
            Without REV: the spec as its last revision left it against the file now: what was \
            changed outside left4mectl since (diff itself records nothing; the next other \
            left4mectl run records such a change). With one REV: the spec as revision REV left it against the \
            file now. With two: as REV left it against as the second REV left it. The revision \
            numbers are those of `left4mectl history`; a revision must be of the spec named.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl diff coop1\n  \
            left4mectl diff coop1 41\n  \
            left4mectl diff coop1 41 44\n  \
            left4mectl diff --blueprint coop 12"
    )]
    Diff {
        #[command(flatten)]
        spec: SpecName,
        /// Revisions: from REV (to the file now, or to the second REV)
        #[arg(value_name = "REV", num_args = 0..=2)]
        revs: Vec<i64>,
    },

    /// Put a spec back as a revision left it
    #[command(
        long_about = "Put a spec back as revision REV left it, as a new change: the old text \
            is validated exactly like any change against the host and the other specs as they \
            are now (a rollback to a port another instance has taken since is refused with the \
            reason, and nothing is written), installed atomically, recorded as a revision of \
            its own (`-m` says why) and followed by `systemctl daemon-reload`. It says whether \
            a running instance needs a restart to pick it up.\n\n\
            A deleted instance comes back by rolling it back to a revision before its deletion \
            (see `left4mectl history NAME`); start it then.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl history coop1\n  \
            left4mectl diff coop1 41\n  \
            left4mectl rollback coop1 41 -m 'the new map crashes'\n  \
            left4mectl rollback --blueprint coop 12\n  \
            left4mectl restart coop1 --when-empty"
    )]
    Rollback {
        #[command(flatten)]
        spec: SpecName,
        /// The revision to go back to (see `left4mectl history`)
        #[arg(value_name = "REV")]
        rev: i64,
    },

    /// Manage blueprints: settings several instances share
    #[command(
        subcommand,
        long_about = "Manage blueprints: settings several instances share, kept in \
            /etc/left4me/blueprints/NAME.toml.\n\n\
            An instance names its blueprint with `blueprint = \"NAME\"`. Its own values win over \
            the blueprint's; overlays, args and config are the blueprint's first, then the \
            instance's. A change to a blueprint is refused when it would make an instance that \
            uses it invalid.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl blueprint create coop --map c1m1_hotel --maxplayers 4\n  \
            left4mectl blueprint set coop resources.memory_max=2G\n  \
            left4mectl blueprint list\n  \
            left4mectl create coop1 --port 27015 --blueprint coop"
    )]
    Blueprint(BlueprintVerb),

    /// Manage overlays: content layers, and the scripts that build them
    #[command(
        subcommand,
        long_about = "Manage overlays: content layers instances stack over the game install \
            (maps, addons, mods), listed lowest first in an instance's overlays.\n\n\
            An overlay's definition, /etc/left4me/overlays/NAME.toml, says how its content \
            (<state dir>/overlays/NAME) is made: by hand (kind = \"manual\") or by a shell \
            script that `overlay build` runs in a sandbox (kind = \"script\"): as an \
            unprivileged user, with /overlay its only writable directory besides /tmp, TCP only \
            to the allowed ports of public addresses, and the definition's memory, task and time \
            limits. Every build is recorded in the job ledger (`overlay jobs`).",
        after_long_help = "EXAMPLES:\n  \
            left4mectl overlay create sourcemod\n  \
            left4mectl overlay create maps --script-file maps.sh --timeout 2h\n  \
            left4mectl overlay build maps\n  \
            left4mectl overlay list\n  \
            left4mectl overlay jobs maps --log\n  \
            left4mectl set coop1 'overlays=[\"overlays/maps\"]'"
    )]
    Overlay(OverlayVerb),

    /// Install and update the game (SteamCMD), as immutable versions
    #[command(
        subcommand,
        long_about = "Install and update the game, Left 4 Dead 2 Dedicated Server (Steam app \
            222860), with SteamCMD.\n\n\
            Every install, update and validate publishes a new immutable version under \
            <state dir>/game/versions/ID (ID: the Steam build id); game/current names the newest \
            good one. An update stores only what changed (an overlayfs layer over the previous \
            version) and never touches the files of a version an instance runs. An instance \
            mounts the current version (or the one its spec pins with game_version = \"ID\") \
            when it starts and keeps it until it restarts, so an update costs players nothing \
            until then: `update --restart when-empty` restarts each instance onto the new \
            version as soon as nobody plays on it.\n\n\
            SteamCMD runs in the sandbox (as an unprivileged user, writing only the new \
            version's layer and its own home, public addresses only) in l4d2-build.slice; \
            every run is recorded in the job ledger (`left4mectl overlay jobs`). It is \
            host.toml's steamcmd, else Debian's /usr/games/steamcmd, else Valve's tarball \
            (host.toml steamcmd_url), copied into <state dir>/game/steamcmd on first use.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl game install\n  \
            left4mectl game check || left4mectl game update --restart when-empty --max-wait 2h\n  \
            left4mectl game versions\n  \
            left4mectl set coop1 game_version=12345678\n  \
            left4mectl game gc"
    )]
    Game(GameVerb),
}

#[derive(Debug, Subcommand)]
pub enum OverlayVerb {
    /// Create an overlay definition (and its empty content dir)
    #[command(
        long_about = "Create an overlay: write /etc/left4me/overlays/NAME.toml and create \
            <state dir>/overlays/NAME owned by the game user.\n\n\
            Without a script it is a manual overlay: put its files into the content dir. With \
            --script or --script-file it is a script overlay: `left4mectl overlay build NAME` \
            runs the script with bash in the sandbox. The script's working directory is \
            /overlay ($OVERLAY), which holds the overlay's current content (a copy: the \
            script's result replaces the content only when the script succeeds); it may write \
            there and to /tmp, and connect to the --allow-port ports (default 80 and 443) of \
            public addresses.\n\n\
            With --workshop or --collection it is a workshop overlay: `overlay build NAME` \
            resolves the items and collections with the Steam Web API (host.toml \
            steam_web_api; no Steam login or key), downloads what the cache lacks in the \
            sandbox and links each item as left4dead2/addons/ID.vpk; the nightly refresh \
            (left4me-overlay-refresh.timer) does it again. Change anything later with \
            `left4mectl overlay edit NAME`.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl overlay create sourcemod\n  \
            left4mectl overlay create maps --script-file examples/map-sync.sh\n  \
            left4mectl overlay create tickrate --script \\\n      \
            'curl -fsSL https://example.org/tickrate.tar.gz | tar -xz' --memory-max 512M\n  \
            left4mectl overlay create campaigns --workshop 123456789,2345678901\n  \
            left4mectl overlay create campaigns --collection 987654321 --exclude 123"
    )]
    Create(OverlayCreateArgs),

    /// Edit an overlay definition in $VISUAL / $EDITOR
    #[command(
        long_about = "Edit an overlay definition in your editor, like `left4mectl edit`: the \
            edited copy is checked (as `left4mectl validate` does) before it replaces the \
            definition. A changed script takes effect at the next `overlay build`.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl overlay edit maps"
    )]
    Edit {
        /// The overlay
        name: String,
    },

    /// Show an overlay: definition, content, users, last build
    #[command(
        long_about = "Show an overlay: its definition file and kind, its content dir and size, \
            the instances and blueprints that use it, and for script overlays the network \
            access, limits, script and last build.\n\n\
            --json prints one JSON object (see ctl/README.md).",
        after_long_help = "EXAMPLES:\n  \
            left4mectl overlay show maps\n  \
            left4mectl overlay show maps --json | jq .last_build.status"
    )]
    Show {
        /// The overlay
        name: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },

    /// List overlays with their last build
    #[command(
        long_about = "List every overlay definition: name, kind, how many instances and \
            blueprints use it, whether its content dir exists, its last build and whether the \
            definition is valid.\n\n\
            --json prints an array of objects (see ctl/README.md).",
        after_long_help = "EXAMPLES:\n  \
            left4mectl overlay list\n  \
            left4mectl overlay list --json | jq -r '.[] | select(.last_build.status == \"failed\") | .name'"
    )]
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },

    /// Remove an overlay: definition and content
    #[command(
        long_about = "Remove an overlay: its definition, its content dir and any old content \
            left by builds.\n\n\
            Refused while an instance or blueprint lists the overlay (they are named), and \
            while a running instance still has it mounted. Asks for confirmation on a \
            terminal; without one it refuses unless --yes (or --keep-content, which keeps the \
            content dir) is given. The build history stays in the ledger.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl overlay rm maps\n  \
            left4mectl overlay rm maps --keep-content"
    )]
    Rm {
        /// The overlay
        name: String,
        /// Keep the content dir <state dir>/overlays/NAME
        #[arg(long)]
        keep_content: bool,
        /// Do not ask for confirmation
        #[arg(short, long)]
        yes: bool,
    },

    /// Build a script or workshop overlay in the sandbox
    #[command(
        long_about = "Build an overlay. A script overlay: run its script in a transient systemd \
            unit (left4me-build-NAME-ID.service in l4d2-build.slice) under left4me-sandbox, \
            streaming the output with the elapsed time.\n\n\
            The script works on a fresh copy of the content; only when it succeeds and its \
            output passes the checks (no special files, no symlink leading out of the \
            overlay) does the copy replace <state dir>/overlays/NAME, in one atomic exchange. \
            A failed build leaves the content untouched. Running instances keep the content \
            they mounted until their next restart (`left4mectl list` says \"content update \
            pending\"); the old copy is deleted once no instance mounts it any more.\n\n\
            The unit gets the definition's memory_max, tasks_max and timeout, no access to \
            loopback, link-local, multicast or private addresses, a resolv.conf of its own \
            (see ctl/README.md), and is killed when the state dir's file system runs low. \
            Ctrl-C stops it. Every build is recorded in the ledger: `left4mectl overlay \
            jobs`.\n\n\
            A workshop overlay: resolve its items and collections with the Steam Web API, \
            download the items the cache (<state dir>/workshop_cache/ID/HCONTENT.vpk) lacks \
            in one sandboxed unit (left4me-workshop-NAME-ID.service; TCP 80 and 443 of public \
            addresses), check each file's size and VPK header, and publish a tree of hard \
            links left4dead2/addons/ID.vpk the same atomic way. Items removed upstream, \
            banned or of another game are reported and left out; when a download fails \
            nothing is published. When nothing changed upstream, nothing is downloaded or \
            published.\n\n\
            --dry-run prints the systemd-run command (a workshop overlay: what would be \
            downloaded and linked) instead; --unit-file prints the script build's unit as a \
            unit file (for `systemd-analyze security --offline=yes`).",
        after_long_help = "EXIT STATUS:\n  \
            0  built and swapped in, or nothing changed\n  \
            1  the build failed, or could not run; the content is unchanged\n  \
            2  usage error (no such overlay, a manual overlay, a build already running)\n\n\
            EXAMPLES:\n  \
            left4mectl overlay build maps\n  \
            left4mectl overlay build maps --dry-run\n  \
            left4mectl overlay build campaigns"
    )]
    Build {
        /// The overlay
        name: String,
        /// Print the systemd-run command (workshop: the download plan); build nothing
        #[arg(long, conflicts_with = "unit_file")]
        dry_run: bool,
        /// Print the build unit as a unit file; build nothing
        #[arg(long)]
        unit_file: bool,
    },

    /// Rebuild the overlays that follow upstream (the nightly refresh)
    #[command(
        long_about = "Rebuild overlays as `overlay build` does: the NAMEs given, or without \
            NAMEs every workshop overlay and every script overlay whose definition says \
            refresh = \"daily\" (workshop overlays refresh daily unless refresh = \"never\"). \
            One failure does not stop the others. left4me-overlay-refresh.timer runs it \
            nightly.\n\n\
            Running instances keep what they mounted; `left4mectl list` marks them \"content \
            update pending\" and `left4mectl restart NAME --when-empty` moves them onto the \
            new content once they are empty.\n\n\
            --json prints an array with one object per overlay (see ctl/README.md).",
        after_long_help = "EXIT STATUS:\n  \
            0  every overlay built or unchanged\n  \
            1  at least one failed (its content is unchanged)\n  \
            2  usage error\n\n\
            EXAMPLES:\n  \
            left4mectl overlay refresh\n  \
            left4mectl overlay refresh campaigns\n  \
            left4mectl overlay refresh && left4mectl restart coop1 --when-empty --max-wait 2h"
    )]
    Refresh {
        /// The overlays [default: every one with refresh = "daily"]
        names: Vec<String>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },

    /// Remove workshop cache files no overlay uses
    #[command(
        long_about = "Remove what no overlay refers to: workshop cache files \
            (<state dir>/workshop_cache/ID/HCONTENT.vpk) that no workshop overlay links, now \
            or in old content a running instance still mounts, and the leftovers of \
            interrupted downloads. Old overlay content no instance mounts any more is retired \
            first. A file a running instance uses is never removed.\n\n\
            --json prints one object (see ctl/README.md).",
        after_long_help = "EXAMPLES:\n  \
            left4mectl overlay gc --dry-run\n  \
            left4mectl overlay gc"
    )]
    Gc {
        /// Say what would be removed; remove nothing
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },

    /// List recorded builds, newest first
    #[command(
        long_about = "List the builds recorded in the job ledger (<admin dir>/left4me.db), \
            newest first: id, overlay, start, duration, status (success, failed, interrupted, \
            abandoned, running), the script's exit status and what happened. --log adds the \
            last 50 lines of each build's output. The name game:222860 lists the game's \
            SteamCMD runs (`left4mectl game …`).\n\n\
            --json prints an array of objects (see ctl/README.md).",
        after_long_help = "EXAMPLES:\n  \
            left4mectl overlay jobs\n  \
            left4mectl overlay jobs maps --log -n 1\n  \
            left4mectl overlay jobs game:222860 --log -n 1"
    )]
    Jobs {
        /// Only builds of this overlay
        name: Option<String>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        /// Also print the kept output of each build
        #[arg(short, long)]
        log: bool,
        /// How many builds to show
        #[arg(short = 'n', long, value_name = "N", default_value_t = 20)]
        lines: usize,
    },
}

/// `--kind` of `overlay create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OverlayKindArg {
    /// Content is put into the content dir by hand
    Manual,
    /// Content is built by a script (`overlay build`)
    Script,
    /// Steam Workshop items and collections (`overlay build` downloads them)
    Workshop,
}

/// `--refresh` of `overlay create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RefreshArg {
    /// The nightly `overlay refresh` rebuilds it
    Daily,
    /// Only `overlay build` rebuilds it
    Never,
}

#[derive(Debug, Subcommand)]
pub enum GameVerb {
    /// Install the game: download it as the first version
    #[command(
        long_about = "Install the game: run SteamCMD (app_update 222860) into a new version and \
            make it current.\n\n\
            Logs in anonymously, or as the account `game login` cached. When Steam refuses an \
            anonymous Linux install with \"Invalid platform\" (Valve's change of 2024-11-26), \
            the known workaround runs: a first pass with the Windows platform, then the Linux \
            pass with validate; the verdict says which path was taken. Free space is checked \
            first; progress is shown as it downloads. When a version exists already this is \
            an update.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl game install\n  \
            left4mectl game install --branch beta\n  \
            left4mectl game install --branch private --beta-password-file /root/beta.txt"
    )]
    Install(GameInstallArgs),

    /// Update the game to Steam's newest build and move instances onto it
    #[command(
        long_about = "Update the game: download what changed since the current version into a \
            new version (only the changed files take disk), make it current, then move \
            running instances onto it as --restart says:\n\n\
            when-empty  restart each instance as soon as its A2S player count is 0 (bots do \
            not count), one at a time; after --max-wait, report who is still on the old \
            version (they move at their next restart)\n\
            now         restart every instance now, one by one\n\
            never       restart none; each moves at its next restart\n\n\
            Instances pinned to a version (game_version) stay on it. Nothing is restarted when \
            the download fails: the current version and every running instance are untouched.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl game update\n  \
            left4mectl game update --restart now\n  \
            left4mectl game update --restart when-empty --max-wait 6h"
    )]
    Update(GameUpdateArgs),

    /// Ask Steam whether a newer build is out
    #[command(
        long_about = "Ask Steam for the newest build id of the branch (app_info_print, with a \
            fresh app info cache) and compare it with the current version.\n\n\
            Exit status 0: up to date; 1: a newer build is available; 2: the check failed \
            (Steam unreachable, no version installed, a broken store). Starts of instances never \
            depend on it.\n\n\
            --json prints current, current_build, branch, remote_build, update_available and \
            error; when the check fails, error says why and remote_build and update_available \
            are null.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl game check\n  \
            left4mectl game check --json | jq .remote_build"
    )]
    Check {
        /// The branch (default: the current version's)
        #[arg(long, value_name = "BRANCH")]
        branch: Option<String>,
        /// Print JSON instead of a line
        #[arg(long)]
        json: bool,
    },

    /// List the installed versions
    #[command(
        long_about = "List the installed versions: id, Steam build id, branch, the disk its own \
            layer takes (a delta holds only what changed), when it was made, the instances \
            running it, and whether it is current or pinned by a spec.\n\n\
            --json prints an array of objects.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl game versions\n  \
            left4mectl game versions --json | jq -r '.[] | select(.current) | .id'"
    )]
    Versions {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },

    /// Verify every game file; publish a repaired version if one was wrong
    #[command(
        long_about = "Run SteamCMD's validate over the current version: every file is checked \
            against Steam's manifest and wrong ones are downloaded again, into a new version \
            (the same build id with a -N suffix); the current version itself is never written.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl game validate"
    )]
    Validate,

    /// Make another installed version current (a rollback)
    #[command(
        long_about = "Make version ID current: the version instances mount from their next start \
            on (instances pinned with game_version keep their pin). Running instances keep what \
            they run until they restart (`left4mectl restart NAME`). Use it to go back to the \
            previous version after a bad update; `game versions` lists the installed ones. The \
            next `game update` builds on the current version.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl game use 12345678\n  \
            left4mectl game use 12345678 && left4mectl restart coop1"
    )]
    Use {
        /// The version (`game versions`)
        id: String,
    },

    /// Remove versions nothing uses
    #[command(
        long_about = "Remove every version that is not current, not pinned by an instance or \
            blueprint, not mounted by a running instance, and not the base of a version that \
            is kept.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl game gc"
    )]
    Gc,

    /// Show the SteamCMD runs recorded in the job ledger
    #[command(
        long_about = "Show the SteamCMD runs of installs, updates, validates, checks and logins, \
            as the job ledger (<admin dir>/left4me.db) recorded them: when, how long, the \
            outcome, and with --log the last lines of each run's output (the beta password \
            never among them).",
        after_long_help = "EXAMPLES:\n  \
            left4mectl game jobs\n  \
            left4mectl game jobs --log -n 1\n  \
            left4mectl game jobs --json | jq '.[0].status'"
    )]
    Jobs {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        /// Also print the last lines of each run's output
        #[arg(long)]
        log: bool,
        /// Show the last N runs
        #[arg(short = 'n', long, value_name = "N", default_value_t = 20)]
        lines: usize,
    },

    /// Log SteamCMD into a Steam account, once, interactively
    #[command(
        long_about = "Log SteamCMD into a Steam account: SteamCMD asks for the password and the \
            Steam Guard code on this terminal, and caches its credentials in its home. Later \
            installs and updates log in as this account with the cached credentials. The \
            password never appears on a command line, in the journal or in the ledger.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl game login mysteamaccount"
    )]
    Login {
        /// The Steam account name
        user: String,
    },
}

/// `--when-empty` and its options, shared by `restart` and `stop`.
#[derive(Debug, Args)]
pub struct WhenEmptyArgs {
    /// Wait until nobody plays on each instance (A2S player count 0), then act on it
    #[arg(long)]
    pub when_empty: bool,
    /// With --when-empty: act anyway after this long (e.g. 30min, 2h) [default: no limit]
    #[arg(long, value_name = "DURATION", requires = "when_empty")]
    pub max_wait: Option<String>,
    /// With --when-empty: say MSG to the players first (`say` over RCON), and again right
    /// before acting when --max-wait forces it
    #[arg(long, value_name = "MSG", requires = "when_empty")]
    pub announce: Option<String>,
    /// With --max-wait: leave an instance that still has players as it is instead of acting
    #[arg(long, requires = "max_wait")]
    pub or_skip: bool,
}

#[derive(Debug, Args)]
pub struct GameInstallArgs {
    /// The Steam branch (beta) to install
    #[arg(long, value_name = "BRANCH", default_value = "public")]
    pub branch: String,
    /// A file holding the branch's beta password on one line (`-`: standard input); kept
    /// root-only for later updates, never on a command line
    #[arg(long, value_name = "FILE")]
    pub beta_password_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct GameUpdateArgs {
    /// When running instances move onto the new version
    #[arg(long, value_enum, value_name = "WHEN", default_value = "when-empty")]
    pub restart: crate::rollout::RestartPolicy,
    /// How long --restart when-empty waits for instances to empty (e.g. 30min, 6h)
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub max_wait: String,
    /// The branch (default: the current version's)
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,
    /// A file holding the branch's beta password on one line (`-`: standard input); kept
    /// root-only for later updates, never on a command line
    #[arg(long, value_name = "FILE")]
    pub beta_password_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct OverlayCreateArgs {
    /// The overlay name: 1-64 of a-z, 0-9, '_', '-'
    pub name: String,
    /// How the content is made [default: script with a script, else manual]
    #[arg(long, value_enum)]
    pub kind: Option<OverlayKindArg>,
    /// The build script (bash)
    #[arg(long, value_name = "TEXT", conflicts_with = "script_file")]
    pub script: Option<String>,
    /// Read the build script from FILE ('-': stdin)
    #[arg(long, value_name = "FILE")]
    pub script_file: Option<std::path::PathBuf>,
    /// No network at all during the build
    #[arg(long, conflicts_with = "allow_ports")]
    pub no_network: bool,
    /// A TCP port the script may connect to; repeat [default: 80 and 443]
    #[arg(long = "allow-port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub allow_ports: Vec<u16>,
    /// The build's memory limit (MemoryMax=) [default: 4G]
    #[arg(long, value_name = "SIZE")]
    pub memory_max: Option<String>,
    /// The build's process/thread limit (TasksMax=) [default: 512]
    #[arg(long, value_name = "N")]
    pub tasks_max: Option<u32>,
    /// The build's time limit (RuntimeMaxSec=) [default: 1h]
    #[arg(long, value_name = "SPAN")]
    pub timeout: Option<String>,
    /// Workshop items: ids or workshop URLs, comma-separated or repeated
    #[arg(long = "workshop", value_name = "ID,…", value_delimiter = ',',
          value_parser = parse_workshop_id)]
    pub workshop: Vec<u64>,
    /// Workshop collections (nested ones are followed): ids or URLs
    #[arg(long = "collection", value_name = "ID,…", value_delimiter = ',',
          value_parser = parse_workshop_id)]
    pub collections: Vec<u64>,
    /// Items to leave out, whichever collection brings them: ids or URLs
    #[arg(long = "exclude", value_name = "ID,…", value_delimiter = ',',
          value_parser = parse_workshop_id)]
    pub exclude: Vec<u64>,
    /// Whether the nightly refresh rebuilds it [default: daily for workshop overlays, never for
    /// script overlays]
    #[arg(long, value_enum)]
    pub refresh: Option<RefreshArg>,
}

/// A workshop id: the number itself, or a workshop URL that carries it
/// (`https://steamcommunity.com/sharedfiles/filedetails/?id=123456789`).
pub fn parse_workshop_id(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = match text.find("id=") {
        Some(at) if text.contains("://") => {
            let rest = &text[at + 3..];
            &rest[..rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len())]
        }
        _ => text,
    };
    match digits.parse::<u64>() {
        Ok(id) if id > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(format!(
            "'{}' is not a workshop id: give the number after ?id= in the item's URL, or the \
             URL itself",
            text.escape_debug()
        )),
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The instance name: 1-64 of a-z, 0-9, '_', '-'
    pub name: String,
    /// The game port (UDP and TCP); unique, inside the host's port_range
    #[arg(long)]
    pub port: u16,
    /// Inherit the settings of blueprints/BLUEPRINT.toml
    #[arg(long)]
    pub blueprint: Option<String>,
    /// The start map [default: the blueprint's, else c1m1_hotel]
    #[arg(long)]
    pub map: Option<String>,
    #[command(flatten)]
    pub layers: LayerArgs,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The instance
    pub name: String,
    /// Keys to set
    #[arg(value_name = "KEY=VALUE", required_unless_present = "unset")]
    pub assignments: Vec<String>,
    /// Remove KEY from the spec; repeat for more keys
    #[arg(long, value_name = "KEY")]
    pub unset: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum BlueprintVerb {
    /// Create a blueprint
    #[command(
        long_about = "Create a blueprint: write /etc/left4me/blueprints/NAME.toml.\n\n\
            A blueprint holds every instance key except port and blueprint. An instance that \
            names it inherits its settings: the instance's own values win, lists (overlays, \
            args) and config are the blueprint's first, then the instance's.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl blueprint create coop --map c1m1_hotel --maxplayers 4\n  \
            left4mectl blueprint create modded --overlay overlays/sourcemod:sm"
    )]
    Create(BlueprintCreateArgs),

    /// Edit a blueprint in $VISUAL / $EDITOR
    #[command(
        long_about = "Edit a blueprint in your editor, like `left4mectl edit`.\n\n\
            Besides the blueprint itself, every instance that uses it is validated with the \
            edited copy; a change that would make a valid instance invalid is refused and the \
            instances are named.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl blueprint edit coop"
    )]
    Edit {
        /// The blueprint
        name: String,
    },

    /// Change keys of a blueprint, keeping comments and layout
    #[command(
        long_about = "Change keys of a blueprint, keeping its comments and layout. KEY=VALUE and \
            --unset work as in `left4mectl set`. Like `blueprint edit`, the change is refused \
            when it would make an instance that uses the blueprint invalid.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl blueprint set coop maxplayers=8 resources.nice=-5\n  \
            left4mectl blueprint set coop --unset map"
    )]
    Set(SetArgs),

    /// Show a blueprint and the instances that use it
    #[command(
        long_about = "Show a blueprint as written and the instances that use it.\n\n\
            --json prints the parsed blueprint as one JSON object (see ctl/README.md).",
        after_long_help = "EXAMPLES:\n  \
            left4mectl blueprint show coop\n  \
            left4mectl blueprint show coop --json"
    )]
    Show {
        /// The blueprint
        name: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },

    /// List blueprints and how many instances use each
    #[command(
        long_about = "List every blueprint: name, how many instances use it, and \"ok\" or why \
            it is refused.\n\n\
            --json prints an array of objects (see ctl/README.md).",
        after_long_help = "EXAMPLES:\n  \
            left4mectl blueprint list\n  \
            left4mectl blueprint list --json"
    )]
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },

    /// Remove a blueprint no instance uses
    #[command(
        long_about = "Remove a blueprint: delete /etc/left4me/blueprints/NAME.toml.\n\n\
            Refused while an instance names it (valid or not): change those instances first. \
            The removal is a revision like any change: `left4mectl rollback --blueprint NAME \
            REV` brings it back.",
        after_long_help = "EXAMPLES:\n  \
            left4mectl blueprint rm old-coop\n  \
            left4mectl blueprint rm old-coop -m 'all servers moved to coop'"
    )]
    Rm {
        /// The blueprint
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct BlueprintCreateArgs {
    /// The blueprint name: 1-64 of a-z, 0-9, '_', '-'
    pub name: String,
    /// The start map of instances using it
    #[arg(long)]
    pub map: Option<String>,
    #[command(flatten)]
    pub layers: LayerArgs,
}

/// The options `create` and `blueprint create` share, after `--map`.
#[derive(Debug, Args)]
pub struct LayerArgs {
    /// The player limit (1-32)
    #[arg(long)]
    pub maxplayers: Option<u8>,
    /// A content layer, relative to the state dir; repeat, lowest first
    #[arg(long = "overlay", value_name = "PATH[:ALIAS]", value_parser = OverlayArg::parse)]
    pub overlays: Vec<OverlayArg>,
}

/// `--timeout SPAN`: a systemd time span ("5s", "500ms", "1min"), not zero.
fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    let span = left4me_spec::Duration::parse(text)?;
    match span.as_micros() {
        Some(0) => Err("the timeout must be more than 0".into()),
        Some(micros) => Ok(std::time::Duration::from_micros(micros)),
        None => Err("the timeout must be finite, e.g. \"30s\"".into()),
    }
}

/// `--overlay PATH[:ALIAS]`. Layer paths cannot contain ':', so the last ':' splits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayArg {
    pub path: String,
    pub alias: Option<String>,
}

impl OverlayArg {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (path, alias) = match text.rsplit_once(':') {
            Some((path, alias)) => (path, Some(alias)),
            None => (text, None),
        };
        if path.is_empty() || alias == Some("") {
            return Err("expected PATH or PATH:ALIAS, e.g. overlays/tickrate:tickrate".into());
        }
        Ok(OverlayArg {
            path: path.to_owned(),
            alias: alias.map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn overlay_args() {
        assert_eq!(
            OverlayArg::parse("overlays/sm").unwrap(),
            OverlayArg {
                path: "overlays/sm".into(),
                alias: None
            }
        );
        let aliased = OverlayArg::parse("overlays/tr:tickrate").unwrap();
        assert_eq!(aliased.alias.as_deref(), Some("tickrate"));
        assert!(OverlayArg::parse("overlays/tr:").is_err());
        assert!(OverlayArg::parse(":x").is_err());
    }
}

/// The spec `diff` and `rollback` work on: an instance, or with a flag a blueprint or an overlay
/// definition.
#[derive(Debug, Args)]
pub struct SpecName {
    /// The instance (the blueprint with --blueprint, the overlay with --overlay)
    pub name: String,
    /// NAME is a blueprint
    #[arg(long, conflicts_with = "overlay")]
    pub blueprint: bool,
    /// NAME is an overlay definition
    #[arg(long)]
    pub overlay: bool,
}
