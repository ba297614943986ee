# left4me — build, install and test.
#
#   make            build release binaries
#   make install    install into $(DESTDIR)$(PREFIX) with the layout of DESIGN.md section 1
#   make deb        build left4me_VERSION-1_amd64.deb from what `make install` installs (cargo-deb)
#   make test       every test; as root also the privileged and booted-systemd suites
#   make demo       boot a throwaway systemd and show left4me at work (root)
#   make bench      print the benchmark figures
#   make fuzz       run every fuzz target for FUZZ_SECONDS (default 300) each (nightly, cargo-fuzz)

PREFIX      ?= /usr
DESTDIR     ?=
CARGO       ?= cargo
PROFILE     ?= release
TARGET_DIR  ?= $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
# cargo puts the `dev` profile in target/debug
BIN_DIR      = $(TARGET_DIR)/$(if $(filter dev,$(PROFILE)),debug,$(PROFILE))

BINDIR      = $(DESTDIR)$(PREFIX)/bin
LIBEXECDIR  = $(DESTDIR)$(PREFIX)/lib/left4me
UNITDIR     = $(DESTDIR)$(PREFIX)/lib/systemd/system
GENDIR      = $(DESTDIR)$(PREFIX)/lib/systemd/system-generators
SYSUSERSDIR = $(DESTDIR)$(PREFIX)/lib/sysusers.d
TMPFILESDIR = $(DESTDIR)$(PREFIX)/lib/tmpfiles.d
SYSCTLDIR   = $(DESTDIR)$(PREFIX)/lib/sysctl.d
MANDIR      = $(DESTDIR)$(PREFIX)/share/man
# Where each shell looks for completions of installed packages (Debian's paths).
BASHCOMPDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  = $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions
FISHCOMPDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
# Man pages and completion scripts made from left4mectl's clap tree by left4me-docgen (docgen/).
GEN_DIR      = $(TARGET_DIR)/left4me-gen
# The package is built from `make install-files` into this root; ctl/Cargo.toml's
# [package.metadata.deb] assets name it, so it is fixed (docs/packaging.md).
DEB_ROOT     = $(CURDIR)/target/deb-root
DEB_DIR     ?= $(TARGET_DIR)/debian
# `make deb DEB_VERSION=0.1.1-1` builds the same files with another package version.
DEB_VERSION ?=

INSTALL      = install

# `install-files` installs what is built already (tests use it with PROFILE=dev).
.PHONY: all build gen install install-files deb test demo bench fuzz clean fmt lint need-cargo

all: build

# One line instead of "cargo: not found" on a machine without Rust.
need-cargo:
	@command -v $(CARGO) >/dev/null 2>&1 || { echo "left4me needs a Rust toolchain >= 1.85 (cargo): install it with rustup (https://rustup.rs) or 'apt install cargo' on Debian 13+, then run make again" >&2; exit 1; }

build: need-cargo
	$(CARGO) build --profile $(PROFILE) --workspace --bins
	$(MAKE) --no-print-directory gen

# Man pages and completions from left4me-docgen (install-files runs it too; it is built here
# when a tree was built without it).
gen:
	@test -x "$(BIN_DIR)/left4me-docgen" || $(CARGO) build --profile $(PROFILE) -p left4me-docgen
	"$(BIN_DIR)/left4me-docgen" "$(GEN_DIR)"

install: build
	$(MAKE) --no-print-directory install-files

