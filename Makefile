GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
PREFIX  ?= /usr
BIN     := $(CURDIR)/bin
LDFLAGS := -s -w -X main.version=$(VERSION)
# The daemon and its tools are static binaries: they run in any container or netns.
GOBUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'

.PHONY: all build test unit lint fuzz lab install image bench clean man completion package

all: build

build:
	$(GOBUILD) -o $(BIN)/ ./cmd/... ./test/cmd/...

# The packages whose tests need the kernel's IPv4 multicast routing, and root.
MODULE   := $(shell $(GO) list -m 2>/dev/null)
LAB_PKGS := mroute test/lab test/mcast test/peers test/e2e
# KERNEL says where they run. Empty: on this kernel when it routes multicast, else
# (as root) in a VM booting Debian's 6.1. "6.12", or "6.1 6.12": in VMs booting those
# kernels, one after the other (bin/vmtest; test binaries are built here, run there).
KERNEL ?= $(if $(wildcard /proc/net/ip_mr_vif),,$(if $(filter 0,$(shell id -u)),6.1))
# A whole lab package under TCG: go test's own timeout first, so that a hung test
# dies with its goroutines' stacks, then the VM's.
LAB_TIMEOUT ?= 30m

# The daemon's packages run under the race detector: the loop, its readers and the
# control API share the router's state only through channels and atomics, and it
# checks that they keep to it. The test tools run without it.
RACE_PKGS := ./cmd/... ./conf ./igmp ./pim ./router/...
RACE = $(GO) test -count=1 -race -timeout 12m $(RACE_PKGS)

# Unit tests always, on this kernel; lab tests too when run as root (MROUTERD_E2E=required
# makes them fail instead of skipping when they cannot run).
test: build lint
	MROUTERD_BIN=$(BIN) $(GO) test -count=1 -timeout 12m $(filter-out $(addprefix $(MODULE)/,$(LAB_PKGS)) $(shell $(GO) list $(RACE_PKGS)),$(shell $(GO) list ./...))
	MROUTERD_BIN=$(BIN) $(RACE)
ifeq ($(strip $(KERNEL)),)
	MROUTERD_BIN=$(BIN) $(GO) test -count=1 -timeout 12m $(addprefix ./,$(LAB_PKGS))
else
	@# One VM per kernel, side by side, each with its share of the CPUs; their logs
	@# follow one another when all are done.
	@mkdir -p $(BIN)/vmlogs; cpus=$$(( $$(nproc) / $(words $(KERNEL)) )); [ $$cpus -ge 1 ] || cpus=1; \
	for k in $(KERNEL); do \
		( MROUTERD_BIN=$(BIN) $(GO) test -count=1 -p 1 -timeout $(LAB_TIMEOUT) \
			-exec "$(BIN)/vmtest --kernel $$k --cpus $$cpus --timeout 40m --" $(addprefix ./,$(LAB_PKGS)) \
			> $(BIN)/vmlogs/$$k.log 2>&1; echo $$? > $(BIN)/vmlogs/$$k.rc ) & \
	done; wait; rc=0; \
	for k in $(KERNEL); do \
		echo "== lab tests on Debian's Linux $$k (bin/vmtest, $$cpus CPUs)"; cat $(BIN)/vmlogs/$$k.log; \
		[ "$$(cat $(BIN)/vmlogs/$$k.rc)" = 0 ] || rc=1; \
	done; exit $$rc
endif

unit:
	$(GO) test -count=1 -short ./...
	$(RACE)

