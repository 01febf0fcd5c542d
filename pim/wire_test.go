package pim

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/mrouterd/mrouterd/igmp"
)

type marshaler interface{ Marshal() ([]byte, error) }

func fromHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func addr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ptr[T any](v T) *T            { return &v }

// withChecksum returns a copy of b with its checksum recomputed over the
// whole message, so that a test reaches the check it is after.
func withChecksum(b []byte) []byte {
	b = append([]byte(nil), b...)
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint16(b[2:4], igmp.Checksum(b))
	return b
}

func mustMarshal(t testing.TB, m marshaler) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatalf("Marshal(%+v): %v", m, err)
	}
	return b
}

// Checksums worked out by summing the 16-bit words with end-around carry and
// complementing; for the Hello: 0x2000+0x9c+0x1234+0x5678 = 0x8948, so 0x76b7.
var goldenMessages = []struct {
	name string
	wire string
	msg  marshaler
}{
	{
		name: "hello",
		wire: "2000 76b7  0001 0002 0069  0013 0004 00000001  0014 0004 12345678",
		msg:  &Hello{Holdtime: ptr[uint16](105), DRPriority: ptr[uint32](1), GenerationID: ptr[uint32](0x12345678)},
	},
	{
		name: "join/prune",
		wire: "2300 bbc3  01 00 0a000001  00 01 00d2" +
			"  01 00 00 20 ef010101  0002 0000" +
			"  01 00 07 20 0a000201" + // (*,G) towards RP 10.0.2.1: S, W, R
			"  01 00 04 20 0a000102", // (S,G): S only
		msg: &JoinPrune{
			UpstreamNeighbor: addr("10.0.0.1"),
			Holdtime:         210,
			Groups: []JPGroup{{
				Group: prefix("239.1.1.1/32"),
				Joins: []JPSource{
					{Source: prefix("10.0.2.1/32"), Sparse: true, Wildcard: true, RPT: true},
					{Source: prefix("10.0.1.2/32"), Sparse: true},
				},
			}},
		},
	},
}

func TestGolden(t *testing.T) {
	for _, g := range goldenMessages {
		t.Run(g.name, func(t *testing.T) {
			wire := fromHex(t, g.wire)
			if got := mustMarshal(t, g.msg); !bytes.Equal(got, wire) {
				t.Errorf("Marshal = % x\nwant      % x", got, wire)
			}
			if igmp.Checksum(wire) != 0 {
				t.Errorf("golden checksum does not verify")
			}
			msg, err := Decode(wire)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(msg, g.msg) {
				t.Errorf("Decode = %+v, want %+v", msg, g.msg)
			}
		})
	}
}

var roundTripMessages = []marshaler{
	&Hello{},
	&Hello{
		Holdtime:      ptr[uint16](0xffff),
		DRPriority:    ptr[uint32](0xffffffff),
		GenerationID:  ptr[uint32](0),
		LANPruneDelay: &LANPruneDelay{TrackingSupport: true, PropagationDelay: 0x7fff, OverrideInterval: 2500},
		Addresses:     []netip.Addr{addr("10.1.1.1"), addr("192.168.0.1")},
		Unknown:       []HelloOption{{Type: 65010, Value: []byte{1, 0, 10, 0, 0, 9}}, {Type: 22}},
	},
	&Hello{SourcePrefixes: []netip.Prefix{prefix("10.244.1.0/24"), prefix("10.0.2.7/32"), prefix("0.0.0.0/0")}},
	&Hello{Holdtime: ptr[uint16](0), LANPruneDelay: &LANPruneDelay{PropagationDelay: 500}},
	&JoinPrune{UpstreamNeighbor: addr("10.0.0.1"), Holdtime: 0},
	&JoinPrune{
		UpstreamNeighbor: addr("10.2.2.1"),
		Holdtime:         0xffff,
		Groups: []JPGroup{
			{
				Group:  prefix("224.0.0.0/4"),
				Joins:  []JPSource{{Source: prefix("10.0.2.1/32"), Sparse: true, Wildcard: true, RPT: true}},
				Prunes: []JPSource{{Source: prefix("10.0.9.9/32"), Sparse: true, RPT: true}},
			},
			{Group: prefix("239.2.2.2/32"), Bidir: true, AdminScope: true},
			{Group: prefix("232.1.1.1/32"), Prunes: []JPSource{{Source: prefix("10.0.1.2/32"), Sparse: true}}},
		},
	},
	&Register{},
	&Register{Border: true, Null: true, Packet: []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 1, 17, 0, 0, 10, 0, 1, 2, 239, 1, 1, 1}},
	&Register{Packet: []byte{0x45, 0, 0, 21, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 1, 2, 239, 1, 1, 1, 0xaa}},
	&RegisterStop{Group: prefix("239.1.1.1/32"), Source: addr("10.0.1.2")},
	&RegisterStop{Group: prefix("239.1.1.1/32"), Source: addr("0.0.0.0")},
	&Assert{Group: addr("239.1.1.1"), Source: addr("10.0.1.2"), MetricPreference: 110, Metric: 20},
	&Assert{Group: addr("239.1.1.1"), Source: addr("0.0.0.0"), RPT: true, MetricPreference: 0x7fffffff, Metric: 0xffffffff},
}

