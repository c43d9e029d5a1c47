# mipsec — see README.md. `make deps` installs (as root) or lists the Debian
# packages the tests and demos need; test, demo and bench-e2e run it first.

SHELL     := bash
GO        ?= go
PKGS      ?= ./...
BENCHTIME ?= 1s
BENCHPKGS ?= ./esp ./sad ./spd ./dataplane ./mip6 ./internal/...
# Fuzz budgets are execution counts (Nx), not durations: with a duration,
# Go 1.26's fuzz coordinator can report a spurious "context deadline
# exceeded" failure at the deadline with no failing input (golang/go#75804,
# fixed in Go 1.27). FUZZTIME=30s still works when you want wall-clock runs.
FUZZTIME  ?= 200000x
BIN       := bin/mipsec
REPORT    := $(GO) run ./internal/tools/testreport
PREFIX    ?= /usr/local
DESTDIR   ?=
# The systemd unit goes where systemd looks for the units an administrator
# installs (systemd.unit(5): /etc/systemd/system); UNITDIR=$(PREFIX)/lib/systemd/system
# for a package-manager-like layout.
UNITDIR   ?= /etc/systemd/system

# Debian packages, by what needs them (internal/tools/deps.sh checks each by
# the command or module that is used, and installs the missing ones as root).
DEPS_TEST  := python3-scapy iproute2 nftables tshark iperf3 wireguard-tools make git \
              strongswan-charon strongswan-swanctl strongswan-pki libcharon-extra-plugins \
              libstrongswan-standard-plugins libstrongswan-extra-plugins
DEPS_DEMO  := iproute2 nftables
DEPS_BENCH := iproute2 iperf3 wireguard-tools
DEPS_PKGS  ?= $(DEPS_TEST)

.PHONY: all build test test-unit test-race check fmt vet staticcheck bench bench-e2e pgo fuzz fuzz-campaign soak demo clean deps install uninstall

all: build

build:
	$(GO) build -o $(BIN) ./cmd/mipsec

## deps: the Debian packages of DEPS_PKGS (all of them unless a target
## below names fewer). As root: apt-get installs what is missing (nothing
## to do: one line). Not root: prints the missing packages and the
## `sudo apt-get install` line and fails; before the tests outside CI it
## only warns, as the tests that need a missing tool skip themselves.
## DEPS_ROOT=0 shows root what a user sees.
deps:
	@DEPS_WHAT='make $(or $(firstword $(MAKECMDGOALS)),deps)' DEPS_MISSING='$(DEPS_MISSING)' \
	  DEPS_ROOT='$(DEPS_ROOT)' GO='$(GO)' bash internal/tools/deps.sh $(DEPS_PKGS)

## test: every test; with CI=true a skipped test is a failure.
test: deps test-unit test-race
test test-unit test-race: DEPS_MISSING ?= $(if $(filter true,$(CI)),fail,warn)
# With -j the tests still wait for deps.
test-unit test-race: | $(if $(filter test,$(MAKECMDGOALS)),deps)

test-unit:
	@echo "== go test (CI=$${CI:-false}: skips fail in CI)"
	@set -o pipefail; $(GO) test -count=1 -json $(PKGS) | $(REPORT)

# Allocation tests skip themselves under -race (sync.Pool drops Puts there),
# so this run may skip; the run above may not.
test-race:
	@echo "== go test -race"
	@set -o pipefail; $(GO) test -race -count=1 -json $(PKGS) | $(REPORT) -allow-skip

## check: formatting, vet, staticcheck, race tests, short fuzz runs.
check: fmt vet staticcheck test-race
	@$(MAKE) --no-print-directory fuzz FUZZTIME=20000x

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(GO) tool staticcheck $(PKGS)

## bench: the per-stage benchmarks (seal/open vs raw AEAD, SPD/SAD lookups).
bench:
	@mkdir -p bench/results
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(BENCHPKGS) | tee bench/results/bench.txt

## bench-e2e: mipsec side by side with wireguard-go and the bare veth
## (root; iperf3 and wireguard-tools from Debian). Results in bench/results/.
bench-e2e: DEPS_PKGS = $(DEPS_BENCH)
bench-e2e: deps build
	$(GO) build -o bin/wireguard-go golang.zx2c4.com/wireguard
	./$(BIN) bench $(BENCHFLAGS)

## bench-ike: IKEv2 setups per second (issue 12), `mipsec run` and charon
## as responders to the same in-process initiator load, alternating in one
## run (root; charon from make deps). IKEFLAGS e.g. -ikebench.duration 5s
## -ikebench.c 1,8,32. Results in bench/results/ike.json and ike.txt.
.PHONY: bench-ike
bench-ike: deps build
	$(GO) test -tags ikebench -count=1 -timeout 30m -run '^TestIKEBench$$' ./internal/ikebench \
		-ikebench.mipsec $(CURDIR)/$(BIN) -ikebench.out $(CURDIR)/bench/results $(IKEFLAGS)

