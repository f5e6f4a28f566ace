# Build, install and document tessel-proxy.
#
#   make                      build build/tessel-proxy
#   make install PREFIX=/usr  install the program, its completions and its manual pages
#   make docs                 regenerate docs/reference.md from the command tree
#   make test                 run every test (as CI does)
#   make release-check        validate .goreleaser.yaml with goreleaser itself (a slow build)

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR  ?= $(DATADIR)/man
BUILD   ?= build
GO      ?= go
# v2.14.0 is the newest goreleaser that builds with Go 1.26 from the module proxy alone.
GORELEASER ?= $(GO) run github.com/goreleaser/goreleaser/v2@v2.14.0

PKG     := github.com/tessel/tessel-proxy
# The version and commit are given to the linker, because the build info that would carry
# them is off where GOFLAGS=-buildvcs=false (and absent in a source tarball).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X $(PKG)/commands.version=$(VERSION) -X $(PKG)/commands.commit=$(COMMIT)

BIN := $(BUILD)/tessel-proxy

.PHONY: all build extras install uninstall docs test release-check clean FORCE

all: build

build: $(BIN)

$(BIN): FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ .

# Completion scripts and manual pages, written by the program just built, so that they
# describe exactly its commands.
extras: $(BIN)
	rm -rf $(BUILD)/completions $(BUILD)/man
	mkdir -p $(BUILD)/completions $(BUILD)/man
	$(BIN) completion bash > $(BUILD)/completions/tessel-proxy.bash
	$(BIN) completion zsh > $(BUILD)/completions/_tessel-proxy
	$(BIN) completion fish > $(BUILD)/completions/tessel-proxy.fish
	$(BIN) completion powershell > $(BUILD)/completions/tessel-proxy.ps1
	$(BIN) man --dir $(BUILD)/man

install: extras
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(DATADIR)/bash-completion/completions \
		$(DESTDIR)$(DATADIR)/zsh/site-functions \
		$(DESTDIR)$(DATADIR)/fish/vendor_completions.d
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/tessel-proxy
	install -m 644 $(BUILD)/completions/tessel-proxy.bash $(DESTDIR)$(DATADIR)/bash-completion/completions/tessel-proxy
	install -m 644 $(BUILD)/completions/_tessel-proxy $(DESTDIR)$(DATADIR)/zsh/site-functions/_tessel-proxy
	install -m 644 $(BUILD)/completions/tessel-proxy.fish $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/tessel-proxy.fish
	install -m 644 $(BUILD)/man/*.1 $(DESTDIR)$(MANDIR)/man1/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/tessel-proxy \
		$(DESTDIR)$(DATADIR)/bash-completion/completions/tessel-proxy \
		$(DESTDIR)$(DATADIR)/zsh/site-functions/_tessel-proxy \
		$(DESTDIR)$(DATADIR)/fish/vendor_completions.d/tessel-proxy.fish \
		$(DESTDIR)$(MANDIR)/man1/tessel-proxy.1 $(DESTDIR)$(MANDIR)/man1/tessel-proxy-*.1

docs:
	$(GO) generate ./docs/

test:
	scripts/test.sh

release-check:
	$(GORELEASER) check

clean:
	rm -rf $(BUILD) dist
