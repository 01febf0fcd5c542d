package router

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/mrouterd/mrouterd/conf"
	"github.com/mrouterd/mrouterd/pim"
	"github.com/mrouterd/mrouterd/router/mrib"
)

// pimConfig is the PIM configuration of one interface.
func (r *Router) pimConfig(ifc *iface) pim.InterfaceConfig {
	settings, _ := r.settingsFor(ifc)
	return pim.InterfaceConfig{
		HelloInterval:       r.cfg.PIM.HelloInterval,
		DRPriority:          settings.DRPriority,
		MaxHoldtime:         r.cfg.PIM.MaxHoldtime,
		TriggeredHelloDelay: 5 * time.Second, // Triggered_Hello_Delay, RFC 7761 4.11
		Random:              r.draw,
		MaxNeighbors:        r.cfg.PIM.MaxNeighbors,
		SourcePrefixes:      r.advertisedPrefixes(ifc),
		// On the fabric, every node must hear every other's joins: they decide
		// which nodes a group is replicated to.
		TrackingSupport: r.isFabric(ifc),
	}
}

// advertisedPrefixes are the source prefixes our hellos on an interface carry:
// on the fabric, the sources behind this node; elsewhere none.
func (r *Router) advertisedPrefixes(ifc *iface) []netip.Prefix {
	if !r.isFabric(ifc) || !r.fabricOn() {
		return nil
	}
	return r.fab.prefixes
}

// rpSet builds the group-to-RP mapping the config asks for.
func rpSet(cfg *conf.Config) *pim.RPSet {
	var ms []pim.RPMapping
	for _, rp := range cfg.PIM.RPs {
		for _, g := range rp.Groups {
			ms = append(ms, pim.RPMapping{Groups: g, RP: rp.Address, Origin: "static"})
		}
	}
	return pim.NewRPSet(ms, cfg.PIM.SSMRange)
}

// updatePIM starts, stops or restarts PIM on an interface to match its VIF, its
// address and the config.
func (r *Router) updatePIM(ifc *iface, now time.Time) {
	settings, enabled := r.settingsFor(ifc)
	want := r.eligible(ifc) && enabled && settings.PIM && r.pimIO != nil && ifc.primary().IsValid()
	if ifc.pim != nil && (!want || ifc.pimSelf != ifc.primary()) {
		// A new address is a new neighbour to the others: say goodbye from the old one
		// and start again with a new generation ID.
		r.pimActions(ifc, ifc.pim.Stop(now))
		ifc.pim = nil
		r.treeActions(r.rib.Tree().RemoveLink(now, ifc.name))
		r.paths.stale = true
		r.log.Info("PIM stopped", "interface", ifc.name)
	}
	if !want || ifc.pim != nil {
		return
	}
	ifc.pimSelf = ifc.primary()
	ifc.pim = pim.NewInterface(r.pimConfig(ifc), ifc.pimSelf, rand.Uint32())
	r.syncLink(ifc)
	r.log.Info("PIM started", "interface", ifc.name, "address", ifc.pimSelf)
	r.pimActions(ifc, ifc.pim.Start(now))
}

// readPIM reads the PIM socket and hands messages to the loop.
func (r *Router) readPIM(ctx context.Context) {
	buf := make([]byte, 65536)
	pump(ctx, &r.pimReader, func() (pimPacket, error) { return r.pimIO.read(buf) },
		func(p pimPacket) bool { return offer(r.in.pimPackets, p) })
}

// handlePIM passes a received PIM message to its interface.
func (r *Router) handlePIM(pkt pimPacket, now time.Time) {
	ifc := r.byIndex(pkt.ifindex)
	if ifc == nil || ifc.pim == nil {
		r.counters.inc("pim_ignored_interface")
		return
	}
	if ifc.own(pkt.src) {
		return
	}
	msg, err := pim.Decode(pkt.data)
	if err != nil {
		r.counters.inc("pim_malformed")
		var de *pim.DecodeError
		if errors.As(err, &de) {
			r.counters.inc("pim_malformed_" + de.Reason)
		}
		r.log.Debug("malformed PIM", "interface", ifc.name, "from", pkt.src, "err", err)
		return
	}
	if why := r.pimRefusal(ifc, pkt, msg, now); why != "" {
		r.counters.inc("pim_refused")
		r.counters.inc("pim_refused_" + why)
		r.log.Debug("PIM refused", "interface", ifc.name, "from", pkt.src, "to", pkt.dst, "ttl", pkt.ttl,
			"type", fmt.Sprintf("%T", msg), "reason", why)
		return
	}
	switch m := msg.(type) {
	case *pim.Hello:
		r.counters.inc("pim_hellos_received")
		r.pimActions(ifc, ifc.pim.ReceiveHello(now, pkt.src, m))
	case *pim.JoinPrune:
		r.counters.inc("pim_joinprunes_received")
		if r.isFabric(ifc) {
			r.observeFabricJoins(now, pkt.src, m)
		}
		r.treeActions(r.rib.Tree().ReceiveJoinPrune(now, ifc.name, pkt.src, m))
	case *pim.Register:
		r.sendAll(r.rib.Register(now, pkt.src, m))
	case *pim.RegisterStop:
		r.counters.inc("register_stops_received")
		r.treeActions(r.rib.Tree().ReceiveRegisterStop(now, m.Group.Addr(), m.Source))
	case *pim.Assert:
		r.sendAll(r.rib.Assert(now, ifc.name, pkt.src, m))
	default:
		r.counters.inc("pim_not_handled")
	}
}

