# mipsec — see README.md. Every target works on a fresh clone after `.ci/run`
# has installed the Debian packages (python3-scapy for the interop tests).

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

.PHONY: all build test test-unit test-race check fmt vet staticcheck bench bench-e2e pgo fuzz demo clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/mipsec

## test: every test; with CI=true a skipped test is a failure.
test: test-unit test-race

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
bench-e2e: build
	$(GO) build -o bin/wireguard-go golang.zx2c4.com/wireguard
	./$(BIN) bench $(BENCHFLAGS)

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

## demo: the main job (see README).
demo: build
	./$(BIN) demo

clean:
	rm -rf bin