func TestRoundTrip(t *testing.T) {
	for _, m := range roundTripMessages {
		b := mustMarshal(t, m)
		got, err := Decode(b)
		if err != nil {
			t.Errorf("Decode(Marshal(%+v)) = % x: %v", m, b, err)
			continue
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip of %+v gave %+v", m, got)
		}
		if jp, ok := m.(*JoinPrune); ok && jp.Size() != len(b) {
			t.Errorf("Size() = %d, marshalled %d bytes", jp.Size(), len(b))
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, wire, reason string
		keepChecksum       bool
	}{
		{"empty", "", ReasonShort, true},
		{"three bytes", "20 00 df", ReasonShort, true},
		{"bad checksum", "2000 76b8  0001 0002 0069  0013 0004 00000001  0014 0004 12345678", ReasonChecksum, true},
		{"version 1", "1000 0000", ReasonVersion, false},
		{"version 3", "3000 0000", ReasonVersion, false},
		{"bootstrap", "2400 0000 0000", ReasonUnknownType, false},
		{"type 15", "2f00 0000", ReasonUnknownType, false},
		{"option header cut", "2000 0000 0001 00", ReasonTruncated, false},
		{"option value cut", "2000 0000 0014 0004 1234", ReasonTruncated, false},
		{"holdtime of 4 bytes", "2000 0000 0001 0004 00690000", ReasonBadOption, false},
		{"dr priority of 2 bytes", "2000 0000 0013 0002 0001", ReasonBadOption, false},
		{"source prefixes of 4 bytes", "2000 0000 fde9 0004 0af40100", ReasonBadOption, false},
		{"source prefix length 33", "2000 0000 fde9 0005 0af40100 21", ReasonBadOption, false},
		{"source prefix with host bits", "2000 0000 fde9 0005 0af40101 18", ReasonBadOption, false},
		{"address list family 3", "2000 0000 0018 0006 0300 0a000001", ReasonBadAddressFamily, false},
		{"address list encoding 1", "2000 0000 0018 0006 0101 0a000001", ReasonBadEncoding, false},
		{"address list entry cut", "2000 0000 0018 0004 0100 0a00", ReasonTruncated, false},
		{"address list ipv6 cut", "2000 0000 0018 0006 0200 20010db8", ReasonTruncated, false},
		{"short join/prune", "2300 0000 0100 0a000001 0001", ReasonShort, false},
		{"truncated group list", "2300 0000 0100 0a000001 0002 00d2  0100 0020 ef010101 0000 0000", ReasonTruncated, false},
		{"truncated group header", "2300 0000 0100 0a000001 0001 00d2  0100 0020 ef010101 0000", ReasonTruncated, false},
		{"absurd source count", "2300 0000 0100 0a000001 0001 00d2  0100 0020 ef010101 ffff 0000  0100 0420 0a000102", ReasonTooMany, false},
		{"sources cut short", "2300 0000 0100 0a000001 0001 00d2  0100 0020 ef010101 0001 0001  0100 0420 0a000102", ReasonTruncated, false},
		{"upstream ipv6", "2300 0000 0200 0a000001 0001 00d2  0100 0020 ef010101 0000 0000", ReasonBadAddressFamily, false},
		{"group family 0", "2300 0000 0100 0a000001 0001 00d2  0000 0020 ef010101 0000 0000", ReasonBadAddressFamily, false},
		{"source encoding 1", "2300 0000 0100 0a000001 0001 00d2  0100 0020 ef010101 0001 0000  0101 0420 0a000102", ReasonBadEncoding, false},
		{"group mask 33", "2300 0000 0100 0a000001 0001 00d2  0100 0021 ef010101 0000 0000", ReasonBadMask, false},
		{"source mask 40", "2300 0000 0100 0a000001 0001 00d2  0100 0020 ef010101 0000 0001  0100 0428 0a000102", ReasonBadMask, false},
		{"short register", "2100 0000 4000", ReasonShort, false},
		{"short register-stop", "2200 0000 0100 0020 ef010101 0100 0a00", ReasonShort, false},
		{"register-stop mask 33", "2200 0000 0100 0021 ef010101 0100 0a000102", ReasonBadMask, false},
		{"short assert", "2500 0000 0100 0020 ef010101 0100 0a000102 0000006e", ReasonShort, false},
		{"assert source ipv6", "2500 0000 0100 0020 ef010101 0200 0a000102 0000006e 00000014", ReasonBadAddressFamily, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fromHex(t, tt.wire)
			if !tt.keepChecksum {
				b = withChecksum(b)
			}
			msg, err := Decode(b)
			var de *DecodeError
			if !errors.As(err, &de) || msg != nil {
				t.Fatalf("Decode(% x) = %+v, %v; want a DecodeError", b, msg, err)
			}
			if de.Reason != tt.reason {
				t.Errorf("reason %q (%v), want %q", de.Reason, err, tt.reason)
			}
		})
	}
}

