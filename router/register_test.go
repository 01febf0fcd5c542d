package router

import (
	"encoding/binary"
	"testing"

	"github.com/mrouterd/mrouterd/igmp"
)

// udpPacket builds an IPv4/UDP packet from 10.0.1.2 to 239.1.1.1 whose UDP checksum
// field holds csum.
func udpPacket(payload []byte, csum uint16) []byte {
	p := make([]byte, 28+len(payload))
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:4], uint16(len(p)))
	copy(p[12:16], []byte{10, 0, 1, 2})
	copy(p[16:20], []byte{239, 1, 1, 1})
	binary.BigEndian.PutUint16(p[20:22], 4000)
	binary.BigEndian.PutUint16(p[22:24], 5000)
	binary.BigEndian.PutUint16(p[24:26], uint16(8+len(payload)))
	binary.BigEndian.PutUint16(p[26:28], csum)
	copy(p[28:], payload)
	binary.BigEndian.PutUint16(p[10:12], igmp.Checksum(p[:20]))
	return p
}

// udpValid checks the UDP checksum as a receiver does: over the pseudo-header and
// the datagram, the sum comes to zero.
func udpValid(p []byte) bool {
	pseudo := append(append([]byte{}, p[12:20]...), 0, 17, p[24], p[25])
	return igmp.Checksum(append(pseudo, p[20:]...)) == 0
}

func TestCompleteUDPChecksum(t *testing.T) {
	payload := []byte("a multicast datagram, 35 bytes long")
	// What a veth hands over with offload on: only the pseudo-header sum.
	partial := udpPacket(payload, 0x1234)
	if udpValid(partial) {
		t.Fatal("test packet unexpectedly valid")
	}
	completeUDPChecksum(partial)
	if !udpValid(partial) {
		t.Fatal("checksum not completed")
	}
	// A correct checksum stays as it is, and "no checksum" (0) is left alone.
	again := append([]byte(nil), partial...)
	completeUDPChecksum(again)
	if string(again) != string(partial) {
		t.Fatal("a complete checksum was changed")
	}
	none := udpPacket(payload, 0)
	completeUDPChecksum(none)
	if binary.BigEndian.Uint16(none[26:28]) != 0 {
		t.Fatal("a datagram without checksum got one")
	}
	// Fragments, truncated and non-UDP packets are not touched.
	frag := udpPacket(payload, 0x1234)
	frag[6] = 0x20 // more fragments
	completeUDPChecksum(frag)
	if binary.BigEndian.Uint16(frag[26:28]) != 0x1234 {
		t.Fatal("a fragment was rewritten")
	}
	for _, p := range [][]byte{nil, partial[:10], partial[:24]} {
		completeUDPChecksum(p) // must not panic
	}
}
