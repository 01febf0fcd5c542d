package mroute

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// KernelEntry is one MFC entry as the kernel reports it over netlink.
type KernelEntry struct {
	Source netip.Addr // 0.0.0.0 for (*,G)
	Group  netip.Addr
	IIF    int   // ifindex of the incoming VIF, 0 if none
	OIFs   []int // ifindexes of the outgoing VIFs, sorted

	Packets, Bytes, WrongIf uint64

	// Idle is how long ago the entry last forwarded a packet (or was created).
	// The kernel reports it as RTA_EXPIRES, although it is an age, in clock
	// ticks of 1/100 s.
	Idle time.Duration

	// Unresolved marks an entry the kernel created for packets without a route
	// and queued for the router: it has no IIF, OIFs or counters, and goes away
	// on its own after about 10 s.
	Unresolved bool

	// Static marks an entry installed by a socket other than the table's
	// owner; it survives the owner's exit.
	Static bool
}

// rtmsg and attribute layout, from <linux/rtnetlink.h>.
const (
	sizeofRtmsg     = 12
	rtmsgFamily     = 0
	rtmsgTable      = 4
	rtmsgProtocol   = 5
	rtmsgFlags      = 8
	sizeofRtattr    = 4
	sizeofRtnexthop = 8
	rtnexthopIfidx  = 4
	sizeofMfcStats  = 24
	clockTicksPerS  = 100 // USER_HZ, the unit of jiffies_to_clock_t

	rtaDst       = 1
	rtaSrc       = 2
	rtaIIF       = 3
	rtaMultipath = 9
	rtaTable     = 15
	rtaMFCStats  = 17
	rtaExpires   = 23

	rtprotStatic     = 4
	rtnhFUnresolved  = 0x20
	maxIdleClockTick = uint64(1<<63-1) / uint64(time.Second/clockTicksPerS)
)

// parseRouteMessage decodes the payload of one RTM_NEWROUTE message of the
// IPMR family: an rtmsg followed by attributes. It returns the entry and the
// table it belongs to.
func parseRouteMessage(b []byte) (KernelEntry, uint32, error) {
	var e KernelEntry
	if len(b) < sizeofRtmsg {
		return e, 0, fmt.Errorf("route message: %d bytes, shorter than rtmsg", len(b))
	}
	if b[rtmsgFamily] != rtnlFamilyIPMR {
		return e, 0, fmt.Errorf("route message: family %d, want RTNL_FAMILY_IPMR (%d)", b[rtmsgFamily], rtnlFamilyIPMR)
	}
	table := uint32(b[rtmsgTable])
	e.Static = b[rtmsgProtocol] == rtprotStatic
	e.Unresolved = binary.NativeEndian.Uint32(b[rtmsgFlags:])&rtnhFUnresolved != 0

	var haveSource, haveGroup bool
	attrs := b[sizeofRtmsg:]
	for len(attrs) > 0 {
		typ, val, rest, err := nextAttr(attrs)
		if err != nil {
			return e, 0, fmt.Errorf("route message: %w", err)
		}
		attrs = rest
		switch typ {
		case rtaSrc:
			if len(val) != 4 {
				return e, 0, fmt.Errorf("route message: RTA_SRC of %d bytes", len(val))
			}
			e.Source = netip.AddrFrom4([4]byte(val))
			haveSource = true
		case rtaDst:
			if len(val) != 4 {
				return e, 0, fmt.Errorf("route message: RTA_DST of %d bytes", len(val))
			}
			e.Group = netip.AddrFrom4([4]byte(val))
			haveGroup = true
		case rtaIIF:
			if len(val) != 4 {
				return e, 0, fmt.Errorf("route message: RTA_IIF of %d bytes", len(val))
			}
			e.IIF = int(binary.NativeEndian.Uint32(val))
		case rtaTable:
			if len(val) != 4 {
				return e, 0, fmt.Errorf("route message: RTA_TABLE of %d bytes", len(val))
			}
			table = binary.NativeEndian.Uint32(val)
		case rtaMultipath:
			oifs, err := parseNexthops(val)
			if err != nil {
				return e, 0, fmt.Errorf("route message: RTA_MULTIPATH: %w", err)
			}
			e.OIFs = oifs
		case rtaMFCStats:
			if len(val) < sizeofMfcStats {
				return e, 0, fmt.Errorf("route message: RTA_MFC_STATS of %d bytes", len(val))
			}
			e.Packets = binary.NativeEndian.Uint64(val[0:])
			e.Bytes = binary.NativeEndian.Uint64(val[8:])
			e.WrongIf = binary.NativeEndian.Uint64(val[16:])
		case rtaExpires:
			if len(val) != 8 {
				return e, 0, fmt.Errorf("route message: RTA_EXPIRES of %d bytes", len(val))
			}
			ticks := min(binary.NativeEndian.Uint64(val), maxIdleClockTick)
			e.Idle = time.Duration(ticks) * (time.Second / clockTicksPerS)
		}
	}
	if !haveSource || !haveGroup {
		return e, 0, fmt.Errorf("route message: missing RTA_SRC or RTA_DST")
	}
	return e, table, nil
}

// nextAttr splits the first rtattr off b.
func nextAttr(b []byte) (typ uint16, val, rest []byte, err error) {
	if len(b) < sizeofRtattr {
		return 0, nil, nil, fmt.Errorf("%d trailing bytes, too short for an attribute", len(b))
	}
	n := int(binary.NativeEndian.Uint16(b[0:]))
	typ = binary.NativeEndian.Uint16(b[2:])
	if n < sizeofRtattr || n > len(b) {
		return 0, nil, nil, fmt.Errorf("attribute %d: length %d does not fit in %d bytes", typ, n, len(b))
	}
	// Nested and byte-order flags live in the top bits of the type.
	typ &^= 0xc000
	val = b[sizeofRtattr:n]
	aligned := min(align4(n), len(b))
	return typ, val, b[aligned:], nil
}

// parseNexthops returns the ifindexes of a list of rtnexthop, sorted.
func parseNexthops(b []byte) ([]int, error) {
	var oifs []int
	for len(b) > 0 {
		if len(b) < sizeofRtnexthop {
			return nil, fmt.Errorf("%d trailing bytes, too short for rtnexthop", len(b))
		}
		n := int(binary.NativeEndian.Uint16(b[0:]))
		if n < sizeofRtnexthop || n > len(b) {
			return nil, fmt.Errorf("rtnexthop length %d does not fit in %d bytes", n, len(b))
		}
		oifs = append(oifs, int(binary.NativeEndian.Uint32(b[rtnexthopIfidx:])))
		b = b[min(align4(n), len(b)):]
	}
	slices.Sort(oifs)
	return oifs, nil
}

func align4(n int) int { return (n + 3) &^ 3 }
