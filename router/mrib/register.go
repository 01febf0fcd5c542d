package mrib

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"time"

	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/pim"
)

// This file is the PIM-SM source side: the RP's handling of registers from a
// first-hop DR, and the switch of a source's traffic from the shared tree (or the
// register tunnel) to its own tree.

// sptSwitchWait bounds how long an RP waits for the register that lets it switch
// a source to its own tree without a loss.
const sptSwitchWait = 20 * time.Millisecond

// Register is the RP's side of a Register from a first-hop DR (RFC 7761 4.4.2).
// The kernel decapsulates and forwards the data itself; here the RIB decides
// whether to accept it, keeps the source's state alive, and says stop when the
// registers are not, or no longer, needed.
func (r *RIB) Register(now time.Time, from netip.Addr, m *pim.Register) []Send {
	r.env.Count("registers_received")
	key, ok := innerKey(m.Packet)
	if !ok {
		r.env.Count("register_malformed")
		return nil
	}
	stop := func(why string) {
		r.env.Count("register_stop_" + why)
		r.sendRegisterStop(from, key)
	}
	rp, ok := r.env.RP(key.Group)
	if !ok || !r.env.IsOwn(rp) {
		stop("not_rp")
		return r.take()
	}
	if !r.registerAccepted(from) {
		stop("refused")
		r.log.Warn("register refused", "from", from, "route", key.String())
		return r.take()
	}
	if _, known := r.registerers[key]; !known && r.cfg.MaxRegistered > 0 && len(r.registerers) >= r.cfg.MaxRegistered {
		// No Register-Stop: one to every forged sender would only echo the flood.
		r.env.Count("registers_refused")
		return nil
	}
	r.registerers[key] = from
	rt := r.routes[key]
	if rt == nil && !m.Null && r.cfg.RegisterVIF != "" && !r.learnedFull() {
		// The kernel forwards what it decapsulates only once the route exists; with
		// register-accept set, it waits for this check.
		rt = &Route{Key: key, Origin: OriginPIM, Learned: true, Created: now}
		r.addRoute(rt)
		r.dirtyGroups[key.Group] = true
	}
	if rt != nil {
		rt.LastActive = now // registers keep the source alive at the RP
	}
	switch {
	case r.tree.SPTBit(key):
		stop("spt")
	case r.sptPending[key] != (time.Time{}):
		// Native traffic has started to arrive: this register brings everything
		// up to it, so the switch loses nothing that the tunnel carried.
		r.updateSPTbit(now, key, true, false)
	case len(r.oifs(key, r.cfg.RegisterVIF)) == 0:
		// Nobody downstream, or another router forwards the source onto every link
		// that wants it (it won the assert): the registers carry nothing useful.
		stop("no_receivers")
	}
	return r.take()
}

func (r *RIB) sendRegisterStop(to netip.Addr, key Key) {
	r.send("", to, &pim.RegisterStop{Group: netip.PrefixFrom(key.Group, 32), Source: key.Source}, "register_stops_sent")
}

// registerAcceptedFor reports whether a source may be forwarded from the register
// tunnel: once an accepted DR registered it.
func (r *RIB) registerAcceptedFor(key Key) bool {
	_, ok := r.registerers[key]
	return ok
}

// registerAccepted applies pim.register-accept: registers only from those ranges.
// When it is empty, only from a first-hop router inside the PIM domain, one the
// way back to runs over an interface where PIM runs (RFC 7761 6.1.2): a Register
// is unicast and may come from anywhere, but only a router in the domain has a
// source to register.
func (r *RIB) registerAccepted(from netip.Addr) bool {
	accept := r.cfg.RegisterAccept
	if len(accept) == 0 {
		back := r.env.RPF(from).Interface
		pimOn, _ := r.env.DR(back)
		return back != "" && pimOn
	}
	return slices.ContainsFunc(accept, func(p netip.Prefix) bool { return p.Contains(from) })
}

// WrongVIF acts on traffic that arrived by an interface other than the route's
// incoming one. From the reverse path to the source it means the source's tree
// now delivers: traffic switches over to it, and an RP tells the first-hop DR to
// stop registering. On one of the route's outgoing interfaces it means another
// router forwards there too: an assert.
func (r *RIB) WrongVIF(now time.Time, key Key, in string) []Send {
	rt := r.routes[key]
	if in == "" || rt == nil || rt.Origin == OriginStatic {
		r.env.Count("wrongvif_ignored")
		return nil
	}
	if in == r.env.RPF(key.Source).Interface && !r.tree.SPTBit(key) {
		if r.cfg.RegisterVIF != "" && rt.IIF == r.cfg.RegisterVIF {
			// The first native packet overtook the registers still in flight. Switch
			// when the next register shows the tunnel has delivered up to here (or
			// soon regardless), not now: now would drop those registers.
			if r.sptPending[key].IsZero() {
				r.sptPending[key] = now.Add(sptSwitchWait)
			}
			return nil
		}
		r.updateSPTbit(now, key, true, false)
		return r.take()
	}
	for _, o := range rt.OIFs {
		if o == in {
			r.assertTrigger(now, key, in)
			return r.take()
		}
	}
	r.env.Count("wrongvif_ignored")
	return nil
}

// ArrivingNatively says a source's packets arrive on in, as an MFC entry adopted
// in a restart shows. Unlike a WRONGVIF upcall there is no register in flight to
// wait for: they have been arriving that way all along, so a route on the
// reverse path switches to the source's tree at once.
func (r *RIB) ArrivingNatively(now time.Time, key Key, in string) []Send {
	if r.routes[key] == nil || in != r.env.RPF(key.Source).Interface || r.tree.SPTBit(key) {
		return nil
	}
	r.updateSPTbit(now, key, true, false)
	return r.take()
}

// Advance switches the sources whose wait for a register ran out.
func (r *RIB) Advance(now time.Time) []Send {
	for key, at := range r.sptPending {
		if !at.After(now) {
			r.updateSPTbit(now, key, true, false)
		}
	}
	return r.take()
}

// NextDeadline is when Advance must next be called, or the Tree's Advance.
func (r *RIB) NextDeadline() (time.Time, bool) {
	next, found := r.tree.NextDeadline()
	for _, at := range r.sptPending {
		if !found || at.Before(next) {
			next, found = at, true
		}
	}
	return next, found
}

// nullRegister is the header-only packet a Null-Register carries: an IPv4 header
// from the source to the group.
func nullRegister(key Key) *pim.Register {
	h := make([]byte, 20)
	h[0], h[8], h[9] = 0x45, 1, 103
	binary.BigEndian.PutUint16(h[2:4], 20)
	s, g := key.Source.As4(), key.Group.As4()
	copy(h[12:16], s[:])
	copy(h[16:20], g[:])
	binary.BigEndian.PutUint16(h[10:12], igmp.Checksum(h))
	return &pim.Register{Null: true, Packet: h}
}

// innerKey reads the (S,G) of a registered packet.
func innerKey(pkt []byte) (Key, bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return Key{}, false
	}
	s := netip.AddrFrom4([4]byte(pkt[12:16]))
	g := netip.AddrFrom4([4]byte(pkt[16:20]))
	return Key{Source: s, Group: g}, g.IsMulticast()
}
