# left4me — build, install and test.
#
#   make            build release binaries
#   make install    install into $(DESTDIR)$(PREFIX) with the layout of DESIGN.md section 1
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

INSTALL      = install

# `install-files` installs what is built already (tests use it with PROFILE=dev).
.PHONY: all build install install-files test demo bench fuzz clean fmt lint

all: build

build:
	$(CARGO) build --profile $(PROFILE) --workspace --bins

install: build
	$(MAKE) --no-print-directory install-files

install-files:
	$(INSTALL) -d "$(BINDIR)" "$(LIBEXECDIR)" "$(UNITDIR)" "$(GENDIR)" "$(SYSUSERSDIR)" "$(TMPFILESDIR)" "$(SYSCTLDIR)"
	$(INSTALL) -m 0755 "$(BIN_DIR)/left4mectl" "$(BINDIR)/left4mectl"
	$(INSTALL) -m 0755 "$(BIN_DIR)/left4me-generator" "$(GENDIR)/left4me-generator"
	$(INSTALL) -m 0755 "$(BIN_DIR)/left4me-supervisor" "$(LIBEXECDIR)/left4me-supervisor"
	test ! -x "$(BIN_DIR)/left4me-sandbox" || $(INSTALL) -m 0755 "$(BIN_DIR)/left4me-sandbox" "$(LIBEXECDIR)/left4me-sandbox"
	$(INSTALL) -d "$(UNITDIR)/left4me-server@.service.d"
	$(INSTALL) -m 0644 units/left4me-server@.service units/l4d2-game.slice units/l4d2-build.slice units/left4me-game-update.service units/left4me-game-update.timer units/left4me-restart@.service units/left4me-restart@.timer "$(UNITDIR)/"
	$(INSTALL) -m 0644 units/left4me-server@.service.d/10-hardening.conf "$(UNITDIR)/left4me-server@.service.d/"
	$(INSTALL) -m 0644 units/sysusers.d/left4me.conf "$(SYSUSERSDIR)/left4me.conf"
	$(INSTALL) -m 0644 units/tmpfiles.d/left4me.conf "$(TMPFILESDIR)/left4me.conf"
	$(INSTALL) -m 0644 units/sysctl.d/99-left4me.conf "$(SYSCTLDIR)/99-left4me.conf"
	$(INSTALL) -d "$(DESTDIR)$(PREFIX)/share/doc/left4me"
	$(INSTALL) -m 0644 README.md docs/units.md docs/architecture.md docs/game.md "$(DESTDIR)$(PREFIX)/share/doc/left4me/"
	$(INSTALL) -d "$(DESTDIR)$(PREFIX)/share/doc/left4me/examples"
	$(INSTALL) -m 0644 examples/*.toml examples/*.sh examples/README.md "$(DESTDIR)$(PREFIX)/share/doc/left4me/examples/"
	@if [ -z "$(DESTDIR)" ]; then \
		systemd-sysusers left4me.conf && \
		systemd-tmpfiles --create left4me.conf && \
		{ ! systemctl is-system-running >/dev/null 2>&1 && [ ! -d /run/systemd/system ] || systemctl daemon-reload; }; \
	fi

test:
	./tests/run-all

demo:
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
