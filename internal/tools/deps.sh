#!/usr/bin/env bash
# deps.sh: the Debian packages that `make test`, `make demo` and
# `make bench-e2e` need (the Makefile's `deps` target; .ci/run uses it too).
#
#   internal/tools/deps.sh PACKAGE...
#
# Each PACKAGE is checked by what the tests and demos actually use (the
# command, for python3-scapy the module the interop tests import, for the
# strongSwan packages the programs and plugins internal/charontest loads),
# so a tool installed some other way counts as present. Nothing is
# missing: one line, exit 0. Something is missing:
#
#   - as root (id -u = 0) with apt-get: `apt-get update` and
#     `apt-get install --no-install-recommends` of the missing packages,
#     non-interactively, then the check again; while it installs, a
#     policy-rc.d that answers 101 keeps the packages' services from
#     starting (the strongSwan packages would start a charon on the host:
#     the interop tests run their own in namespaces), unless one is in
#     place already;
#   - otherwise: the missing packages and the `sudo apt-get install` line,
#     and exit 1, or exit 0 with DEPS_MISSING=warn (`make test` outside CI:
#     the tests that need a missing tool skip themselves, internal/testenv).
#
# Environment:
#   DEPS_ROOT=1|0     act as root / as non-root whatever id -u says (0 lets
#                     root see the message a user gets; 1 is for a root
#                     shell that id -u misreports, e.g. a fakeroot)
#   DEPS_MISSING=fail|warn  what missing packages do without root [fail]
#   DEPS_WHAT         the target named in the messages [make deps]
#   GO                the go command to look for [go]
set -euo pipefail

what=${DEPS_WHAT:-make deps}
mode=${DEPS_MISSING:-fail}
go=${GO:-go}
root=${DEPS_ROOT:-}
if [ -z "$root" ]; then
  if [ "$(id -u)" = 0 ]; then root=1; else root=0; fi
fi

# plugin NAME: is strongSwan's plugin NAME installed?
plugin() { [ -f "/usr/lib/ipsec/plugins/libstrongswan-$1.so" ]; }

# present PACKAGE: is what mipsec uses from PACKAGE there?
present() {
  case $1 in
    python3-scapy)   [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import scapy.layers.ipsec' 2>/dev/null ;;
    iproute2)        command -v ip >/dev/null ;;
    nftables)        command -v nft >/dev/null ;;
    tshark)          command -v tshark >/dev/null ;;
    iperf3)          command -v iperf3 >/dev/null ;;
    wireguard-tools) command -v wg >/dev/null ;;
    make)            command -v make >/dev/null ;;
    git)             command -v git >/dev/null ;;
    # strongSwan, as internal/charontest runs it: charon, swanctl (and its
    # vici plugin), pki, and the plugins of its load list.
    strongswan-charon)              [ -x /usr/lib/ipsec/charon ] ;;
    strongswan-swanctl)             command -v swanctl >/dev/null && plugin vici ;;
    strongswan-pki)                 command -v pki >/dev/null ;;
    libcharon-extra-plugins)        plugin kernel-libipsec ;;
    libstrongswan-standard-plugins) plugin openssl && plugin gcm ;;
    libstrongswan-extra-plugins)    plugin chapoly && plugin curve25519 && plugin ctr ;;
    *)               dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q 'install ok installed' ;;
  esac
}

missing() {
  local m=()
  for p in "$@"; do present "$p" || m+=("$p"); done
  echo "${m[*]}"
}

if ! command -v "$go" >/dev/null; then
  echo "$what: no Go toolchain ($go): install Go 1.26 or newer from https://go.dev/dl/ (Debian's golang package is older) and put it on PATH, e.g. PATH=/usr/local/go/bin:\$PATH" >&2
  exit 1
fi

need=$(missing "$@")
if [ -z "$need" ]; then
  echo "== $what: Debian packages present ($*)"
  exit 0
fi

if [ "$root" = 1 ] && command -v apt-get >/dev/null; then
  echo "== $what: apt-get install $need"
  export DEBIAN_FRONTEND=noninteractive
  # invoke-rc.d asks policy-rc.d first: 101 = action forbidden, so no
  # service starts while installing (policy-rc.d(8) in Debian's sysv-rc).
  rcd=/usr/sbin/policy-rc.d
  if [ ! -e "$rcd" ]; then
    printf '#!/bin/sh\n# internal/tools/deps.sh: no service starts while installing\nexit 101\n' >"$rcd"
    chmod 755 "$rcd"
    trap 'rm -f "$rcd"' EXIT
  fi
  # A service manager may start units without invoke-rc.d: stop the
  # strongSwan ones the install started (charon binds UDP 500 and 4500).
  units="strongswan strongswan-starter"
  before=""
  if command -v systemctl >/dev/null; then
    for u in $units; do systemctl is-active --quiet "$u" 2>/dev/null && before="$before $u"; done
  fi
  apt-get update -q
  # shellcheck disable=SC2086 # one word per package
  apt-get install -y -q --no-install-recommends $need
  if command -v systemctl >/dev/null; then
    for u in $units; do
      case " $before " in *" $u "*) continue ;; esac
      if systemctl is-active --quiet "$u" 2>/dev/null; then
        echo "== $what: stopping $u (started by the install)"
        systemctl stop "$u" || true
      fi
    done
  fi
  still=$(missing "$@")
  if [ -n "$still" ]; then
    echo "$what: installed, but still missing: $still" >&2
    exit 1
  fi
  exit 0
fi

if [ "$root" = 1 ]; then
  echo "$what: missing: $need (Debian package names), and no apt-get to install them: install their equivalents" >&2
else
  echo "$what: missing Debian packages: $need" >&2
  echo "  install them with:  sudo apt-get install --no-install-recommends $need" >&2
  echo "  (or run \`sudo make deps\`, which installs what is missing; as root, make test/demo/bench-e2e do it themselves)" >&2
fi
if [ "$mode" = warn ]; then
  echo "  going on: the tests that need them skip themselves (with CI=true a skip is a failure)" >&2
  exit 0
fi
exit 1