func TestDecodeTooLong(t *testing.T) {
	b := make([]byte, maxMessageLen+1)
	b[0] = 0x20
	b = withChecksum(b)
	var de *DecodeError
	if _, err := Decode(b); !errors.As(err, &de) || de.Reason != ReasonTooLong {
		t.Errorf("Decode of %d bytes: %v", len(b), err)
	}
}

// RFC 7761 has the Register checksum cover the header only; some routers
// cover the whole message. Both must be accepted, and nothing else.
func TestRegisterChecksum(t *testing.T) {
	want := &Register{Null: true, Packet: []byte{0x45, 0, 0, 20, 1, 2, 3, 4}}
	headerOnly := mustMarshal(t, want)
	if igmp.Checksum(headerOnly[:registerHdrLen]) != 0 || igmp.Checksum(headerOnly) == 0 {
		t.Fatalf("Marshal did not sum the header alone: % x", headerOnly)
	}
	whole := withChecksum(headerOnly)
	for name, b := range map[string][]byte{"header only": headerOnly, "whole message": whole} {
		got, err := Decode(b)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Decode = %+v, %v", name, got, err)
		}
	}
	wrong := append([]byte(nil), headerOnly...)
	wrong[3] ^= 1
	var de *DecodeError
	if _, err := Decode(wrong); !errors.As(err, &de) || de.Reason != ReasonChecksum {
		t.Errorf("bad Register checksum: %v", err)
	}
	// Only a Register gets the header-only allowance.
	assert := mustMarshal(t, &Assert{Group: addr("239.1.1.1"), Source: addr("10.0.1.2")})
	binary.BigEndian.PutUint16(assert[2:4], 0)
	binary.BigEndian.PutUint16(assert[2:4], igmp.Checksum(assert[:registerHdrLen]))
	if _, err := Decode(assert); !errors.As(err, &de) || de.Reason != ReasonChecksum {
		t.Errorf("Assert with a header-only checksum: %v", err)
	}
}

