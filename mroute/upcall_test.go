package mroute

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

var (
	testSource = netip.MustParseAddr("10.1.1.2")
	testGroup  = netip.MustParseAddr("239.1.1.1")
)

// kernelUpcall lays out an upcall the way ipmr_cache_report does: an IP header
// whose TTL byte is the type and whose protocol byte is zero, followed by an
// 8-byte IGMP header for the short types or by the whole packet.
func kernelUpcall(typ UpcallType, vif uint16, src, grp netip.Addr, inner []byte) []byte {
	b := make([]byte, 20)
	b[0] = 0x45
	b[igmpmsgType] = byte(typ)
	b[10], b[11] = byte(vif), byte(vif>>8)
	s, g := src.As4(), grp.As4()
	copy(b[12:], s[:])
	copy(b[16:], g[:])
	if inner == nil {
		b = append(b, make([]byte, 8)...)
	} else {
		b = append(b, inner...)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

// udpPacket is a minimal IPv4+UDP datagram from src to grp.
func udpPacket(src, grp netip.Addr, payload string) []byte {
	b := make([]byte, 28, 28+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(28+len(payload)))
	b[8], b[9] = 16, 17
	s, g := src.As4(), grp.As4()
	copy(b[12:], s[:])
	copy(b[16:], g[:])
	binary.BigEndian.PutUint16(b[20:], 5000)
	binary.BigEndian.PutUint16(b[22:], 5001)
	binary.BigEndian.PutUint16(b[24:], uint16(8+len(payload)))
	return append(b, payload...)
}

func TestParseUpcall(t *testing.T) {
	inner := udpPacket(testSource, testGroup, "hello")
	for _, c := range []struct {
		name string
		in   []byte
		want Upcall
	}{
		{"nocache", kernelUpcall(NoCache, 3, testSource, testGroup, nil),
			Upcall{Type: NoCache, VIF: 3, Source: testSource, Group: testGroup}},
		{"wrongvif", kernelUpcall(WrongVIF, 0, testSource, testGroup, nil),
			Upcall{Type: WrongVIF, VIF: 0, Source: testSource, Group: testGroup}},
		{"wholepkt", kernelUpcall(WholePkt, 31, testSource, testGroup, inner),
			Upcall{Type: WholePkt, VIF: 31, Source: testSource, Group: testGroup, Packet: inner}},
		{"wrvifwhole", kernelUpcall(WrongVIFWhole, 2, testSource, testGroup, inner),
			Upcall{Type: WrongVIFWhole, VIF: 2, Source: testSource, Group: testGroup, Packet: inner}},
		{"bare 20 bytes", kernelUpcall(NoCache, 1, testSource, testGroup, nil)[:20],
			Upcall{Type: NoCache, VIF: 1, Source: testSource, Group: testGroup}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseUpcall(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != c.want.Type || got.VIF != c.want.VIF || got.Source != c.want.Source ||
				got.Group != c.want.Group || !bytes.Equal(got.Packet, c.want.Packet) {
				t.Errorf("ParseUpcall = %+v, want %+v", got, c.want)
			}
			if (got.Packet == nil) != (c.want.Packet == nil) {
				t.Errorf("Packet = %v, want nil: %t", got.Packet, c.want.Packet == nil)
			}
			if got.Packet != nil {
				c.in[20] = 0 // the caller reuses its buffer
				if got.Packet[0] != 0x45 {
					t.Error("Packet aliases the input")
				}
			}
		})
	}
}

func TestParseUpcallRejects(t *testing.T) {
	good := kernelUpcall(NoCache, 1, testSource, testGroup, nil)
	with := func(i int, v byte) []byte {
		b := bytes.Clone(good)
		b[i] = v
		return b
	}
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "0 bytes, shorter than the 20-byte igmpmsg"},
		{"short", good[:19], "19 bytes"},
		{"ip packet", with(9, 2), "protocol byte is 2"},
		{"type 0", with(8, 0), "unknown type 0"},
		{"type 5", with(8, 5), "unknown type 5"},
		{"vif 32", with(10, 32), "vif 32 out of range"},
		{"vif high byte", with(11, 1), "vif 257 out of range"},
		{"zero source", kernelUpcall(NoCache, 1, netip.IPv4Unspecified(), testGroup, nil), "source 0.0.0.0 is not a unicast"},
		{"multicast source", kernelUpcall(NoCache, 1, testGroup, testGroup, nil), "source 239.1.1.1 is not a unicast"},
		{"broadcast source", kernelUpcall(NoCache, 1, netip.MustParseAddr("255.255.255.255"), testGroup, nil), "not a unicast"},
		{"unicast group", kernelUpcall(NoCache, 1, testSource, testSource, nil), "group 10.1.1.2 is not a multicast"},
		{"wholepkt without packet", kernelUpcall(WholePkt, 1, testSource, testGroup, []byte{}), "0 bytes after the igmpmsg"},
		{"wholepkt short packet", kernelUpcall(WholePkt, 1, testSource, testGroup, make([]byte, 19)), "19 bytes after"},
		{"wholepkt not ipv4", kernelUpcall(WholePkt, 1, testSource, testGroup, make([]byte, 40)), "not an IPv4 packet"},
	} {
		_, err := ParseUpcall(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ParseUpcall = %v, want error containing %q", c.name, err, c.want)
		}
	}
}

func TestUpcallTypeString(t *testing.T) {
	for typ, want := range map[UpcallType]string{
		NoCache: "nocache", WrongVIF: "wrongvif", WholePkt: "wholepkt", WrongVIFWhole: "wrvifwhole", 9: "upcall(9)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("UpcallType(%d).String() = %q, want %q", uint8(typ), got, want)
		}
	}
}

func FuzzParseUpcall(f *testing.F) {
	inner := udpPacket(testSource, testGroup, "x")
	f.Add(kernelUpcall(NoCache, 1, testSource, testGroup, nil))
	f.Add(kernelUpcall(WrongVIF, 31, testSource, testGroup, nil))
	f.Add(kernelUpcall(WholePkt, 0, testSource, testGroup, inner))
	f.Add(kernelUpcall(WrongVIFWhole, 4, testSource, testGroup, inner))
	f.Add(inner)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := ParseUpcall(b)
		if err != nil {
			return
		}
		if u.VIF >= MaxVIFs || !u.Group.IsMulticast() || !u.Source.Is4() || u.Type.String() == "" {
			t.Fatalf("accepted an invalid upcall %+v from %x", u, b)
		}
		whole := u.Type == WholePkt || u.Type == WrongVIFWhole
		if whole != (u.Packet != nil) {
			t.Fatalf("type %s with Packet %x", u.Type, u.Packet)
		}
		if whole && !bytes.Equal(u.Packet, b[20:]) {
			t.Fatal("Packet is not the bytes after the igmpmsg")
		}
	})
}
