package router

import (
	"cmp"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/conf"
	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/pim"
	"github.com/mrouterd/mrouterd/router/netwatch"
)

// iface is one network interface as the kernel reports it, and its VIF if it has one.
type iface struct {
	name      string
	index     int
	flags     net.Flags
	addresses []netip.Prefix
	register  bool // the pimreg device, which only a register VIF may use
	vif       int  // -1 when the interface has no VIF

	querier     *igmp.Querier // nil when IGMP is off here
	querierSelf netip.Addr    // the address the querier was given

	// vifReason is what the interface has to route ("members", "routes", ...), ""
	// for nothing; vifRefused is set while it waits for a VIF none is free for.
	vifReason   string
	vifRefused  bool
	adopted     bool      // its VIF was handed over by a restart, and is held with it
	sourceUntil time.Time // a source was seen sending here: it holds a VIF until then

	// settings and enabled are the config's for the interface, kept while cached
	// is set: matching the [[interface]] globs on every event would cost more
	// than the rest of the event on a node with hundreds of interfaces.
	settings conf.Interface
	enabled  bool
	cached   bool

	pim     *pim.Interface // nil when PIM is off here
	pimSelf netip.Addr     // the address PIM speaks from
}

func (i *iface) hasVIF() bool { return i.vif >= 0 }

// handleNetwork follows a change of the kernel's links, addresses or routes.
func (r *Router) handleNetwork(ev netwatch.Event) {
	switch ev := ev.(type) {
	case netwatch.Resync:
		if !ev.First {
			r.counters.inc("netlink_resyncs")
		}
		r.paths.stale = true
		if err := r.syncInterfaces(); err != nil {
			r.log.Error("interface resync", "err", err)
		}
	case *netwatch.LinkUpdate:
		if ev.Gone {
			r.linkGone(ev.Index)
			return
		}
		known := r.byIndex(ev.Index) != nil
		r.linkSeen(ev.Link)
		if !known {
			r.takeAddresses(ev.Index)
		}
	case *netwatch.AddrUpdate:
		r.addrChanged(ev.Index, ev.Prefix, !ev.Gone)
	case *netwatch.RouteUpdate:
		r.counters.inc("route_changes")
		r.fab.prefixesStale = true
		// Only addresses inside the prefix can have a new best route. Most changes on
		// a busy node (a pod's /32 coming and going) touch none of the sources and
		// RPs that trees are built towards.
		for addr := range r.paths.byAddr {
			if ev.Dst.Contains(addr) {
				r.log.Debug("route change", "prefix", ev.Dst.String(), "covers", addr)
				r.paths.stale = true
				return
			}
		}
	}
}

// isRegister recognises the register device the kernel makes for a register VIF:
// "pimreg", or "pimreg<table>" for a table other than the default.
func isRegister(name string) bool {
	return strings.HasPrefix(name, "pimreg")
}

// syncInterfaces lists every link and address and makes the router's view match it:
// at start and whenever notifications may have been lost.
func (r *Router) syncInterfaces() error {
	links, err := r.links.Links()
	if err != nil {
		return err
	}
	present := make(map[int]bool, len(links))
	for _, l := range links {
		present[l.Index] = true
		r.linkSeen(l)
	}
	for _, ifc := range r.ifaces {
		if !present[ifc.index] {
			r.linkGone(ifc.index)
		}
	}
	byIndex, err := r.links.Addresses()
	if err != nil {
		return err
	}
	for _, ifc := range r.ifaces {
		ifc.addresses = byIndex[ifc.index]
		sortPrefixes(ifc.addresses)
		r.updateProtocols(ifc, r.now())
	}
	return nil
}