## pgo: regenerate cmd/mipsec/default.pgo, the CPU profile go build uses
## for profile-guided optimisation of the mipsec binary: the in-process
## pipeline (fake TUN -> dataplane -> fake underlay -> dataplane) for the
## AEADs, their raw seal+open (the in-process ceiling, so it is optimised
## alike) and the Linux underlay benchmarks (root, namespaces).
pgo:
	@set -e; t=$$(mktemp -d); trap 'rm -rf $$t' EXIT; \
	$(GO) test -c -o $$t/bench.test ./bench; \
	$(GO) test -c -o $$t/dataplane.test ./dataplane; \
	echo "== profiling the pipeline, the raw AEADs and the underlay"; \
	(cd bench && $$t/bench.test -test.run '^$$' -test.bench 'PipelineAlg/(aes128gcm16|aes256gcm16|chacha20poly1305)/' -test.cpu 1,2 -test.cpuprofile $$t/pipe.prof >/dev/null); \
	(cd bench && $$t/bench.test -test.run '^$$' -test.bench 'RawSealOpen/(aes128gcm16|aes256gcm16|chacha20poly1305)/' -test.cpuprofile $$t/raw.prof >/dev/null); \
	(cd dataplane && $$t/dataplane.test -test.run '^$$' -test.bench 'Underlay' -test.benchtime 20000x -test.cpuprofile $$t/ul.prof >/dev/null); \
	$(GO) tool pprof -proto $$t/pipe.prof $$t/raw.prof $$t/ul.prof > cmd/mipsec/default.pgo; \
	echo "wrote cmd/mipsec/default.pgo"

## fuzz: run every fuzz target for FUZZTIME each (an execution count, see above).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## fuzz-campaign: the long runs of the inbound fuzz targets (ESP open,
## dataplane inbound, HA deliver, UDP decapsulation, control lines, config),
## FUZZ_EXECS executions each (a count, see above) on FUZZ_PARALLEL workers;
## FUZZ_TARGETS='esp:FuzzOpen dataplane:FuzzInbound' picks some. New
## interesting inputs go to PKG/testdata/fuzz/FuzzX (FUZZ_KEEP_BYTES per
## target, smallest first); a table of executions per target and the total
## at the end (internal/tools/fuzz-campaign.sh).
FUZZ_EXECS    ?= 10000000
FUZZ_PARALLEL ?= $(shell nproc)
FUZZ_TARGETS  ?=
fuzz-campaign:
	@FUZZ_EXECS='$(FUZZ_EXECS)' FUZZ_PARALLEL='$(FUZZ_PARALLEL)' GO='$(GO)' \
	  bash internal/tools/fuzz-campaign.sh $(FUZZ_TARGETS)

## soak: a gateway pair in namespaces (root, iperf3) moving TCP and UDP for
## DURATION (a Go duration), sampling each daemon's RSS, live heap,
## goroutines and file descriptors every 5s; after the warm-up (a fifth of
## the run, 30s to 2m30s) it fails when one grows past its warm-up maximum by
## more than: RSS 16 MiB, live heap 8 MiB, goroutines 16, fds 8. Prints a
## table (growth and slope per figure); SOAK_CSV=FILE keeps the samples
## (e2e/soak_test.go, build tag soak).
DURATION ?= 10m
SOAK_CSV ?=
soak: DEPS_PKGS = iproute2 iperf3
soak: deps
	MIPSEC_SOAK='$(DURATION)' MIPSEC_SOAK_CSV='$(SOAK_CSV)' $(GO) test -tags soak -count=1 -v \
	  -run '^TestSoak$$' -timeout 0 ./e2e

## demo: the main job (see README).
demo: DEPS_PKGS = $(DEPS_DEMO)
demo: deps build
	./$(BIN) demo

## install: bin/mipsec to $(DESTDIR)$(PREFIX)/bin and the systemd template
## unit dist/mipsec@.service to $(DESTDIR)$(UNITDIR) (README "Deploying").
## Without bin/mipsec it builds it; `make build && sudo make install`
## installs what you built (sudo's PATH often has no go).
$(BIN):
	$(GO) build -o $(BIN) ./cmd/mipsec

install: $(BIN)
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/mipsec
	sed 's|/usr/local/bin/mipsec|$(PREFIX)/bin/mipsec|g' dist/mipsec@.service > $(BIN)@.service
	install -D -m 0644 $(BIN)@.service $(DESTDIR)$(UNITDIR)/mipsec@.service
	install -d -m 0750 $(DESTDIR)/etc/mipsec
	@if [ -z '$(DESTDIR)' ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/mipsec $(DESTDIR)$(UNITDIR)/mipsec@.service
	@if [ -z '$(DESTDIR)' ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

clean:
	rm -rf bin
