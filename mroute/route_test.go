package mroute

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// routeMessage builds an RTM_NEWROUTE payload of the IPMR family the way
// ipmr_fill_mroute lays it out.
type routeMessage struct {
	b []byte
}

func newRouteMessage(table uint8, protocol uint8, flags uint32) *routeMessage {
	b := make([]byte, 12)
	b[0] = rtnlFamilyIPMR
	b[1], b[2] = 32, 32 // dst_len, src_len
	b[4] = table
	b[5] = protocol
	b[7] = 5 // RTN_MULTICAST
	binary.NativeEndian.PutUint32(b[8:], flags)
	return &routeMessage{b: b}
}

func (m *routeMessage) attr(typ uint16, val []byte) *routeMessage {
	hdr := make([]byte, 4)
	binary.NativeEndian.PutUint16(hdr[0:], uint16(4+len(val)))
	binary.NativeEndian.PutUint16(hdr[2:], typ)
	m.b = append(m.b, hdr...)
	m.b = append(m.b, val...)
	for len(m.b)%4 != 0 {
		m.b = append(m.b, 0)
	}
	return m
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func u64s(vs ...uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.NativeEndian.AppendUint64(b, v)
	}
	return b
}

func nexthops(ifindexes ...int) []byte {
	var b []byte
	for _, ifi := range ifindexes {
		nh := make([]byte, 8)
		binary.NativeEndian.PutUint16(nh[0:], 8)
		nh[3] = 1 // rtnh_hops carries the TTL threshold
		binary.NativeEndian.PutUint32(nh[4:], uint32(ifi))
		b = append(b, nh...)
	}
	return b
}

const rtaPad = 24

func resolvedMessage() []byte {
	return newRouteMessage(253, 17, 0).
		attr(rtaTable, u32(253)).
		attr(rtaSrc, []byte{10, 1, 1, 2}).
		attr(rtaDst, []byte{239, 1, 1, 1}).
		attr(rtaIIF, u32(4)).
		attr(rtaMultipath|0x8000, nexthops(9, 5, 7)).
		attr(rtaPad, nil).
		attr(rtaMFCStats, u64s(12, 3400, 2)).
		attr(rtaExpires, u64s(250)).b
}

func TestParseRouteMessage(t *testing.T) {
	e, table, err := parseRouteMessage(resolvedMessage())
	if err != nil {
		t.Fatal(err)
	}
	want := KernelEntry{
		Source: netip.MustParseAddr("10.1.1.2"), Group: netip.MustParseAddr("239.1.1.1"),
		IIF: 4, OIFs: []int{5, 7, 9}, Packets: 12, Bytes: 3400, WrongIf: 2, Idle: 2500 * time.Millisecond,
	}
	if table != 253 {
		t.Errorf("table = %d, want 253", table)
	}
	if !entryEqual(e, want) {
		t.Errorf("entry\n got %+v\nwant %+v", e, want)
	}
}

func TestParseRouteMessageUnresolved(t *testing.T) {
	// An unresolved entry carries the flag and only the table and addresses.
	msg := newRouteMessage(100, 17, rtnhFUnresolved).
		attr(rtaTable, u32(100)).
		attr(rtaSrc, []byte{10, 9, 0, 2}).
		attr(rtaDst, []byte{239, 9, 9, 9}).b
	e, table, err := parseRouteMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	if table != 100 || !e.Unresolved || e.IIF != 0 || e.OIFs != nil || e.Static {
		t.Errorf("unresolved entry = %+v in table %d", e, table)
	}
}

func TestParseRouteMessageTableAttrWins(t *testing.T) {
	// rtm_table is one byte; RTA_TABLE carries ids above 255.
	msg := newRouteMessage(1000&0xff, 4, 0).
		attr(rtaTable, u32(1000)).
		attr(rtaSrc, []byte{0, 0, 0, 0}).
		attr(rtaDst, []byte{239, 1, 1, 1}).b
	e, table, err := parseRouteMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	if table != 1000 || !e.Static || !e.Source.IsUnspecified() {
		t.Errorf("entry %+v in table %d; want static (*,G) in table 1000", e, table)
	}
}

func TestParseRouteMessageRejects(t *testing.T) {
	good := resolvedMessage()
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "shorter than rtmsg"},
		{"family", append([]byte{2}, good[1:]...), "family 2"},
		{"truncated attribute", good[:len(good)-3], "does not fit"},
		{"tiny trailer", append(append([]byte(nil), good...), 1, 0), "too short for an attribute"},
		{"zero-length attribute", append(append([]byte(nil), good...), 0, 0, 0, 0), "length 0"},
		{"no source", newRouteMessage(253, 17, 0).attr(rtaDst, []byte{239, 1, 1, 1}).b, "missing RTA_SRC"},
		{"short source", newRouteMessage(253, 17, 0).attr(rtaSrc, []byte{10, 1}).b, "RTA_SRC of 2 bytes"},
		{"long group", newRouteMessage(253, 17, 0).attr(rtaDst, make([]byte, 16)).b, "RTA_DST of 16 bytes"},
		{"short iif", newRouteMessage(253, 17, 0).attr(rtaIIF, []byte{1}).b, "RTA_IIF of 1 bytes"},
		{"short table", newRouteMessage(253, 17, 0).attr(rtaTable, []byte{1, 2}).b, "RTA_TABLE of 2 bytes"},
		{"short stats", newRouteMessage(253, 17, 0).attr(rtaMFCStats, u64s(1, 2)).b, "RTA_MFC_STATS of 16 bytes"},
		{"short expires", newRouteMessage(253, 17, 0).attr(rtaExpires, u32(1)).b, "RTA_EXPIRES of 4 bytes"},
		{"short nexthop", newRouteMessage(253, 17, 0).attr(rtaMultipath, make([]byte, 4)).b, "too short for rtnexthop"},
		{"nexthop length", newRouteMessage(253, 17, 0).attr(rtaMultipath, []byte{100, 0, 0, 0, 1, 0, 0, 0}).b, "rtnexthop length 100"},
	} {
		_, _, err := parseRouteMessage(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: parseRouteMessage = %v, want error containing %q", c.name, err, c.want)
		}
	}
}

func FuzzParseRouteMessage(f *testing.F) {
	f.Add(resolvedMessage())
	f.Add(newRouteMessage(253, 17, rtnhFUnresolved).attr(rtaSrc, []byte{10, 0, 0, 1}).attr(rtaDst, []byte{239, 0, 0, 1}).b)
	f.Add(newRouteMessage(253, 17, 0).attr(rtaMultipath, nexthops(1, 2)).b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, _, err := parseRouteMessage(b)
		if err != nil {
			return
		}
		if !e.Source.Is4() || !e.Group.Is4() || !slices.IsSorted(e.OIFs) || e.Idle < 0 {
			t.Fatalf("accepted %+v from %x", e, b)
		}
	})
}

func entryEqual(a, b KernelEntry) bool {
	oifs := slices.Equal(a.OIFs, b.OIFs)
	a.OIFs, b.OIFs = nil, nil
	return oifs && a.Source == b.Source && a.Group == b.Group && a.IIF == b.IIF &&
		a.Packets == b.Packets && a.Bytes == b.Bytes && a.WrongIf == b.WrongIf &&
		a.Idle == b.Idle && a.Unresolved == b.Unresolved && a.Static == b.Static
}
