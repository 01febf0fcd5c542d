package router

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/pim"
)

// This file is the PIM-SM source side: the register VIF, register encapsulation on
// a first-hop DR, the RP's handling of registers, and the switch of a source's
// traffic from the shared tree (or the register tunnel) to its own tree.

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
	r.reconcileWanted = true
}

// isOwn reports whether addr is one of the router's addresses.
func (r *Router) isOwn(addr netip.Addr) bool {
	for _, ifc := range r.ifaces {
		if ifc.own(addr) {
			return true
		}
	}
	return false
}

// sendRegister encapsulates a packet the kernel handed over from the register VIF
// and sends it to the RP.
func (r *Router) sendRegister(u mroute.Upcall) {
	key := sgKey{Source: u.Source, Group: u.Group}
	// The kernel sends a packet up only while the register VIF is an outgoing
	// interface: one that was on its way when a Register-Stop arrived is sent too.
	rp, ok := r.tree.RegisterRP(key)
	if !ok {
		r.counters.inc("register_not_registering")
		return
	}
	pkt := slices.Clone(u.Packet)
	completeUDPChecksum(pkt)
	r.sendPIM("", rp, &pim.Register{Packet: pkt}, "registers_sent")
}

// sptSwitchWait bounds how long an RP waits for the register that lets it switch
// a source to its own tree without a loss.
const sptSwitchWait = 20 * time.Millisecond

// switchToSPT accepts a source's traffic along its own tree from now on; an RP
// tells the registering DR to stop.
func (r *Router) switchToSPT(key sgKey, now time.Time) {
	delete(r.sptPending, key)
	r.counters.inc("spt_switches")
	r.log.Info("traffic on the source's tree", "route", key.String(), "iif", r.rpf(key.Source).Interface)
	r.treeActions(r.tree.SetSPTBit(now, key, true))
	if dr, ok := r.registerers[key]; ok {
		r.sendPIM("", dr, &pim.RegisterStop{Group: netip.PrefixFrom(key.Group, 32), Source: key.Source}, "register_stops_sent")
		r.counters.inc("register_stop_spt")
	}
}

// expireSPTPending switches the sources whose wait for a register ran out.
func (r *Router) expireSPTPending(now time.Time) {
	for key, at := range r.sptPending {
		if !at.After(now) {
			r.switchToSPT(key, now)
		}
	}
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

// nullRegister is the header-only packet a Null-Register carries: an IPv4 header
// from the source to the group.
func nullRegister(key sgKey) *pim.Register {
	h := make([]byte, 20)
	h[0], h[8], h[9] = 0x45, 1, 103
	binary.BigEndian.PutUint16(h[2:4], 20)
	s, g := key.Source.As4(), key.Group.As4()
	copy(h[12:16], s[:])
	copy(h[16:20], g[:])
	binary.BigEndian.PutUint16(h[10:12], igmp.Checksum(h))
	return &pim.Register{Null: true, Packet: h}
}

// handleRegister is the RP's side of a Register from a first-hop DR (RFC 7761
// 4.4.2). The kernel decapsulates and forwards the data itself; here the router
// decides whether to accept it, keeps the source's state alive, and says stop when
// the registers are not, or no longer, needed.
func (r *Router) handleRegister(now time.Time, from netip.Addr, m *pim.Register) {
	r.counters.inc("registers_received")
	key, ok := innerKey(m.Packet)
	if !ok {
		r.counters.inc("register_malformed")
		return
	}
	stop := func(why string) {
		r.counters.inc("register_stop_" + why)
		r.sendPIM("", from, &pim.RegisterStop{Group: netip.PrefixFrom(key.Group, 32), Source: key.Source}, "register_stops_sent")
	}
	rp, ok := r.rpOf(key.Group)
	if !ok || !r.isOwn(rp) {
		stop("not_rp")
		return
	}
	if !r.registerAccepted(from) {
		stop("refused")
		r.log.Warn("register refused", "from", from, "route", key.String())
		return
	}
	r.registerers[key] = from
	rt := r.routes[key]
	if rt == nil && !m.Null && r.regVIF >= 0 {
		// The kernel forwards what it decapsulates only once the route exists; with
		// register-accept set, it waits for this check.
		rt = &route{key: key, origin: originPIM, learned: true, created: now}
		r.addRoute(rt)
		r.dirtyGroups[key.Group] = true
	}
	if rt != nil {
		rt.lastActive = now // registers keep the source alive at the RP
	}
	switch {
	case r.tree.SPTBit(key):
		stop("spt")
	case r.sptPending[key] != (time.Time{}):
		// Native traffic has started to arrive: this register brings everything
		// up to it, so the switch loses nothing that the tunnel carried.
		r.switchToSPT(key, now)
	case len(r.routeOIFs(key, r.registerName())) == 0:
		// Nobody downstream, or another router forwards the source onto every link
		// that wants it (it won the assert): the registers carry nothing useful.
		stop("no_receivers")
	}
}

// registerAcceptedFor reports whether a source may be forwarded from the register
// tunnel: always when every DR is accepted, else once an accepted DR registered it.
func (r *Router) registerAcceptedFor(key sgKey) bool {
	_, ok := r.registerers[key]
	return ok || len(r.cfg.PIM.RegisterAccept) == 0
}

// registerAccepted applies pim.register-accept: registers only from those ranges,
// or from anyone when it is empty.
func (r *Router) registerAccepted(from netip.Addr) bool {
	if len(r.cfg.PIM.RegisterAccept) == 0 {
		return true
	}
	for _, p := range r.cfg.PIM.RegisterAccept {
		if p.Contains(from) {
			return true
		}
	}
	return false
}

// innerKey reads the (S,G) of a registered packet.
func innerKey(pkt []byte) (sgKey, bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return sgKey{}, false
	}
	s := netip.AddrFrom4([4]byte(pkt[12:16]))
	g := netip.AddrFrom4([4]byte(pkt[16:20]))
	return sgKey{Source: s, Group: g}, g.IsMulticast()
}

// handleWrongVIF acts on traffic that arrived by an interface other than the
// route's incoming one. From the reverse path to the source it means the source's
// tree now delivers: traffic switches over to it, and an RP tells the first-hop DR
// to stop registering.
func (r *Router) handleWrongVIF(u mroute.Upcall, now time.Time) {
	key := sgKey{Source: u.Source, Group: u.Group}
	in := r.byVIF(u.VIF)
	rt := r.routes[key]
	if in == nil || rt == nil || rt.origin == originStatic {
		r.counters.inc("wrongvif_ignored")
		return
	}
	if in.name == r.rpf(key.Source).Interface && !r.tree.SPTBit(key) {
		if rt.iif == r.registerName() {
			// The first native packet overtook the registers still in flight. Switch
			// when the next register shows the tunnel has delivered up to here (or
			// soon regardless), not now: now would drop those registers.
			if r.sptPending[key].IsZero() {
				r.sptPending[key] = now.Add(sptSwitchWait)
			}
			return
		}
		r.switchToSPT(key, now)
		return
	}
	if slices.Contains(rt.oifs, in.name) {
		r.handleAssertTrigger(key, in, now)
		return
	}
	r.counters.inc("wrongvif_ignored")
}
