package router

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// The packet tap is how the router hears what no socket of its own would deliver:
//   - IGMP and PIM's link-local messages, on every interface, without a group join
//     per interface (a socket may join only net.ipv4.igmp_max_memberships groups,
//     20 by default, and a node can have hundreds of pod interfaces);
//   - multicast data on interfaces without a VIF, where the kernel raises no
//     upcall: a source there needs a VIF;
//   - multicast data sent with a TTL too low to be forwarded, which the kernel
//     drops without a word: the router tells the user instead.
// A kernel filter passes only these, so the tap costs nothing on other traffic.

// packetTap is the kernel's packet tap; tests use a fake.
type packetTap interface {
	Read(buf []byte) (tapped, error)
	// Exclude stops data packets on these interfaces (those with a VIF) from being
	// passed; low-TTL packets and control messages are passed everywhere.
	Exclude(ifindexes []int) error
	Close() error
}

// tapped is a packet the tap passed: its IP packet, possibly cut short, and where
// it was seen.
type tapped struct {
	data     []byte
	ifindex  int
	outgoing bool // sent by this host, not received
}

// vifThreshold is the TTL threshold of every VIF: the kernel forwards a packet only
// if its TTL is above it.
const vifThreshold = 1

// sighting is a multicast data packet the tap saw: where, from whom, to what group,
// and with what TTL.
type sighting struct {
	ifindex  int
	source   netip.Addr
	group    netip.Addr
	ttl      uint8
	outgoing bool
}

// tapKind says what a tapped packet is for.
type tapKind int

const (
	tapIgnored tapKind = iota
	tapIGMP
	tapPIM
	tapData
)

// linkLocalGroups are never routed (RFC 5771): only control messages go there.
var linkLocalGroups = netip.MustParsePrefix("224.0.0.0/24")

// classifyTapped tells what a tapped packet is. Fragments are ignored: a control
// message is read whole, and a data packet's first fragment says all there is.
func classifyTapped(p tapped) (tapKind, sighting) {
	b := p.data
	if len(b) < 20 || b[0]>>4 != 4 {
		return tapIgnored, sighting{}
	}
	src := netip.AddrFrom4([4]byte(b[12:16]))
	dst := netip.AddrFrom4([4]byte(b[16:20]))
	if !dst.IsMulticast() {
		return tapIgnored, sighting{}
	}
	fragment := binary.BigEndian.Uint16(b[6:8])&0x3fff != 0 // MF or an offset
	switch proto := b[9]; {
	case proto == 2 && !p.outgoing && !fragment:
		return tapIGMP, sighting{}
	case proto == 103 && !p.outgoing && !fragment && linkLocalGroups.Contains(dst):
		return tapPIM, sighting{}
	case linkLocalGroups.Contains(dst):
		return tapIgnored, sighting{}
	}
	return tapData, sighting{ifindex: p.ifindex, source: src, group: dst, ttl: b[8], outgoing: p.outgoing}
}

// pimFromTap is a tapped PIM packet as the PIM handler takes it: the message
// after the IP header, with the header's addresses and TTL.
func pimFromTap(p tapped) (pimPacket, bool) {
	b := p.data
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || total < ihl || total > len(b) {
		return pimPacket{}, false
	}
	return pimPacket{
		data:    append([]byte(nil), b[ihl:total]...),
		src:     netip.AddrFrom4([4]byte(b[12:16])),
		dst:     netip.AddrFrom4([4]byte(b[16:20])),
		ttl:     int(b[8]),
		ifindex: p.ifindex,
	}, true
}

// sightingThrottle passes a stream's sightings to the loop at most once per
// interval: a source sending thousands of packets a second is one event a second.
type sightingThrottle struct {
	interval time.Duration
	last     map[sighting]time.Time
}

// maxThrottled bounds the throttle's memory; when full it starts afresh, which
// costs only a few extra events.
const maxThrottled = 4096

func newSightingThrottle(interval time.Duration) *sightingThrottle {
	return &sightingThrottle{interval: interval, last: make(map[sighting]time.Time)}
}

func (t *sightingThrottle) allow(s sighting, now time.Time) bool {
	if last, ok := t.last[s]; ok && now.Sub(last) < t.interval {
		return false
	}
	if len(t.last) >= maxThrottled {
		clear(t.last)
	}
	t.last[s] = now
	return true
}

// readTap reads the tap and hands each packet to the loop: control messages as if
// their own sockets had received them, and data packets as sightings.
func (r *Router) readTap(ctx context.Context) {
	buf := make([]byte, 65536)
	throttle := newSightingThrottle(500 * time.Millisecond)
	pump(ctx, &r.tapReader, func() (tapped, error) { return r.tap.Read(buf) }, func(p tapped) bool {
		kind, s := classifyTapped(p)
		switch kind {
		case tapIGMP:
			return offer(r.in.igmpPackets, igmpPacket{data: append([]byte(nil), p.data...), ifindex: p.ifindex})
		case tapPIM:
			if pkt, ok := pimFromTap(p); ok {
				return offer(r.in.pimPackets, pkt)
			}
		case tapData:
			if throttle.allow(s, r.now()) {
				return offer(r.in.sightings, s)
			}
		}
		return true
	})
}

