#!/bin/sh
# Installs the reference implementations that benchmarks, interop and lab tests run
# against: FRR (Debian package frr) and troglobit's pimd as PIM routers, and
# Prometheus's promtool as the judge of /metrics. The Debian packages frr and pimd
# conflict, so pimd is unpacked into a folder of its own instead of installed; so is
# promtool, out of the package prometheus, whose server is not wanted. (Building it
# from its Go module instead fetches 1.8 GB of modules and compiles every cloud's
# SDK: 15 minutes of CPU, 3 GB of memory.)
# Safe to run again: it only fetches what is missing. Needs root and apt.
set -eu

PIMD_DIR=/opt/mrouterd-peers/pimd             # keep in step with PimdDir in peers.go
PROMETHEUS_DIR=/opt/mrouterd-peers/prometheus # keep in step with PrometheusDir in peers.go
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
	echo "install.sh: run as root (it installs Debian packages)" >&2
	exit 1
fi

updated=
apt_update() {
	if [ -z "$updated" ]; then
		apt-get update -q
		updated=1
	fi
}

if ! dpkg-query -W -f='${Status}' frr 2>/dev/null | grep -q 'install ok installed'; then
	apt_update
	apt-get install -y -q --no-install-recommends frr
fi

# unpack PACKAGE DIR: the Debian package's files under DIR, without installing it.
tmp=
trap '[ -z "$tmp" ] || rm -rf "$tmp"' EXIT
unpack() {
	apt_update
	tmp=$(mktemp -d)
	# apt-get download fetches as the _apt user, which must be able to write here.
	chown _apt "$tmp" 2>/dev/null || true
	(cd "$tmp" && apt-get download -q "$1")
	# Unpack beside the target and rename, so an interrupted run leaves no half tree.
	rm -rf "$2.new"
	mkdir -p "$(dirname "$2")"
	dpkg-deb -x "$tmp/$1"_*.deb "$2.new"
	rm -rf "$2"
	mv "$2.new" "$2"
}

if [ ! -x "$PIMD_DIR/usr/sbin/pimd" ]; then
	unpack pimd "$PIMD_DIR"
fi
if [ ! -x "$PROMETHEUS_DIR/usr/bin/promtool" ]; then
	unpack prometheus "$PROMETHEUS_DIR"
fi

echo "frr:  $(/usr/lib/frr/zebra --version | head -n 1) in /usr/lib/frr"
echo "pimd: $("$PIMD_DIR/usr/sbin/pimd" -v 2>&1 | head -n 1) in $PIMD_DIR/usr/sbin/pimd"
echo "promtool: $("$PROMETHEUS_DIR/usr/bin/promtool" --version 2>&1 | head -n 1) in $PROMETHEUS_DIR/usr/bin/promtool"