// linkSeen records a link's current state; a link that reappears under a new ifindex
// (deleted and created again) gives up its old VIF first.
func (r *Router) linkSeen(attrs netwatch.Link) {
	if old := r.byIndex(attrs.Index); old != nil && old.name != attrs.Name {
		r.log.Info("interface renamed", "from", old.name, "to", attrs.Name)
		r.removeInterface(old)
	}
	ifc := r.ifaces[attrs.Name]
	if ifc != nil && ifc.index != attrs.Index {
		r.log.Info("interface index changed", "interface", attrs.Name, "from", ifc.index, "to", attrs.Index)
		r.removeInterface(ifc)
		ifc = nil
	}
	if ifc == nil {
		ifc = &iface{name: attrs.Name, index: attrs.Index, vif: -1}
		r.ifaces[attrs.Name] = ifc
		r.indexes[attrs.Index] = ifc
		r.takeAdoptedVIF(ifc)
	}
	ifc.flags = attrs.Flags
	ifc.register = isRegister(attrs.Name)
	now := r.now()
	r.updateProtocols(ifc, now)
	r.updateVIF(ifc, now)
}

func (r *Router) linkGone(index int) {
	if ifc := r.byIndex(index); ifc != nil {
		r.log.Info("interface removed", "interface", ifc.name)
		r.removeInterface(ifc)
	}
}

func (r *Router) removeInterface(ifc *iface) {
	r.releaseVIF(ifc)
	ifc.flags = 0 // gone: no longer eligible
	r.updateProtocols(ifc, r.now())
	delete(r.ifaces, ifc.name)
	delete(r.indexes, ifc.index)
}

// takeAddresses reads a new link's addresses from the kernel. Links and addresses
// come from separate subscriptions, so its address may have been reported before
// the link, when there was no interface to give it to.
func (r *Router) takeAddresses(index int) {
	byIndex, err := r.links.Addresses()
	if err != nil {
		r.log.Warn("read a new link's addresses", "ifindex", index, "err", err)
		return
	}
	for _, p := range byIndex[index] {
		if ifc := r.byIndex(index); ifc != nil && !slices.Contains(ifc.addresses, p) {
			r.addrChanged(index, p, true)
		}
	}
}

func (r *Router) addrChanged(index int, p netip.Prefix, added bool) {
	ifc := r.byIndex(index)
	if ifc == nil {
		return
	}
	r.fab.prefixesStale = true
	ifc.addresses = slices.DeleteFunc(ifc.addresses, func(q netip.Prefix) bool { return q == p })
	if added {
		ifc.addresses = append(ifc.addresses, p)
		sortPrefixes(ifc.addresses)
	}
	r.updateProtocols(ifc, r.now())
}

// byIndex is the interface with an ifindex, nil for none: every packet and
// upcall asks, so it is a map lookup, not a walk over hundreds of interfaces.
func (r *Router) byIndex(index int) *iface { return r.indexes[index] }

// eligible says whether the config and the link's state let the interface route:
// it is up with a carrier, can do multicast, is not loopback, and a config block
// enables it. IGMP and PIM run on every eligible interface; a VIF comes only with
// something to route (vifDemand).
func (r *Router) eligible(ifc *iface) bool {
	// Running is the carrier: a link whose far end went away forwards nothing, and
	// the state learned over it must go at once, not when its timers run out.
	if ifc.register || ifc.flags&net.FlagUp == 0 || ifc.flags&net.FlagRunning == 0 ||
		ifc.flags&net.FlagLoopback != 0 || ifc.flags&net.FlagMulticast == 0 {
		return false
	}
	_, ok := r.settingsFor(ifc)
	return ok
}

// settingsFor is the config for an interface: its [[interface]] block's, or for
// the fabric, PIM and nothing else, whatever the blocks say.
func (r *Router) settingsFor(ifc *iface) (conf.Interface, bool) {
	if !ifc.cached {
		ifc.cached = true
		if r.isFabric(ifc) {
			ifc.settings, ifc.enabled = conf.Interface{Match: ifc.name, PIM: true, DRPriority: 1}, true
		} else {
			ifc.settings, ifc.enabled = r.cfg.InterfaceFor(ifc.name)
		}
	}
	return ifc.settings, ifc.enabled
}

