#!/usr/bin/env bash
# fuzz-campaign.sh: the long fuzz runs of the inbound targets (the
# Makefile's `fuzz-campaign` target).
#
#   internal/tools/fuzz-campaign.sh [PKG:FuzzX ...]
#
# Each target runs for FUZZ_EXECS executions (-fuzztime Nx: a count, not a
# duration; the Makefile's note on FUZZTIME says why) with FUZZ_PARALLEL
# workers, starting from its committed corpus, PKG/testdata/fuzz/FuzzX, and
# the seeds its f.Add calls give. Go keeps the new interesting inputs a run
# finds in its build cache ($(go env GOCACHE)/fuzz/MODULE/PKG/FuzzX); after
# the run the smallest of them that are not committed yet are copied into
# PKG/testdata/fuzz/FuzzX, at most FUZZ_KEEP_BYTES bytes of new files per
# target, so that the committed corpus grows by a few KB per campaign
# rather than by the whole cache. A failing input is written there by go
# test itself and the campaign fails at the end.
#
# The executions of a target are the last "execs: N" figure go test -fuzz
# prints (its progress lines, "fuzz: elapsed: 3s, execs: 52029 (...)", the
# last of which is printed when the budget is used up); the table at the
# end lists them per target, with the total, the Go version and the date.
#
# Environment:
#   FUZZ_EXECS       executions per target [10000000]
#   FUZZ_PARALLEL    fuzzing workers (-parallel) [nproc]
#   FUZZ_KEEP_BYTES  new corpus bytes kept per target [16384]; 0 keeps none
#   FUZZ_LOG_DIR     where each target's go test output goes [a temp dir]
#   GO               the go command [go]
set -uo pipefail

go=${GO:-go}
execs=${FUZZ_EXECS:-10000000}
par=${FUZZ_PARALLEL:-$(nproc)}
keep=${FUZZ_KEEP_BYTES:-16384}
logdir=${FUZZ_LOG_DIR:-$(mktemp -d)}
mkdir -p "$logdir"

# The inbound parsers of untrusted bytes (ARCHITECTURE.md lists the
# packages): ESP Open (RFC 4303 §3.4), the dataplane's inbound stage, the
# DSMIPv6 UDP decapsulation and the HA's delivery of MIPv6 signalling, the
# underlay's receive demultiplexer (UDP 4500 non-ESP marker and keepalives,
# RFC 3948 §2.2-2.3), the control socket's request lines and the config
# parser.
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	targets=(
		esp:FuzzOpen
		dataplane:FuzzInbound
		dataplane:FuzzInboundEncapIP
		mip6:FuzzHADeliver
		mip6:FuzzStripUDPEncap
		underlay:FuzzClassify
		control:FuzzControlLine
		config:FuzzParseConfig
	)
fi

module=$($go list -m)
cache=$($go env GOCACHE)/fuzz
goversion=$($go env GOVERSION)
started=$(date -u +%Y-%m-%dT%H:%MZ)
failed=()
rows=()
total=0

for t in "${targets[@]}"; do
	pkg=${t%%:*}
	fn=${t#*:}
	log="$logdir/${pkg//\//_}-$fn.log"
	echo "== fuzz-campaign $pkg $fn: ${execs}x, -parallel $par (log $log)"
	t0=$(date +%s)
	$go test -run '^$' -fuzz "^$fn\$" -fuzztime "${execs}x" -parallel "$par" "./$pkg" >"$log" 2>&1
	rc=$?
	secs=$(($(date +%s) - t0))
	tail -n 3 "$log"
	n=$(grep -oE 'execs: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || true)
	n=${n:-0}
	status=ok
	if [ $rc -ne 0 ]; then
		status=FAIL
		failed+=("$pkg:$fn")
	elif [ "$n" -lt "$execs" ]; then
		# The budget was not used up: a run that stopped early is not
		# evidence of the count asked for.
		status=SHORT
		failed+=("$pkg:$fn")
	fi
	kept=0
	if [ "$keep" -gt 0 ] && [ -d "$cache/$module/$pkg/$fn" ]; then
		dst="$pkg/testdata/fuzz/$fn"
		mkdir -p "$dst"
		budget=$keep
		# Smallest first: they are the cheapest to commit and replay.
		while read -r size f; do
			[ -e "$dst/$(basename "$f")" ] && continue
			[ "$size" -gt "$budget" ] && break
			cp "$f" "$dst/" && budget=$((budget - size)) && kept=$((kept + 1))
		done < <(find "$cache/$module/$pkg/$fn" -type f -printf '%s %p\n' | sort -n)
	fi
	total=$((total + n))
	rows+=("$(printf '%-12s %-20s %12s %7ss %6s %s' "$pkg" "$fn" "$n" "$secs" "$kept" "$status")")
done

echo
echo "== fuzz-campaign summary ($goversion, started $started, finished $(date -u +%Y-%m-%dT%H:%MZ), -parallel $par)"
printf '%-12s %-20s %12s %8s %6s %s\n' package target executions time kept status
for r in "${rows[@]}"; do echo "$r"; done
printf '%-12s %-20s %12s\n' total "" "$total"
if [ ${#failed[@]} -gt 0 ]; then
	echo "failed: ${failed[*]} (logs in $logdir; a crasher is under PKG/testdata/fuzz/FuzzX)"
	exit 1
fi
