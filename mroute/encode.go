package mroute

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Sizes of the kernel structures, from <linux/mroute.h> on a 64-bit kernel.
const (
	sizeofVifctl     = 16
	sizeofMfcctl     = 60
	sizeofSiocSGReq  = 32
	sizeofSiocVIFReq = 40
)

// Byte offsets inside struct vifctl.
const (
	vifctlVifi      = 0  // vifi_t (u16)
	vifctlFlags     = 2  // u8
	vifctlThreshold = 3  // u8
	vifctlRateLimit = 4  // unsigned int, unused by the kernel
	vifctlLocal     = 8  // in_addr or int ifindex (VIFF_USE_IFINDEX)
	vifctlRemote    = 12 // in_addr, tunnels only
)

// Byte offsets inside struct mfcctl. The 32 TTLs end at 42, so the compiler
// pads two bytes before the first int.
const (
	mfcctlOrigin  = 0
	mfcctlGroup   = 4
	mfcctlParent  = 8  // vifi_t (u16)
	mfcctlTTLs    = 10 // unsigned char[MAXVIFS]
	mfcctlPktCnt  = 44 // the four ints are output-only and left zero
	mfcctlByteCnt = 48
	mfcctlWrongIf = 52
	mfcctlExpire  = 56
)

// Byte offsets inside struct sioc_sg_req.
const (
	sgReqSource  = 0
	sgReqGroup   = 4
	sgReqPackets = 8 // unsigned long
	sgReqBytes   = 16
	sgReqWrongIf = 24
)

// Byte offsets inside struct sioc_vif_req: vifi is followed by 6 bytes of
// padding so the unsigned longs are 8-byte aligned.
const (
	vifReqVifi       = 0
	vifReqPacketsIn  = 8
	vifReqPacketsOut = 16
	vifReqBytesIn    = 24
	vifReqBytesOut   = 32
)

// VIF describes a virtual interface to install with Socket.AddVIF.
type VIF struct {
	Index     uint16 // slot, below MaxVIFs
	IfIndex   int    // the interface; ignored for the register VIF
	Register  bool   // the PIM register VIF, which makes the kernel create pimreg
	Threshold uint8  // minimum TTL to forward out of this VIF; 0 means 1
}

// MFC is a multicast forwarding cache entry to install with Socket.AddMFC.
type MFC struct {
	Source netip.Addr // unspecified (0.0.0.0) for a (*,G) entry
	Group  netip.Addr
	IIF    uint16   // incoming VIF
	OIFs   []uint16 // outgoing VIFs
}

// SGCount holds the kernel's counters for one (S,G) entry.
type SGCount struct {
	Packets, Bytes, WrongIf uint64
}

// VIFCount holds the kernel's counters for one VIF.
type VIFCount struct {
	PacketsIn, PacketsOut, BytesIn, BytesOut uint64
}

func encodeVIF(v VIF) ([sizeofVifctl]byte, error) {
	var b [sizeofVifctl]byte
	if v.Index >= MaxVIFs {
		return b, fmt.Errorf("vif %d: index out of range (MAXVIFS is %d)", v.Index, MaxVIFs)
	}
	threshold := v.Threshold
	if threshold == 0 {
		threshold = 1
	}
	binary.NativeEndian.PutUint16(b[vifctlVifi:], v.Index)
	b[vifctlThreshold] = threshold
	if v.Register {
		b[vifctlFlags] = viffRegister
		return b, nil
	}
	if v.IfIndex <= 0 || v.IfIndex > 1<<31-1 {
		return b, fmt.Errorf("vif %d: invalid ifindex %d", v.Index, v.IfIndex)
	}
	b[vifctlFlags] = viffUseIfindex
	binary.NativeEndian.PutUint32(b[vifctlLocal:], uint32(v.IfIndex))
	return b, nil
}

// encodeVIFIndex builds the vifctl that MRT_DEL_VIF wants: only the index matters.
func encodeVIFIndex(vif uint16) ([sizeofVifctl]byte, error) {
	var b [sizeofVifctl]byte
	if vif >= MaxVIFs {
		return b, fmt.Errorf("vif %d: index out of range (MAXVIFS is %d)", vif, MaxVIFs)
	}
	binary.NativeEndian.PutUint16(b[vifctlVifi:], vif)
	return b, nil
}