// isFabric reports whether the interface is the node fabric's.
func (r *Router) isFabric(ifc *iface) bool {
	return r.cfg.Fabric.Enabled() && ifc.name == r.cfg.Fabric.Interface
}

// vifDemand names what an eligible interface has to route, "" when nothing. The
// kernel has 32 VIFs per table, the register VIF included, and a node can have
// hundreds of pod interfaces: a VIF is held only while the interface has IGMP
// members, PIM neighbours, routes that name it, or a source seen sending there.
//
// An interface with an address of its own (a router's link, a CNI bridge, not a
// pod's veth) also holds one while VIFs are free, as vifSpare: a new source there
// then loses no packet to the VIF being made, and the VIF goes to any interface
// that needs one once none is free.
func (r *Router) vifDemand(ifc *iface, now time.Time) string {
	switch {
	case !r.eligible(ifc):
		return ""
	case r.isFabric(ifc):
		return "fabric"
	case ifc.querier != nil && ifc.querier.HasMembers():
		return "members"
	case ifc.pim != nil && ifc.pim.HasNeighbors():
		return "neighbors"
	case r.rib.Uses(ifc.name) > 0:
		return "routes"
	case ifc.adopted && r.held != nil:
		return "restart"
	case now.Before(ifc.sourceUntil):
		return "source"
	case len(ifc.addresses) > 0:
		return vifSpare
	}
	return ""
}

// vifSpare is the demand of an interface that holds a VIF only while one is free.
const vifSpare = "address"

// sourceHold is how long a source seen on an interface without a VIF keeps the VIF
// it is given: long enough for its next packet to reach the kernel's upcall and
// become a route, which then holds the VIF itself.
const sourceHold = 10 * time.Second

// updateVIF gives the interface a VIF or takes it back, to match vifDemand.
func (r *Router) updateVIF(ifc *iface, now time.Time) {
	if ifc.register {
		// The register device is the register VIF's, which the router manages itself.
		ifc.vif = -1
		if ifc.name == r.registerName() {
			ifc.vif = r.regVIF
		}
		r.reconcileWanted = true
		return
	}
	if r.takeDemand(ifc, now) {
		r.addVIF(ifc, ifc.vifReason)
	}
}

// updateVIFs brings every interface's VIF in line with its demand: VIFs given
// back first, so that an interface waiting for one gets it in the same pass.
func (r *Router) updateVIFs(now time.Time) {
	var adds []*iface
	for _, ifc := range r.ifaces {
		if !ifc.register && r.takeDemand(ifc, now) {
			adds = append(adds, ifc)
		}
	}
	// Those that need a VIF before those that would only hold a spare one.
	slices.SortFunc(adds, func(a, b *iface) int {
		spare := func(i *iface) int {
			if i.vifReason == vifSpare {
				return 1
			}
			return 0
		}
		return cmp.Or(spare(a)-spare(b), a.index-b.index)
	})
	for _, ifc := range adds {
		r.addVIF(ifc, ifc.vifReason)
	}
}

// takeDemand records what the interface has to route, gives back a VIF it no
// longer needs, and reports whether it needs one it lacks.
func (r *Router) takeDemand(ifc *iface, now time.Time) bool {
	ifc.vifReason = r.vifDemand(ifc, now)
	if ifc.vifReason == "" {
		ifc.vifRefused = false
		r.releaseVIF(ifc)
		return false
	}
	return !ifc.hasVIF()
}