// pimActions carries out what an interface's PIM state asked for.
func (r *Router) pimActions(ifc *iface, actions []pim.Action) {
	for _, a := range actions {
		switch a := a.(type) {
		case pim.SendHello:
			r.sendPIM(ifc.name, netip.Addr{}, &a.Hello, "pim_hellos_sent")
		case pim.NeighborUp:
			r.counters.inc("pim_neighbors_up")
			r.log.Info("PIM neighbor up", "interface", ifc.name, "neighbor", a.Address)
			r.neighborsChanged(ifc)
			r.electFabricRP()
			// A new neighbour may be the upstream of joins already made: tell it soon.
			r.treeActions(r.rib.Tree().NeighborRestarted(r.now(), ifc.name, a.Address))
		case pim.NeighborDown:
			r.counters.inc("pim_neighbors_down")
			r.log.Info("PIM neighbor down", "interface", ifc.name, "neighbor", a.Address)
			r.neighborsChanged(ifc)
			r.electFabricRP()
			if r.isFabric(ifc) {
				r.forgetFabricPeer(a.Address)
			}
		case pim.NeighborRestarted:
			r.counters.inc("pim_neighbors_restarted")
			r.log.Info("PIM neighbor restarted", "interface", ifc.name, "neighbor", a.Address)
			r.treeActions(r.rib.Tree().NeighborRestarted(r.now(), ifc.name, a.Address))
		case pim.SourcePrefixesChanged:
			r.log.Info("PIM neighbor's sources", "interface", ifc.name, "neighbor", a.Address)
			r.paths.stale = true
		case pim.Refused:
			r.counters["pim_"+a.Reason+"_refused"] += uint64(a.Count)
			r.log.Debug("PIM limit reached", "interface", ifc.name, "refused", a.Reason, "count", a.Count)
		case pim.DRChanged:
			r.log.Info("PIM DR", "interface", ifc.name, "dr", a.DR, "self", a.IsSelf)
			if ifc.pim != nil {
				r.syncAllLocal(ifc)
			}
		}
	}
}

// syncAllLocal re-derives every group's local receivers on an interface, after the
// DR or the querier changed.
func (r *Router) syncAllLocal(ifc *iface) {
	var groups []netip.Addr
	if ifc.querier != nil {
		for _, g := range ifc.querier.Groups() {
			groups = append(groups, g.Group)
		}
	}
	r.sendAll(r.rib.SyncAllLocal(r.now(), ifc.name, groups))
}

// neighborsChanged follows a neighbour coming or going: the prune override interval
// of the link, and reverse paths, which name neighbours, may change.
func (r *Router) neighborsChanged(ifc *iface) {
	if ifc.pim != nil {
		r.syncLink(ifc)
	}
	r.paths.stale = true
}

// unicastSource is the address a unicast PIM message goes from: a Register-Stop
// from the RP address of its group, which the first-hop router checks it against
// (RFC 7761 4.4.2); anything else from the address the kernel picks.
func (r *Router) unicastSource(m mrib.Message) netip.Addr {
	if stop, ok := m.(*pim.RegisterStop); ok {
		if rp, ok := r.rpOf(stop.Group.Addr()); ok && r.isOwn(rp) {
			return rp
		}
	}
	return netip.Addr{}
}

// sendPIM sends a PIM message and counts it under what: to ALL-PIM-ROUTERS out of
// the PIM interface named on, or, when on is empty, unicast to dst (Registers,
// Register-Stops).
func (r *Router) sendPIM(on string, dst netip.Addr, m mrib.Message, what string) {
	msg, err := m.Marshal()
	switch {
	case err != nil:
	case on == "":
		err = r.pimIO.sendTo(r.unicastSource(m), dst, msg)
	case r.ifaces[on] == nil || r.ifaces[on].pim == nil:
		err = errors.New("PIM is off there")
	default:
		ifc := r.ifaces[on]
		err = r.pimIO.send(ifc.index, ifc.pimSelf, msg)
	}
	if err != nil {
		r.counters.inc("pim_send_errors")
		r.log.Warn("send PIM", "what", what, "interface", on, "to", dst, "err", err)
		return
	}
	r.counters.inc(what)
}