install-files:
	$(INSTALL) -d "$(BINDIR)" "$(LIBEXECDIR)" "$(UNITDIR)" "$(GENDIR)" "$(SYSUSERSDIR)" "$(TMPFILESDIR)" "$(SYSCTLDIR)"
	$(INSTALL) -m 0755 "$(BIN_DIR)/left4mectl" "$(BINDIR)/left4mectl"
	$(INSTALL) -m 0755 "$(BIN_DIR)/left4me-generator" "$(GENDIR)/left4me-generator"
	$(INSTALL) -m 0755 "$(BIN_DIR)/left4me-supervisor" "$(LIBEXECDIR)/left4me-supervisor"
	test ! -x "$(BIN_DIR)/left4me-sandbox" || $(INSTALL) -m 0755 "$(BIN_DIR)/left4me-sandbox" "$(LIBEXECDIR)/left4me-sandbox"
	$(INSTALL) -d "$(UNITDIR)/left4me-server@.service.d"
	$(INSTALL) -m 0644 units/*.service units/*.timer units/*.slice "$(UNITDIR)/"
	$(INSTALL) -m 0644 units/left4me-server@.service.d/*.conf "$(UNITDIR)/left4me-server@.service.d/"
	$(INSTALL) -m 0644 units/sysusers.d/left4me.conf "$(SYSUSERSDIR)/left4me.conf"
	$(INSTALL) -m 0644 units/tmpfiles.d/left4me.conf "$(TMPFILESDIR)/left4me.conf"
	$(INSTALL) -m 0644 units/sysctl.d/99-left4me.conf "$(SYSCTLDIR)/99-left4me.conf"
	$(INSTALL) -d "$(DESTDIR)$(PREFIX)/share/doc/left4me"
	$(INSTALL) -m 0644 README.md docs/units.md docs/architecture.md docs/game.md docs/packaging.md docs/backup.md docs/workshop.md docs/upper-layer.md "$(DESTDIR)$(PREFIX)/share/doc/left4me/"
	$(INSTALL) -d "$(DESTDIR)$(PREFIX)/share/doc/left4me/examples"
	$(INSTALL) -m 0644 examples/*.toml $(filter-out examples/test-recipes.sh,$(wildcard examples/*.sh)) examples/README.md "$(DESTDIR)$(PREFIX)/share/doc/left4me/examples/"
	$(MAKE) --no-print-directory gen
	$(INSTALL) -d "$(MANDIR)/man1" "$(MANDIR)/man5" "$(MANDIR)/man7" "$(MANDIR)/man8"
	$(INSTALL) -m 0644 "$(GEN_DIR)"/man/man1/*.1 "$(MANDIR)/man1/"
	$(INSTALL) -m 0644 man/*.5 "$(MANDIR)/man5/"
	$(INSTALL) -m 0644 man/*.7 "$(MANDIR)/man7/"
	$(INSTALL) -m 0644 man/*.8 "$(MANDIR)/man8/"
	$(INSTALL) -d "$(BASHCOMPDIR)" "$(ZSHCOMPDIR)" "$(FISHCOMPDIR)"
	$(INSTALL) -m 0644 "$(GEN_DIR)/completions/bash/left4mectl" "$(BASHCOMPDIR)/left4mectl"
	$(INSTALL) -m 0644 "$(GEN_DIR)/completions/zsh/_left4mectl" "$(ZSHCOMPDIR)/_left4mectl"
	$(INSTALL) -m 0644 "$(GEN_DIR)/completions/fish/left4mectl.fish" "$(FISHCOMPDIR)/left4mectl.fish"
	@if [ -z "$(DESTDIR)" ]; then \
		systemd-sysusers left4me.conf && \
		systemd-tmpfiles --create left4me.conf && \
		{ ! systemctl is-system-running >/dev/null 2>&1 && [ ! -d /run/systemd/system ] || systemctl daemon-reload; }; \
	fi

# The Debian package: the release build installed into DEB_ROOT by the same install-files
# as `make install`, binaries stripped (as dh_strip would), packed by cargo-deb with the
# maintainer scripts of debian/ (ctl/Cargo.toml [package.metadata.deb]; docs/packaging.md).
deb: need-cargo
	@command -v cargo-deb >/dev/null 2>&1 || { echo "make deb needs cargo-deb: cargo install cargo-deb --locked" >&2; exit 1; }
	$(MAKE) --no-print-directory build PROFILE=release
	rm -rf "$(DEB_ROOT)"
	$(MAKE) --no-print-directory install-files PROFILE=release DESTDIR="$(DEB_ROOT)" PREFIX=/usr
	find "$(DEB_ROOT)" -type f -perm -u+x -exec strip --strip-unneeded --remove-section=.comment --remove-section=.note {} +
	$(CARGO) deb -p left4mectl --no-build --no-strip --output "$(DEB_DIR)" $(if $(DEB_VERSION),--deb-version "$(DEB_VERSION)")

test: need-cargo
	./tests/run-all

demo: need-cargo
	$(CARGO) build --release --workspace --bins
	"$(BIN_DIR)/left4me-demo"

bench:
	./bench/run-all

FUZZ_SECONDS ?= 300
fuzz:
	./fuzz/run $(FUZZ_SECONDS)

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