func (r *Router) addVIF(ifc *iface, why string) {
	vif, err := r.vifs.Alloc(ifc.name)
	if err != nil && why != vifSpare && r.yieldSpareVIF() {
		vif, err = r.vifs.Alloc(ifc.name)
	}
	if err != nil && why == vifSpare {
		return // it has nothing to route: it waits for a free VIF without a word
	}
	if err != nil {
		// Counted and logged once each time the interface starts to wait: every
		// event retries, and would otherwise flood both.
		if !ifc.vifRefused {
			ifc.vifRefused = true
			r.counters.inc("vif_exhausted")
			r.log.Warn("no VIF for interface: every VIF is in use", "interface", ifc.name, "needs", why, "vifs", r.vifs.Used())
		}
		return
	}
	ifc.vifRefused = false
	if err := r.mrt.AddVIF(mroute.VIF{Index: vif, IfIndex: ifc.index, Threshold: 1}); err != nil {
		r.vifs.Free(vif)
		r.counters.inc("vif_errors")
		r.log.Error("add VIF", "interface", ifc.name, "err", err)
		return
	}
	ifc.vif = int(vif)
	r.log.Info("interface active", "interface", ifc.name, "ifindex", ifc.index, "vif", vif, "for", why)
	r.reconcileWanted = true
}

// yieldSpareVIF takes a VIF back from an interface that holds it only as
// spare, the one with the highest ifindex, and reports whether there was one.
func (r *Router) yieldSpareVIF() bool {
	var victim *iface
	for _, ifc := range r.ifaces {
		if ifc.hasVIF() && ifc.vifReason == vifSpare && (victim == nil || ifc.index > victim.index) {
			victim = ifc
		}
	}
	if victim == nil {
		return false
	}
	r.log.Info("spare VIF given up for an interface that needs one", "interface", victim.name)
	r.releaseVIF(victim)
	return true
}

// releaseVIF deletes the interface's VIF. The kernel has already removed it when the
// device itself went away, so "no such VIF" is expected then.
func (r *Router) releaseVIF(ifc *iface) {
	if !ifc.hasVIF() || ifc.register {
		return
	}
	vif := uint16(ifc.vif)
	if err := r.mrt.DelVIF(vif); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		r.log.Warn("delete VIF", "interface", ifc.name, "vif", vif, "err", err)
	}
	r.vifs.Free(vif)
	ifc.vif = -1
	r.log.Info("interface inactive", "interface", ifc.name, "vif", vif)
	r.reconcileWanted = true
}

func sortPrefixes(ps []netip.Prefix) {
	slices.SortFunc(ps, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
}

// sortedInterfaces lists the interfaces by ifindex, for stable output.
func (r *Router) sortedInterfaces() []*iface {
	out := make([]*iface, 0, len(r.ifaces))
	for _, ifc := range r.ifaces {
		out = append(out, ifc)
	}
	slices.SortFunc(out, func(a, b *iface) int { return a.index - b.index })
	return out
}

// updateProtocols brings the interface's IGMP querier and PIM state in line with its
// VIF, addresses and config.
func (r *Router) updateProtocols(ifc *iface, now time.Time) {
	r.updateQuerier(ifc, now)
	r.updatePIM(ifc, now)
}

// advanceProtocols runs the IGMP and PIM timers that are due.
func (r *Router) advanceProtocols(now time.Time) {
	for _, ifc := range r.sortedInterfaces() {
		if ifc.querier != nil {
			r.igmpActions(ifc, ifc.querier.Advance(now))
		}
		if ifc.pim != nil {
			r.pimActions(ifc, ifc.pim.Advance(now))
		}
	}
	r.treeActions(r.rib.Tree().Advance(now))
	r.sendAll(r.rib.Advance(now))
	r.expireFabricJoins(now)
	r.endHold(now)
}

// nextProtocolDeadline is the earliest IGMP or PIM timer of any interface.
func (r *Router) nextProtocolDeadline() (time.Time, bool) {
	var next time.Time
	found := false
	consider := func(t time.Time, ok bool) {
		if ok && (!found || t.Before(next)) {
			next, found = t, true
		}
	}
	consider(r.rib.NextDeadline())
	consider(r.nextFabricDeadline())
	consider(r.holdUntil, r.held != nil)
	for _, ifc := range r.ifaces {
		if ifc.querier != nil {
			consider(ifc.querier.NextDeadline())
		}
		if ifc.pim != nil {
			consider(ifc.pim.NextDeadline())
		}
	}
	return next, found
}
