package igmp

import (
	"encoding/binary"
	"reflect"
	"testing"
)

// brokenMessages are seeds that Decode rejects, each at a different check
// once the fuzz function has repaired its checksum.
var brokenMessages = []string{
	"",
	"16 00 f9 fd ef010101",   // bad checksum
	"13 00 0000 00000000",    // unknown type
	"11 64 0000 00000000 02", // 9-byte query
	"11 64 0000 e8010101 02 7d ffff 0a000001",                    // absurd source count
	"11 64 0000 e8010101 02 7d 0002 0a000001",                    // sources cut short
	"22 00 0000 0000 0001 01 00 0002 e8010101 0a000001",          // record sources cut short
	"22 00 0000 0000 0001 01 02 0001 e8010101 0a000001 0000",     // aux data overflows
	"22 00 0000 0000 0001 07 00 0000 ef010101",                   // record type 7
	"22 00 0000 0000 0001 01 00 0001 e8010101 7f000001",          // loopback source
	"22 00 0000 0000 0003 04 00 0000 ef010101 04 00 0000 0a0101", // records cut short
}

func fuzzSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, m := range roundTripMessages {
		seeds = append(seeds, mustMarshal(f, m))
	}
	for _, g := range goldenMessages {
		seeds = append(seeds, fromHex(f, g.wire))
	}
	for _, s := range brokenMessages {
		seeds = append(seeds, fromHex(f, s))
	}
	return seeds
}

// checkReencodes asserts that what Decode accepted marshals back to the same value.
func checkReencodes(t *testing.T, msg any) {
	t.Helper()
	m, ok := msg.(marshaler)
	if !ok {
		t.Fatalf("Decode returned a %T", msg)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatalf("Marshal of decoded %+v: %v", msg, err)
	}
	again, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode(Marshal(%+v)) = % x: %v", msg, b, err)
	}
	if !reflect.DeepEqual(again, msg) {
		t.Fatalf("re-decoded %+v, want %+v", again, msg)
	}
}

// Random bytes almost never carry a right checksum, so each input is also
// tried with its checksum repaired, to reach the parsing behind the check.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		inputs := [][]byte{b}
		if len(b) >= 4 {
			inputs = append(inputs, withChecksum(b))
		}
		for _, in := range inputs {
			msg, err := Decode(in)
			if err != nil {
				if _, ok := err.(*DecodeError); !ok || msg != nil {
					t.Fatalf("Decode(% x) = %v, %v", in, msg, err)
				}
				continue
			}
			checkReencodes(t, msg)
		}
	})
}

// withIPChecksums returns a copy of pkt with the IPv4 header checksum and the
// IGMP checksum repaired, where the header lengths allow.
func withIPChecksums(pkt []byte) []byte {
	pkt = append([]byte(nil), pkt...)
	if len(pkt) < ipv4MinHeaderLen {
		return pkt
	}
	hlen := int(pkt[0]&0x0f) * 4
	if hlen < ipv4MinHeaderLen || hlen > len(pkt) {
		return pkt
	}
	end := min(int(binary.BigEndian.Uint16(pkt[2:4])), len(pkt))
	if end >= hlen+4 {
		copy(pkt[hlen:end], withChecksum(pkt[hlen:end]))
	}
	pkt[10], pkt[11] = 0, 0
	binary.BigEndian.PutUint16(pkt[10:12], Checksum(pkt[:hlen]))
	return pkt
}

func FuzzDecodeIPv4(f *testing.F) {
	for i, s := range fuzzSeeds(f) {
		f.Add(ipv4Packet(f, "10.0.0.2", "224.0.0.22", 1, i%2 == 0, s))
	}
	f.Add(ipv4Packet(f, "10.0.0.2", "224.0.0.22", 64, true, fuzzSeeds(f)[0]))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, in := range [][]byte{pkt, withIPChecksums(pkt)} {
			src, dst, msg, err := DecodeIPv4(in)
			if err != nil {
				if _, ok := err.(*DecodeError); !ok || msg != nil {
					t.Fatalf("DecodeIPv4(% x) = %v, %v", in, msg, err)
				}
				continue
			}
			if !src.Is4() || !dst.Is4() {
				t.Fatalf("accepted with src %v dst %v", src, dst)
			}
			checkReencodes(t, msg)
			b, err := msg.(marshaler).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			src2, dst2, msg2, err := DecodeIPv4(ipv4Packet(t, src.String(), dst.String(), 1, true, b))
			if err != nil {
				t.Fatalf("rebuilt packet: %v", err)
			}
			if src2 != src || dst2 != dst || !reflect.DeepEqual(msg2, msg) {
				t.Fatalf("rebuilt packet gave %v %v %+v, want %v %v %+v", src2, dst2, msg2, src, dst, msg)
			}
		}
	})
}