# Every fuzz target in the module, one after the other, each for FUZZTIME (go test's
# -fuzztime: a duration, or a count such as 10000x). A finding stops the run; its
# input is kept under the package's testdata/fuzz and replays as a plain test. Go
# 1.26's fuzzing can end a clean run with "context deadline exceeded" when the time is
# up (golang.org/issue/75804, fixed in 1.27): with no input written, that is no finding.
FUZZTIME ?= 5m
fuzz:
	@set -e; out=$$(mktemp); trap 'rm -f $$out $$out.rc' EXIT; \
	for file in $$(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			echo "== $$(dirname $$file) $$target for $(FUZZTIME)"; \
			{ rc=0; $(GO) test -timeout 0 -run='^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) $$(dirname $$file) 2>&1 || rc=$$?; \
				echo $$rc > $$out.rc; } | tee $$out; \
			if [ "$$(cat $$out.rc)" != 0 ]; then \
				grep -q '^    context deadline exceeded$$' $$out && ! grep -q 'Failing input written' $$out || exit 1; \
				echo "== $$target: no input failed; the deadline error is Go's own (see above)"; \
			fi; \
		done; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

# Brings up test/topologies/pim-chain.clab.yml on network namespaces, shows multicast
# flowing and the routing table of each router, then tears it all down; in a VM with
# the first of KERNEL when that is set.
lab: build
	PATH=$(BIN):$$PATH $(if $(strip $(KERNEL)),$(BIN)/vmtest --kernel $(firstword $(KERNEL)) --) \
		test/lab-demo.sh test/topologies/pim-chain.clab.yml

# Figures, not pass/fail: MFC programming against bare syscalls, and IGMP and PIM-SM
# latency and scale against FRR and troglobit's pimd (test/peers/install.sh installs them).
bench: build
	$(GO) run ./test/bench/mfc
	$(GO) run ./test/bench/igmp -bin $(BIN)
	$(GO) run ./test/bench/pim -bin $(BIN)

# Man pages, compressed as packages ship them.
MAN_PAGES := mrouterd.8 mroutectl.8 mrouterd.toml.5
man: $(addprefix $(BIN)/man/,$(addsuffix .gz,$(MAN_PAGES)))
$(BIN)/man/%.gz: deploy/man/%
	@mkdir -p $(@D)
	gzip -9nc $< > $@

# Completion scripts, printed by mroutectl from its own command table.
completion: build
	@mkdir -p $(BIN)/completion
	$(BIN)/mroutectl completion bash > $(BIN)/completion/mroutectl.bash
	$(BIN)/mroutectl completion zsh > $(BIN)/completion/_mroutectl

# A .deb and an .rpm in bin/pkg/, with nfpm (a Go tool of this module) and
# deploy/package/nfpm.yaml. Their version is VERSION made valid for both formats.
PKG_VERSION = $(shell deploy/package/version.sh '$(VERSION)')
PKG_ARCH    = $(shell $(GO) env GOARCH)
package: build man completion
	@mkdir -p $(BIN)/pkg
	@# Only the packages of this version: a stale one is never mistaken for it.
	rm -f $(BIN)/pkg/mrouterd_*.deb $(BIN)/pkg/mrouterd-*.rpm
	PKG_VERSION='$(PKG_VERSION)' PKG_ARCH='$(PKG_ARCH)' $(GO) tool nfpm package \
		--config deploy/package/nfpm.yaml --packager deb --target $(BIN)/pkg/
	PKG_VERSION='$(PKG_VERSION)' PKG_ARCH='$(PKG_ARCH)' $(GO) tool nfpm package \
		--config deploy/package/nfpm.yaml --packager rpm --target $(BIN)/pkg/

# ZSH_COMPLETIONS: where zsh finds completion functions (Debian's packages use
# /usr/share/zsh/vendor-completions).
ZSH_COMPLETIONS ?= $(PREFIX)/share/zsh/site-functions
install: build completion
	install -D -m 0755 $(BIN)/mrouterd $(DESTDIR)$(PREFIX)/sbin/mrouterd
	install -D -m 0755 $(BIN)/mroutectl $(DESTDIR)$(PREFIX)/sbin/mroutectl
	install -D -m 0644 deploy/man/mrouterd.8 $(DESTDIR)$(PREFIX)/share/man/man8/mrouterd.8
	install -D -m 0644 deploy/man/mroutectl.8 $(DESTDIR)$(PREFIX)/share/man/man8/mroutectl.8
	install -D -m 0644 deploy/man/mrouterd.toml.5 $(DESTDIR)$(PREFIX)/share/man/man5/mrouterd.toml.5
	install -D -m 0644 $(BIN)/completion/mroutectl.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/mroutectl
	install -D -m 0644 $(BIN)/completion/_mroutectl $(DESTDIR)$(ZSH_COMPLETIONS)/_mroutectl
	@# The unit runs the daemon with the group mrouterd, which owns the control socket.
	install -D -m 0644 deploy/package/sysusers.conf $(DESTDIR)$(PREFIX)/lib/sysusers.d/mrouterd.conf
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then \
		systemd-sysusers $(PREFIX)/lib/sysusers.d/mrouterd.conf; \
	elif [ -z "$(DESTDIR)" ] && ! getent group mrouterd >/dev/null; then \
		echo "create the group mrouterd (groupadd --system mrouterd): the unit runs with it"; \
	fi
	@# The unit runs the daemon from where PREFIX put it.
	mkdir -p $(DESTDIR)/lib/systemd/system
	sed 's|/usr/sbin/|$(PREFIX)/sbin/|g' deploy/mrouterd.service > $(DESTDIR)/lib/systemd/system/mrouterd.service
	chmod 0644 $(DESTDIR)/lib/systemd/system/mrouterd.service
	@if [ -e $(DESTDIR)/etc/mrouterd/mrouterd.toml ]; then \
		echo "keeping existing $(DESTDIR)/etc/mrouterd/mrouterd.toml"; \
	else \
		install -D -m 0644 deploy/mrouterd.toml $(DESTDIR)/etc/mrouterd/mrouterd.toml; \
	fi

# The container image of deploy/Dockerfile, with docker or else podman (ENGINE=
# chooses). Push it as $(IMAGE):$(TAG) and point the DaemonSet at it with
# `kustomize edit set image ghcr.io/mrouterd/mrouterd=$(IMAGE):$(TAG)`.
IMAGE  ?= ghcr.io/mrouterd/mrouterd
TAG    ?= $(VERSION)
ENGINE ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null)
image:
	@[ -n "$(ENGINE)" ] || { echo "make image: neither docker nor podman is installed (or set ENGINE=)"; exit 1; }
	$(ENGINE) build -f deploy/Dockerfile --build-arg VERSION=$(VERSION) -t $(IMAGE):$(TAG) .

clean:
	rm -rf $(BIN)
