#!/usr/bin/python3
"""Sends malformed IGMP packets out of one interface, one of each kind the router must
drop and count: bad checksum, truncated v3 group record, absurd source count, a query
of impossible length, an unknown type and a report for a non-multicast group."""
import struct
import sys

from inet import checksum
from scapy.all import IP, IPOption_Router_Alert, Raw, conf, send

conf.verb = 0


def with_checksum(msg: bytes) -> bytes:
    c = checksum(msg[:2] + b"\0\0" + msg[4:])
    return msg[:2] + struct.pack("!H", c) + msg[4:]


def v3_report(records: bytes, count: int) -> bytes:
    return with_checksum(struct.pack("!BBHHH", 0x22, 0, 0, 0, count) + records)


group = bytes([239, 9, 9, 9])
source = bytes([10, 0, 1, 2])
cases = {
    # a valid v2 report with its checksum broken
    "checksum": struct.pack("!BBH4s", 0x16, 0, 0xDEAD, group),
    # one record that claims three sources but carries one
    "truncated-record": v3_report(struct.pack("!BBH4s", 1, 0, 3, group) + source, 1),
    # 65535 sources claimed in a 20-byte record
    "too-many-sources": v3_report(struct.pack("!BBH4s", 1, 0, 65535, group) + source, 1),
    # a query of 10 bytes: neither v2 (8) nor v3 (12 or more)
    "bad-length": with_checksum(struct.pack("!BBH4sH", 0x11, 100, 0, bytes(4), 0)),
    "unknown-type": with_checksum(struct.pack("!BBH4s", 0x42, 0, 0, group)),
    "bad-group": with_checksum(struct.pack("!BBH4s", 0x16, 0, 0, source)),
}

iface = sys.argv[1]
for reason, payload in cases.items():
    pkt = IP(dst="224.0.0.22", ttl=1, proto=2, tos=0xC0, options=[IPOption_Router_Alert()]) / Raw(payload)
    send(pkt, iface=iface)
print(" ".join(cases))
