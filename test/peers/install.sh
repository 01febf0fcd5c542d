#!/bin/sh
# Installs the reference multicast routers that benchmarks and interop tests run
# against: FRR (Debian package frr) and troglobit's pimd. The Debian packages frr and
# pimd conflict, so pimd is unpacked into a folder of its own instead of installed.
# Safe to run again: it only fetches what is missing. Needs root and apt.
set -eu

PIMD_DIR=/opt/mrouterd-peers/pimd # keep in step with PimdDir in peers.go
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

if [ ! -x "$PIMD_DIR/usr/sbin/pimd" ]; then
	apt_update
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	# apt-get download fetches as the _apt user, which must be able to write here.
	chown _apt "$tmp" 2>/dev/null || true
	(cd "$tmp" && apt-get download -q pimd)
	# Unpack beside the target and rename, so an interrupted run leaves no half tree.
	rm -rf "$PIMD_DIR.new"
	mkdir -p "$(dirname "$PIMD_DIR")"
	dpkg-deb -x "$tmp"/pimd_*.deb "$PIMD_DIR.new"
	rm -rf "$PIMD_DIR"
	mv "$PIMD_DIR.new" "$PIMD_DIR"
fi

echo "frr:  $(/usr/lib/frr/zebra --version | head -n 1) in /usr/lib/frr"
echo "pimd: $("$PIMD_DIR/usr/sbin/pimd" -v 2>&1 | head -n 1) in $PIMD_DIR/usr/sbin/pimd"
