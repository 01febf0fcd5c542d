package router

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/pim"
)

// This file is the router's part of the PIM-SM source side: the register VIF, and
// register encapsulation on a first-hop DR. The RIB decides the rest.

// registerName is the device the kernel makes for the table's register VIF.
func (r *Router) registerName() string {
	if r.cfg.Router.Table == 0 {
		return "pimreg"
	}
	return fmt.Sprintf("pimreg%d", r.cfg.Router.Table)
}

// updateRegisterVIF keeps a register VIF while any RP is configured: a first-hop
// DR sends through it, an RP receives decapsulated registers on it.
func (r *Router) updateRegisterVIF() {
	want := len(r.cfg.PIM.RPs) > 0 && r.pimIO != nil
	switch {
	case want && r.regVIF < 0:
		vif, err := r.vifs.Alloc(r.registerName())
		if err != nil {
			r.counters.inc("vif_exhausted")
			r.log.Error("no VIF for the register tunnel", "err", err)
			return
		}
		if err := r.mrt.AddVIF(mroute.VIF{Index: vif, Register: true, Threshold: 1}); err != nil {
			r.vifs.Free(vif)
			r.counters.inc("vif_errors")
			r.log.Error("add register VIF", "err", err)
			return
		}
		r.regVIF = int(vif)
		r.log.Info("register VIF", "vif", vif, "device", r.registerName())
		// The device appears with the VIF; look it up rather than wait for a
		// notification, so upcalls from it are understood from the first one.
		if l, err := r.links.Link(r.registerName()); err == nil {
			r.linkSeen(l)
		} else {
			r.log.Warn("register device", "err", err)
		}
	case !want && r.regVIF >= 0:
		if err := r.mrt.DelVIF(uint16(r.regVIF)); err != nil {
			r.log.Warn("delete register VIF", "err", err)
		}
		r.vifs.Free(uint16(r.regVIF))
		r.regVIF = -1
	default:
		return
	}
	if ifc := r.ifaces[r.registerName()]; ifc != nil {
		ifc.vif = r.regVIF
	}
	r.rib.SetRegisterVIF(r.ribConfig().RegisterVIF)
	r.reconcileWanted = true
}

// isOwn reports whether addr is one of the router's addresses.
func (r *Router) isOwn(addr netip.Addr) bool { return r.owner(addr) != nil }

// owner is the interface that has addr, nil for none; of several, the first by
// ifindex that is not the fabric, which carries the node's address too.
func (r *Router) owner(addr netip.Addr) *iface {
	var found *iface
	for _, ifc := range r.ifaces {
		if !ifc.own(addr) {
			continue
		}
		if found == nil || r.isFabric(found) && !r.isFabric(ifc) ||
			r.isFabric(found) == r.isFabric(ifc) && ifc.index < found.index {
			found = ifc
		}
	}
	return found
}

// sendRegister encapsulates a packet the kernel handed over from the register VIF
// and sends it to the RP.
func (r *Router) sendRegister(u mroute.Upcall) {
	key := sgKey{Source: u.Source, Group: u.Group}
	// The kernel sends a packet up only while the register VIF is an outgoing
	// interface: one that was on its way when a Register-Stop arrived is sent too.
	rp, ok := r.rib.Tree().RegisterRP(key)
	if !ok {
		r.counters.inc("register_not_registering")
		return
	}
	pkt := slices.Clone(u.Packet)
	completeUDPChecksum(pkt)
	r.sendPIM("", rp, &pim.Register{Packet: pkt}, "registers_sent")
}

// completeUDPChecksum fills in the UDP checksum of an unfragmented IPv4 packet. A
// packet that came over a veth may carry only the pseudo-header sum there, left for
// a NIC that the register tunnel never reaches; a receiver would drop it.
func completeUDPChecksum(pkt []byte) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != 17 {
		return
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if fragment := binary.BigEndian.Uint16(pkt[6:8]) & 0x3fff; fragment != 0 || ihl < 20 || total > len(pkt) || total < ihl+8 {
		return
	}
	udp := pkt[ihl:total]
	if binary.BigEndian.Uint16(udp[6:8]) == 0 {
		return // the sender chose no checksum
	}
	sum := make([]byte, 0, 12+len(udp))
	sum = append(sum, pkt[12:20]...)
	sum = append(sum, 0, 17)
	sum = binary.BigEndian.AppendUint16(sum, uint16(len(udp)))
	sum = append(sum, udp...)
	sum[12+6], sum[12+7] = 0, 0
	c := igmp.Checksum(sum)
	if c == 0 {
		c = 0xffff // zero means "no checksum" in UDP over IPv4
	}
	binary.BigEndian.PutUint16(udp[6:8], c)
}
