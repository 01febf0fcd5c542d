package router

import (
	"errors"
	"net/netip"
	"time"

	"github.com/mrouterd/mrouterd/igmp"
)

// igmpConfig is the querier configuration the router's config asks for.
func (r *Router) igmpConfig() igmp.Config {
	c := r.cfg.IGMP
	return igmp.Config{
		Version:                 c.Version,
		Robustness:              c.Robustness,
		QueryInterval:           c.QueryInterval,
		QueryResponseInterval:   c.QueryResponseInterval,
		LastMemberQueryInterval: c.LastMemberQueryInterval,
		AllowedGroups:           c.AllowedGroups,
		MaxGroups:               c.MaxGroups,
		MaxSources:              c.MaxSources,
		MaxSourcesPerInterface:  c.MaxSourcesPerInterface,
	}
}

// connected reports whether addr is on one of the interface's subnets.
func (i *iface) connected(addr netip.Addr) bool {
	for _, p := range i.addresses {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// onLink reports whether addr is on the interface's link: on one of its subnets,
// or, for an interface without an address of its own (a routed pod veth), routed
// straight out of it, with no gateway.
func (r *Router) onLink(ifc *iface, addr netip.Addr) bool {
	if ifc.connected(addr) {
		return true
	}
	if len(ifc.addresses) > 0 {
		return false
	}
	// Asked anew each time, not through the reverse-path cache: any source address
	// a host puts in a report would otherwise stay in the cache.
	rt, err := r.fib.Route(addr)
	return err == nil && rt.ifindex == ifc.index && !rt.gateway.IsValid() && !rt.local
}

// own reports whether addr is one of the interface's addresses: our own packets
// looped back.
func (i *iface) own(addr netip.Addr) bool {
	for _, p := range i.addresses {
		if p.Addr() == addr {
			return true
		}
	}
	return false
}

// primary is the address the interface's querier speaks from: the lowest, which is
// also what the querier election compares.
func (i *iface) primary() netip.Addr {
	if len(i.addresses) == 0 {
		return netip.Addr{}
	}
	return i.addresses[0].Addr()
}

// updateQuerier starts, stops or readdresses the interface's IGMP querier to match
// its VIF, its addresses and the config.
func (r *Router) updateQuerier(ifc *iface, now time.Time) {
	settings, enabled := r.settingsFor(ifc)
	want := r.eligible(ifc) && enabled && settings.IGMP && r.igmp != nil
	var self netip.Addr
	if want {
		self = r.querierAddress(ifc)
	}
	switch {
	case want && ifc.querier == nil:
		ifc.querierSelf = self
		ifc.querier = igmp.NewQuerier(r.igmpConfig(), ifc.querierSelf)
		r.memberIfaces = nil
		r.log.Info("IGMP querier started", "interface", ifc.name, "address", ifc.querierSelf)
		r.igmpActions(ifc, ifc.querier.Start(now))
	case !want && ifc.querier != nil:
		q := ifc.querier
		ifc.querier = nil // membership of this interface no longer counts
		r.memberIfaces = nil
		r.igmpActions(ifc, q.Stop())
		r.log.Info("IGMP querier stopped", "interface", ifc.name)
	case want && ifc.querierSelf != self:
		ifc.querierSelf = self
		r.igmpActions(ifc, ifc.querier.SetAddress(ifc.querierSelf, now))
	}
}

// querierAddress is the address the interface's querier speaks from: its own, or
// on an interface without one (a routed pod veth, which reaches the node by proxy
// ARP), the node's address the kernel would send from there.
func (r *Router) querierAddress(ifc *iface) netip.Addr {
	if a := ifc.primary(); a.IsValid() {
		return a
	}
	a, err := r.fib.Source(ifc.index)
	if err != nil {
		return netip.Addr{}
	}
	return a
}

// handleIGMP passes a received IGMP packet to the querier of its interface.
func (r *Router) handleIGMP(pkt []byte, ifindex int, now time.Time) {
	ifc := r.byIndex(ifindex)
	if ifc == nil || ifc.querier == nil {
		r.counters.inc("igmp_ignored_interface")
		return
	}
	src, dst, msg, err := igmp.DecodeIPv4(pkt)
	if err != nil {
		r.counters.inc("igmp_malformed")
		var de *igmp.DecodeError
		if errors.As(err, &de) {
			r.counters.inc("igmp_malformed_" + de.Reason)
		}
		r.log.Debug("malformed IGMP", "interface", ifc.name, "err", err)
		return
	}
	if ifc.own(src) {
		return
	}
	if err := igmp.CheckAddresses(src, dst, msg, func(a netip.Addr) bool { return r.onLink(ifc, a) }); err != nil {
		r.counters.inc("igmp_refused")
		var de *igmp.DecodeError
		if errors.As(err, &de) {
			r.counters.inc("igmp_refused_" + de.Reason)
		}
		r.log.Debug("IGMP refused", "interface", ifc.name, "from", src, "to", dst, "err", err)
		return
	}
	r.counters.inc("igmp_received")
	r.igmpActions(ifc, ifc.querier.Receive(now, src, msg))
}

// igmpActions carries out what a querier asked for.
func (r *Router) igmpActions(ifc *iface, actions []igmp.Action) {
	for _, a := range actions {
		switch a := a.(type) {
		case igmp.SendQuery:
			if err := r.igmp.sendQuery(ifc.index, ifc.querierSelf, a.Dst, &a.Query); err != nil {
				r.counters.inc("igmp_send_errors")
				r.log.Warn("send IGMP query", "interface", ifc.name, "err", err)
				continue
			}
			r.counters.inc("igmp_queries_sent")
		case igmp.GroupChanged:
			r.sendAll(r.rib.SyncLocal(r.now(), ifc.name, a.Group))
			r.fab.announceStale = true
		case igmp.QuerierChanged:
			r.log.Info("IGMP querier", "interface", ifc.name, "querier", a.Querier, "self", a.IsSelf)
		}
	}
}