func encodeMFC(e *MFC) ([sizeofMfcctl]byte, error) {
	var b [sizeofMfcctl]byte
	if err := putSourceGroup(b[mfcctlOrigin:], b[mfcctlGroup:], e.Source, e.Group); err != nil {
		return b, fmt.Errorf("MFC: %w", err)
	}
	if e.IIF >= MaxVIFs {
		return b, fmt.Errorf("MFC (%s,%s): iif vif %d out of range (MAXVIFS is %d)", e.Source, e.Group, e.IIF, MaxVIFs)
	}
	binary.NativeEndian.PutUint16(b[mfcctlParent:], e.IIF)
	for _, oif := range e.OIFs {
		if oif >= MaxVIFs {
			return b, fmt.Errorf("MFC (%s,%s): oif vif %d out of range (MAXVIFS is %d)", e.Source, e.Group, oif, MaxVIFs)
		}
		// A threshold of 1 forwards every packet that survives the TTL decrement;
		// slots left at 0 do not forward.
		b[mfcctlTTLs+int(oif)] = 1
	}
	return b, nil
}

// encodeSourceGroup builds the mfcctl that MRT_DEL_MFC wants: only the
// addresses matter.
func encodeSourceGroup(source, group netip.Addr) ([sizeofMfcctl]byte, error) {
	var b [sizeofMfcctl]byte
	err := putSourceGroup(b[mfcctlOrigin:], b[mfcctlGroup:], source, group)
	return b, err
}

func encodeSGReq(source, group netip.Addr) ([sizeofSiocSGReq]byte, error) {
	var b [sizeofSiocSGReq]byte
	err := putSourceGroup(b[sgReqSource:], b[sgReqGroup:], source, group)
	return b, err
}

func decodeSGReq(b *[sizeofSiocSGReq]byte) SGCount {
	return SGCount{
		Packets: binary.NativeEndian.Uint64(b[sgReqPackets:]),
		Bytes:   binary.NativeEndian.Uint64(b[sgReqBytes:]),
		WrongIf: binary.NativeEndian.Uint64(b[sgReqWrongIf:]),
	}
}

func encodeVIFReq(vif uint16) ([sizeofSiocVIFReq]byte, error) {
	var b [sizeofSiocVIFReq]byte
	if vif >= MaxVIFs {
		return b, fmt.Errorf("vif %d: index out of range (MAXVIFS is %d)", vif, MaxVIFs)
	}
	binary.NativeEndian.PutUint16(b[vifReqVifi:], vif)
	return b, nil
}

func decodeVIFReq(b *[sizeofSiocVIFReq]byte) VIFCount {
	return VIFCount{
		PacketsIn:  binary.NativeEndian.Uint64(b[vifReqPacketsIn:]),
		PacketsOut: binary.NativeEndian.Uint64(b[vifReqPacketsOut:]),
		BytesIn:    binary.NativeEndian.Uint64(b[vifReqBytesIn:]),
		BytesOut:   binary.NativeEndian.Uint64(b[vifReqBytesOut:]),
	}
}

// putSourceGroup writes the two addresses in network byte order after checking
// they are what the kernel accepts: an IPv4 source that is unspecified or
// unicast, and an IPv4 multicast group.
func putSourceGroup(src, grp []byte, source, group netip.Addr) error {
	source, group = source.Unmap(), group.Unmap()
	if !source.Is4() {
		return fmt.Errorf("source %s: not an IPv4 address", addrString(source))
	}
	if source.IsMulticast() {
		return fmt.Errorf("source %s: a multicast address cannot be a source", source)
	}
	if !group.Is4() || !group.IsMulticast() {
		return fmt.Errorf("group %s: not an IPv4 multicast address", addrString(group))
	}
	s, g := source.As4(), group.As4()
	copy(src, s[:])
	copy(grp, g[:])
	return nil
}

// addrString names an address in an error, including the zero Addr.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "(none)"
	}
	return a.String()
}
