package mroute

import (
	"fmt"
	"net/netip"
)

// UpcallType is the kind of message the kernel sends to the multicast router.
type UpcallType uint8

func (t UpcallType) String() string {
	switch t {
	case NoCache:
		return "nocache"
	case WrongVIF:
		return "wrongvif"
	case WholePkt:
		return "wholepkt"
	case WrongVIFWhole:
		return "wrvifwhole"
	}
	return fmt.Sprintf("upcall(%d)", uint8(t))
}

// Upcall is a message from the kernel's forwarding path: a packet with no MFC
// entry (NoCache), one that arrived on the wrong VIF (WrongVIF, needs
// SetAssert), or a whole packet for PIM register encapsulation (WholePkt,
// WrongVIFWhole).
type Upcall struct {
	Type   UpcallType
	VIF    uint16 // VIF the packet arrived on; the register VIF for WholePkt
	Source netip.Addr
	Group  netip.Addr
	Packet []byte // the data packet, for WholePkt and WrongVIFWhole only
}

// struct igmpmsg is laid over an IP header so it can share the raw IGMP socket:
// the TTL byte carries the type and the protocol byte is always zero.
const (
	sizeofIgmpmsg   = 20
	igmpmsgType     = 8
	igmpmsgMbz      = 9
	igmpmsgVIF      = 10
	igmpmsgVIFHigh  = 11
	igmpmsgSource   = 12
	igmpmsgGroup    = 16
	minIPv4Header   = 20
	ipv4VersionMask = 0xf0
)

// ParseUpcall decodes an upcall as read from the multicast routing socket.
func ParseUpcall(b []byte) (Upcall, error) {
	if len(b) < sizeofIgmpmsg {
		return Upcall{}, fmt.Errorf("upcall: %d bytes, shorter than the %d-byte igmpmsg", len(b), sizeofIgmpmsg)
	}
	if b[igmpmsgMbz] != 0 {
		return Upcall{}, fmt.Errorf("upcall: protocol byte is %d, not 0: an IP packet, not an upcall", b[igmpmsgMbz])
	}
	u := Upcall{
		Type:   UpcallType(b[igmpmsgType]),
		VIF:    uint16(b[igmpmsgVIF]) | uint16(b[igmpmsgVIFHigh])<<8,
		Source: netip.AddrFrom4([4]byte(b[igmpmsgSource : igmpmsgSource+4])),
		Group:  netip.AddrFrom4([4]byte(b[igmpmsgGroup : igmpmsgGroup+4])),
	}
	if u.Type < NoCache || u.Type > WrongVIFWhole {
		return Upcall{}, fmt.Errorf("upcall: unknown type %d", uint8(u.Type))
	}
	if u.VIF >= MaxVIFs {
		return Upcall{}, fmt.Errorf("upcall %s: vif %d out of range (MAXVIFS is %d)", u.Type, u.VIF, MaxVIFs)
	}
	if u.Source.IsUnspecified() || u.Source.IsMulticast() || u.Source == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return Upcall{}, fmt.Errorf("upcall %s: source %s is not a unicast address", u.Type, u.Source)
	}
	if !u.Group.IsMulticast() {
		return Upcall{}, fmt.Errorf("upcall %s: group %s is not a multicast address", u.Type, u.Group)
	}
	if u.Type == WholePkt || u.Type == WrongVIFWhole {
		inner := b[sizeofIgmpmsg:]
		if len(inner) < minIPv4Header || inner[0]&ipv4VersionMask != 0x40 {
			return Upcall{}, fmt.Errorf("upcall %s: %d bytes after the igmpmsg are not an IPv4 packet", u.Type, len(inner))
		}
		// Copy so the caller may reuse its read buffer while the packet is queued
		// for encapsulation.
		u.Packet = append([]byte(nil), inner...)
	}
	return u, nil
}