func TestHelloAddressListSkipsIPv6(t *testing.T) {
	b := withChecksum(fromHex(t, "2000 0000  0018 001e  0100 0a000001  0200 20010db8000000000000000000000001  0100 0a000002"))
	msg, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	want := &Hello{Addresses: []netip.Addr{addr("10.0.0.1"), addr("10.0.0.2")}}
	if !reflect.DeepEqual(msg, want) {
		t.Errorf("Decode = %+v, want %+v", msg, want)
	}
}

// The caller reuses its receive buffer, so nothing decoded may point into it.
func TestDecodeCopies(t *testing.T) {
	for _, m := range []marshaler{roundTripMessages[1], roundTripMessages[6]} {
		b := mustMarshal(t, m)
		msg, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		clear(b)
		if !reflect.DeepEqual(msg, m) {
			t.Errorf("%T changed with the buffer: %+v", m, msg)
		}
	}
}

func TestMarshalErrors(t *testing.T) {
	tooManyGroups := &JoinPrune{UpstreamNeighbor: addr("10.0.0.1"), Groups: make([]JPGroup, 256)}
	for i := range tooManyGroups.Groups {
		tooManyGroups.Groups[i].Group = prefix("239.1.1.1/32")
	}
	tests := []struct {
		name string
		msg  marshaler
	}{
		{"hello ipv6 address", &Hello{Addresses: []netip.Addr{addr("2001:db8::1")}}},
		{"hello propagation delay", &Hello{LANPruneDelay: &LANPruneDelay{PropagationDelay: 0x8000}}},
		{"hello known option as unknown", &Hello{Unknown: []HelloOption{{Type: OptionDRPriority, Value: []byte{0, 0, 0, 1}}}}},
		{"hello address list as unknown", &Hello{Unknown: []HelloOption{{Type: OptionAddressList}}}},
		{"hello option too long", &Hello{Unknown: []HelloOption{{Type: 99, Value: make([]byte, 0x10000)}}}},
		{"join/prune no neighbor", &JoinPrune{}},
		{"join/prune ipv6 neighbor", &JoinPrune{UpstreamNeighbor: addr("fe80::1")}},
		{"join/prune 256 groups", tooManyGroups},
		{"join/prune zero group", &JoinPrune{UpstreamNeighbor: addr("10.0.0.1"), Groups: []JPGroup{{}}}},
		{"join/prune ipv6 source", &JoinPrune{UpstreamNeighbor: addr("10.0.0.1"), Groups: []JPGroup{{
			Group: prefix("239.1.1.1/32"), Joins: []JPSource{{Source: prefix("2001:db8::1/128")}}}}}},
		{"join/prune over 64 KiB", &JoinPrune{UpstreamNeighbor: addr("10.0.0.1"), Groups: []JPGroup{{
			Group: prefix("239.1.1.1/32"), Joins: make([]JPSource, maxJPSources+1)}}}},
		{"register over 64 KiB", &Register{Packet: make([]byte, maxMessageLen)}},
		{"register-stop no group", &RegisterStop{Source: addr("10.0.1.2")}},
		{"register-stop no source", &RegisterStop{Group: prefix("239.1.1.1/32")}},
		{"assert no group", &Assert{Source: addr("10.0.1.2")}},
		{"assert ipv6 source", &Assert{Group: addr("239.1.1.1"), Source: addr("2001:db8::1")}},
		{"assert preference", &Assert{Group: addr("239.1.1.1"), Source: addr("10.0.1.2"), MetricPreference: 0x80000000}},
	}
	for _, tt := range tests {
		if b, err := tt.msg.Marshal(); err == nil {
			t.Errorf("%s: Marshal = % x, want an error", tt.name, b)
		}
	}
}

func TestChecksum(t *testing.T) {
	tests := []struct {
		wire string
		want uint16
	}{
		{"", 0xffff},
		{"ff", 0x00ff},
		{"0001 f203 f4f5 f6f7", 0x220d}, // the RFC 1071 example, complemented
		{"ffff ffff", 0x0000},
	}
	for _, tt := range tests {
		if got := igmp.Checksum(fromHex(t, tt.wire)); got != tt.want {
			t.Errorf("igmp.Checksum(%s) = %#04x, want %#04x", tt.wire, got, tt.want)
		}
	}
}
