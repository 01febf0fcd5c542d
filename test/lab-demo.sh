#!/usr/bin/env bash
# Brings a lab topology up on network namespaces, sends multicast across it, shows what
# each receiver got and each router's routing table, then tears everything down.
# Hosts named src* send to $GROUP, hosts named rcv* receive on their eth1.
set -euo pipefail

topo=${1:?usage: lab-demo.sh TOPOLOGY.clab.yml}
group=${GROUP:-239.1.1.1}
port=5000
work=$(mktemp -d)
prefix=$(lab up "$topo")
cleanup() {
	lab down -prefix "$prefix" || true
	rm -rf "$work"
}
trap cleanup EXIT
echo "lab $prefix is up ($topo)"

hosts=$(lab nodes -prefix "$prefix" -hosts)
routers=$(lab nodes -prefix "$prefix" -routers)
receivers=$(grep '^rcv' <<<"$hosts" || true)
senders=$(grep '^src' <<<"$hosts" || true)

for r in $receivers; do
	lab exec -prefix "$prefix" "$r" mcast recv -group "$group" -port "$port" -ifname eth1 \
		-idle 1s -duration 10s -ready "$work/$r.ready" >"$work/$r.json" &
done
for r in $receivers; do
	for _ in $(seq 100); do
		[ -e "$work/$r.ready" ] && break
		sleep 0.05
	done
	[ -e "$work/$r.ready" ] || { echo "receiver $r did not join" >&2; exit 1; }
done

stream=0
for s in $senders; do
	echo "$s sends 300 packets to $group:$port at 100 per second"
	# Each sender numbers its own stream, so receivers count them apart.
	lab exec -prefix "$prefix" "$s" mcast send -group "$group" -port "$port" -ifname eth1 \
		-ttl 16 -rate 100 -count 300 -stream "$stream" >/dev/null
	stream=$((stream + 1))
done

for r in $routers; do
	echo
	echo "== $r: mroutectl show routes"
	lab exec -prefix "$prefix" "$r" mroutectl show routes
done

wait
echo
for r in $receivers; do
	# The report is one JSON object; its first fields say what a person wants to know.
	sed -E 's/^\{"received":([0-9]+),"unique":[0-9]+,"duplicates":([0-9]+),"lost":([0-9]+).*/\1 received, \3 lost, \2 duplicated/' \
		"$work/$r.json" | sed "s/^/$r: /"
done