// handleSighting follows a data packet the tap saw: a source on an interface
// without a VIF gets one, and a packet the kernel will not forward for its TTL is
// reported.
func (r *Router) handleSighting(s sighting, now time.Time) {
	ifc := r.byIndex(s.ifindex)
	if ifc == nil {
		return
	}
	if s.ttl <= vifThreshold {
		r.noteUnroutable(ifc, s, now)
		return
	}
	if ifc.hasVIF() || !r.eligible(ifc) {
		return // the kernel reports it now, or it is not to be routed
	}
	if !now.Before(ifc.sourceUntil) {
		r.counters.inc("sources_without_vif")
		r.log.Debug("source on an interface without a VIF", "interface", ifc.name, "source", s.source, "group", s.group)
	}
	ifc.sourceUntil = now.Add(sourceHold)
}

// unroutable is a source whose packets the kernel drops for their TTL.
type unroutable struct {
	iface       string
	ttl         uint8
	first, seen time.Time
}

// maxUnroutable bounds the sources reported; unroutableHold is how long one stays
// reported after its last packet, which the tap passes about twice a second.
const (
	maxUnroutable  = 256
	unroutableHold = 10 * time.Second
)

// noteUnroutable records a source sending with a TTL the kernel will not forward.
// Only a source on this node or on the interface's link counts: a packet that
// arrives with TTL 1 after crossing routers has merely reached its scope.
func (r *Router) noteUnroutable(ifc *iface, s sighting, now time.Time) {
	if !r.eligible(ifc) || !r.sendsFromHere(ifc, s.source) {
		return
	}
	key := sgKey{Source: s.source, Group: s.group}
	if u, ok := r.unroutable[key]; ok && now.Sub(u.seen) < unroutableHold {
		u.seen, u.ttl, u.iface = now, s.ttl, ifc.name
		return
	}
	if len(r.unroutable) >= maxUnroutable {
		r.expireUnroutable(now)
	}
	if len(r.unroutable) >= maxUnroutable {
		r.counters.inc("unroutable_sources_refused")
		return
	}
	r.unroutable[key] = &unroutable{iface: ifc.name, ttl: s.ttl, first: now, seen: now}
	r.counters.inc("unroutable_sources")
	r.log.Warn("source sends with a TTL no router forwards: raise IP_MULTICAST_TTL on the sender (to 16, say)",
		"source", s.source, "group", s.group, "ttl", s.ttl, "interface", ifc.name)
}

// sendsFromHere reports whether a source is this host or directly on the interface.
func (r *Router) sendsFromHere(ifc *iface, source netip.Addr) bool {
	return r.isOwn(source) || r.onLink(ifc, source)
}

// expireUnroutable forgets the sources that stopped sending, or fixed their TTL.
// It runs when the table is read or full: nothing needs it sooner.
func (r *Router) expireUnroutable(now time.Time) {
	for key, u := range r.unroutable {
		if now.Sub(u.seen) >= unroutableHold {
			delete(r.unroutable, key)
		}
	}
}

// unroutableWarning is what show status and show routes say of such a source.
func unroutableWarning(key sgKey, u *unroutable) string {
	return fmt.Sprintf("%s -> %s on %s: sent with TTL %d, which no router forwards; raise IP_MULTICAST_TTL on the sender",
		key.Source, key.Group, u.iface, u.ttl)
}

// unroutableKeys lists the reported sources in order.
func (r *Router) unroutableKeys(now time.Time) []sgKey {
	r.expireUnroutable(now)
	keys := make([]sgKey, 0, len(r.unroutable))
	for key := range r.unroutable {
		keys = append(keys, key)
	}
	slices.SortFunc(keys, sgKey.Compare)
	return keys
}

// tapExclusions are the interfaces whose data packets the tap need not pass: the
// kernel raises upcalls for those with a VIF, and one waiting for a VIF has
// already been seen. Classic BPF jumps are 8 bits, which bounds the list.
func (r *Router) tapExclusions() []int {
	var out []int
	for _, ifc := range r.ifaces {
		if ifc.hasVIF() || ifc.vifRefused {
			out = append(out, ifc.index)
		}
	}
	slices.Sort(out)
	if len(out) > maxTapExclusions {
		out = out[:maxTapExclusions]
	}
	return out
}

const maxTapExclusions = 200

// updateTap gives the tap the interfaces to leave out, when they changed.
func (r *Router) updateTap() {
	if r.tap == nil {
		return
	}
	ex := r.tapExclusions()
	if slices.Equal(ex, r.tapExcluded) && r.tapExcluded != nil {
		return
	}
	if err := r.tap.Exclude(ex); err != nil {
		r.counters.inc("tap_errors")
		r.log.Error("packet tap filter", "err", err)
		return
	}
	r.tapExcluded = append([]int{}, ex...)
}
