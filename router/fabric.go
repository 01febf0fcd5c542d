package router

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/mrouterd/mrouterd/conf"
	"github.com/mrouterd/mrouterd/pim"
	"github.com/mrouterd/mrouterd/router/api"
	"github.com/mrouterd/mrouterd/router/fabric"
)

// This file is the node fabric as the loop runs it: the VXLAN interface and its
// peers (router/fabric), the reverse path to sources behind other nodes, which
// they advertise in their hellos, the RP the nodes agree on when none is
// configured, and which peers get which group's packets.

// fabricDevice is the fabric's interface in the kernel; *fabric.Fabric is it.
type fabricDevice interface {
	Ensure(cfg fabric.Config, local netip.Addr, peers []netip.Addr) (fabric.Link, error)
	SetFlood(peers []netip.Addr) error
	SetGroups(want map[netip.Addr][]netip.Addr) error
	Remove(name string) error
}

// fabricState is what the loop keeps of the fabric.
type fabricState struct {
	dev      fabricDevice
	resolver fabric.Resolver
	kick     chan struct{} // resolve again now: the config changed

	resolved bool
	peers    []fabric.Peer               // the last resolution, the node itself left out
	isPeer   map[netip.Addr]bool         // the same, to look up
	self     netip.Addr                  // invalid while the node is not in the list
	link     fabric.Link                 // as Ensure left it
	ensured  fabricKey                   // what Ensure last succeeded with
	flood    []netip.Addr                // what SetFlood was last given
	groups   map[netip.Addr][]netip.Addr // what SetGroups was last given
	lastErr  string                      // the last failure, for show fabric

	// joins are, per peer, the entries it joined on the fabric and until when:
	// every join on the fabric reaches every node, which so knows who wants what.
	joins       map[netip.Addr]map[sgKey]time.Time
	groupsStale bool

	prefixes      []netip.Prefix // the source prefixes our hellos advertise
	prefixesStale bool
	prefixesAt    time.Time  // when they were last computed
	rp            netip.Addr // the RP the nodes agreed on; invalid while none

	// announced are the groups this node, as their RP, told the others it wants;
	// announceAt is when it says so again, announceStale asks for it at once.
	announced     map[netip.Addr]bool
	announceAt    time.Time
	announceStale bool
}

// fabricKey is what the fabric interface was made for: a change of either
// makes it again.
type fabricKey struct {
	cfg  fabric.Config
	self netip.Addr
}

// Limits: the prefixes a node advertises (they must fit a hello in one packet
// under the fabric's MTU: 5 bytes each), and the entries one peer's joins are
// followed for.
const (
	maxAdvertisedPrefixes = 200
	maxFabricJoinsPerPeer = 10000
	// prefixInterval spaces out recomputing the advertised prefixes, which a burst
	// of route changes (pods starting) would otherwise ask for at each one.
	prefixInterval = time.Second
)

func newFabricState() *fabricState {
	return &fabricState{
		dev:       fabric.New(),
		resolver:  net.DefaultResolver,
		kick:      make(chan struct{}, 1),
		announced: make(map[netip.Addr]bool),
		isPeer:    make(map[netip.Addr]bool),
		joins:     make(map[netip.Addr]map[sgKey]time.Time),
	}
}

// fabricOn reports whether the node is on a fabric: one is configured and the
// node found itself among its peers.
func (r *Router) fabricOn() bool { return r.cfg.Fabric.Enabled() && r.fab.self.IsValid() }

// fabricConfig is the device's part of the config.
func fabricConfig(c conf.Fabric) fabric.Config {
	return fabric.Config{Name: c.Interface, VNI: c.VNI, Port: c.Port, MTU: c.MTU, Underlay: c.Underlay}
}

// resolveFabric resolves the peers now and every dns-refresh, off the loop, since
// DNS can take seconds, and hands each answer to the loop.
func (r *Router) resolveFabric(ctx context.Context) {
	var (
		set   *fabric.PeerSet
		specs []string
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-r.fab.kick:
		}
		var (
			cfg conf.Fabric
			own []netip.Addr
		)
		if r.call(ctx, func() { cfg, own = r.cfg.Fabric, r.ownAddresses() }) != nil {
			return
		}
		timer.Reset(cfg.DNSRefresh)
		if !cfg.Enabled() {
			continue
		}
		if set == nil || !slices.Equal(cfg.Peers, specs) {
			parsed, err := fabric.ParsePeers(cfg.Peers)
			if err != nil { // validated with the config: only a bug gets here
				r.log.Error("fabric peers", "err", err)
				continue
			}
			set, specs = fabric.NewPeerSet(parsed, r.fab.resolver), slices.Clone(cfg.Peers)
		}
		err := set.Resolve(ctx, r.now(), own)
		peers := set.Peers()
		self, ok := set.Self()
		if r.call(ctx, func() { r.fabricResolved(peers, self, ok, err) }) != nil {
			return
		}
	}
}

// ownAddresses are the node's IPv4 addresses, for it to find itself among the peers.
func (r *Router) ownAddresses() []netip.Addr {
	var out []netip.Addr
	for _, ifc := range r.ifaces {
		if r.isFabric(ifc) {
			continue
		}
		for _, p := range ifc.addresses {
			out = append(out, p.Addr())
		}
	}
	return out
}

// fabricResolved follows a resolution of the peers: the interface is made or
// fixed, replication follows the peers, and routers no longer listed are
// forgotten.
func (r *Router) fabricResolved(peers []fabric.Peer, self netip.Addr, found bool, err error) {
	f := r.fab
	if err != nil {
		r.counters.inc("fabric_resolve_errors")
		r.log.Warn("fabric peers", "err", err)
		f.lastErr = err.Error()
	}
	if !found {
		if f.self.IsValid() || !f.resolved {
			r.log.Warn("fabric: none of this node's addresses is among the peers; no fabric", "peers", r.cfg.Fabric.Peers)
		}
		f.resolved, f.self = true, netip.Addr{}
		return
	}
	f.resolved, f.self, f.peers = true, self, peers
	clear(f.isPeer)
	for _, p := range peers {
		f.isPeer[p.Addr] = true
	}
	r.ensureFabric()
	if ifc := r.ifaces[r.cfg.Fabric.Interface]; ifc != nil && ifc.pim != nil {
		r.pimActions(ifc, ifc.pim.Forget(r.now(), func(a netip.Addr) bool { return f.isPeer[a] }))
	}
	for peer := range f.joins {
		if !f.isPeer[peer] {
			r.forgetFabricPeer(peer)
		}
	}
	r.electFabricRP()
}

// ensureFabric makes the interface match the config and the node's address, and
// head-end replication the peers.
func (r *Router) ensureFabric() {
	f := r.fab
	addrs := make([]netip.Addr, len(f.peers))
	for i, p := range f.peers {
		addrs[i] = p.Addr
	}
	key := fabricKey{cfg: fabricConfig(r.cfg.Fabric), self: f.self}
	if ifc := r.ifaces[key.cfg.Name]; key != f.ensured || ifc == nil || ifc.index != f.link.Index {
		link, err := f.dev.Ensure(key.cfg, f.self, addrs)
		if err != nil {
			r.counters.inc("fabric_errors")
			r.log.Error("fabric interface", "err", err)
			f.lastErr = err.Error()
			return
		}
		f.link, f.ensured, f.flood, f.groups = link, key, nil, nil
		f.groupsStale, f.prefixesStale = true, true
		// PIM starts on the interface when netlink reports it up with its address.
		r.log.Info("fabric up", "interface", key.cfg.Name, "address", f.self, "underlay", link.Underlay,
			"mtu", link.MTU, "vni", key.cfg.VNI, "port", key.cfg.Port, "peers", len(addrs))
	}
	if f.flood != nil && slices.Equal(addrs, f.flood) {
		return
	}
	if err := f.dev.SetFlood(addrs); err != nil {
		r.counters.inc("fabric_errors")
		r.log.Error("fabric replication", "err", err)
		f.lastErr = err.Error()
		return
	}
	f.flood = addrs
	f.groupsStale = true
}

// stopFabric removes the interface, on a clean stop: a node that leaves takes
// its end of the fabric with it.
func (r *Router) stopFabric() {
	if r.fab.ensured == (fabricKey{}) {
		return
	}
	if err := r.fab.dev.Remove(r.fab.ensured.cfg.Name); err != nil {
		r.log.Warn("remove the fabric interface", "err", err)
	}
}

// observeFabricJoins follows a Join/Prune some peer sent on the fabric, to any
// upstream router: it tells which groups that peer wants, which decides where
// a group's packets are replicated and whether a first hop forwards onto the
// fabric at all.
func (r *Router) observeFabricJoins(now time.Time, from netip.Addr, m *pim.JoinPrune) {
	f := r.fab
	hold := min(time.Duration(m.Holdtime)*time.Second, r.cfg.PIM.MaxHoldtime)
	joined := f.joins[from]
	for _, g := range m.Groups {
		group := g.Group.Addr()
		for _, s := range g.Joins {
			key, ok := fabricJoinKey(group, s)
			if !ok {
				continue
			}
			if joined == nil {
				joined = make(map[sgKey]time.Time)
				f.joins[from] = joined
			}
			if _, known := joined[key]; !known {
				if len(joined) >= maxFabricJoinsPerPeer {
					r.counters.inc("fabric_joins_refused")
					continue
				}
				r.fabricWantChanged(group)
			}
			joined[key] = now.Add(hold)
		}
		for _, s := range g.Prunes {
			key, ok := fabricJoinKey(group, s)
			if !ok {
				continue
			}
			if _, ok := joined[key]; ok {
				delete(joined, key)
				r.fabricWantChanged(group)
			}
		}
	}
	if m.Holdtime == 0 {
		r.forgetFabricPeer(from)
	}
}

// fabricJoinKey is the entry a Join/Prune source names: (*,G) or (S,G); an
// (S,G,rpt) one asks for no traffic, and is not followed (ok false).
func fabricJoinKey(group netip.Addr, s pim.JPSource) (key sgKey, ok bool) {
	switch {
	case s.Wildcard:
		return sgKey{Group: group}, true
	case s.RPT:
		return sgKey{}, false
	}
	return sgKey{Source: s.Source.Addr(), Group: group}, true
}

// fabricWantChanged has a group's routes and the replication recomputed.
func (r *Router) fabricWantChanged(group netip.Addr) {
	r.fab.groupsStale = true
	r.rib.MarkGroup(group)
}

// forgetFabricPeer drops what a peer joined: it left, or is no longer listed.
func (r *Router) forgetFabricPeer(peer netip.Addr) {
	for key := range r.fab.joins[peer] {
		r.fabricWantChanged(key.Group)
	}
	delete(r.fab.joins, peer)
}

// expireFabricJoins drops the joins whose holdtime ran out.
func (r *Router) expireFabricJoins(now time.Time) {
	for peer, joined := range r.fab.joins {
		for key, until := range joined {
			if !now.Before(until) {
				delete(joined, key)
				r.fabricWantChanged(key.Group)
			}
		}
		if len(joined) == 0 {
			delete(r.fab.joins, peer)
		}
	}
}

// nextFabricDeadline is when the next fabric join expires, or the advertised
// prefixes are due again.
func (r *Router) nextFabricDeadline() (time.Time, bool) {
	if !r.fabricOn() {
		return time.Time{}, false
	}
	var next time.Time
	found := false
	for _, joined := range r.fab.joins {
		for _, until := range joined {
			if !found || until.Before(next) {
				next, found = until, true
			}
		}
	}
	if r.fab.prefixesStale {
		due := r.fab.prefixesAt.Add(prefixInterval)
		if !found || due.Before(next) {
			next, found = due, true
		}
	}
	if len(r.fab.announced) > 0 && (!found || r.fab.announceAt.Before(next)) {
		next, found = r.fab.announceAt, true
	}
	return next, found
}

// announceFabricGroups has a node that is the RP of groups its own members want
// say so on the fabric. Its members' joins would go to itself, so the first hops
// on other nodes, which forward a group only where some node joined it, would
// never hear of them. It sends a Join(*,G) addressed to itself, which tells
// every node and asks nothing of any, as often as joins are repeated, and a
// prune when its members are gone.
func (r *Router) announceFabricGroups(now time.Time) {
	f := r.fab
	f.announceStale, f.announceAt = false, now.Add(r.cfg.PIM.JoinPruneInterval)
	ifc := r.ifaces[r.cfg.Fabric.Interface]
	if ifc == nil || ifc.pim == nil {
		return
	}
	want := make(map[netip.Addr]bool)
	for _, e := range r.rib.Tree().Entries(netip.Addr{}) {
		if e.Key.Wildcard() && len(e.Local) > 0 {
			if rp, ok := r.rpOf(e.Key.Group); ok && rp == f.self {
				want[e.Key.Group] = true
			}
		}
	}
	holdtime := uint16(min(r.cfg.PIM.JoinPruneInterval*7/2/time.Second, 0xfffe))
	self := []pim.JPSource{{Source: netip.PrefixFrom(f.self, 32), Sparse: true, Wildcard: true, RPT: true}}
	var groups []pim.JPGroup
	for g := range want {
		groups = append(groups, pim.JPGroup{Group: netip.PrefixFrom(g, 32), Joins: self})
	}
	for g := range f.announced {
		if !want[g] {
			groups = append(groups, pim.JPGroup{Group: netip.PrefixFrom(g, 32), Prunes: self})
		}
	}
	f.announced = want
	slices.SortFunc(groups, func(a, b pim.JPGroup) int { return a.Group.Addr().Compare(b.Group.Addr()) })
	for chunk := range slices.Chunk(groups, announcementGroups) {
		r.sendPIM(ifc.name, netip.Addr{}, &pim.JoinPrune{UpstreamNeighbor: f.self, Holdtime: holdtime, Groups: chunk},
			"fabric_announcements_sent")
	}
}

// announcementGroups fits an announcement in one packet: 20 bytes a group.
const announcementGroups = 64

// fabricWants reports whether a peer joined (S,G) or (*,G) on the fabric.
func (r *Router) fabricWants(key sgKey) bool {
	wc := sgKey{Group: key.Group}
	for _, joined := range r.fab.joins {
		if _, ok := joined[key]; ok {
			return true
		}
		if _, ok := joined[wc]; ok {
			return true
		}
	}
	return false
}

// fabricGroups is, per group, the peers that joined it: where selective
// replication sends it.
func (r *Router) fabricGroups() map[netip.Addr][]netip.Addr {
	out := make(map[netip.Addr][]netip.Addr)
	for peer, joined := range r.fab.joins {
		for key := range joined {
			if !slices.Contains(out[key.Group], peer) {
				out[key.Group] = append(out[key.Group], peer)
			}
		}
	}
	for _, peers := range out {
		slices.SortFunc(peers, netip.Addr.Compare)
	}
	return out
}

// updateFabric brings what the fabric does in line with what changed since: the
// replication of each group and the prefixes our hellos advertise.
func (r *Router) updateFabric(now time.Time) {
	f := r.fab
	if !r.fabricOn() || f.ensured == (fabricKey{}) {
		return
	}
	if f.groupsStale {
		f.groupsStale = false
		want := map[netip.Addr][]netip.Addr{} // "all": no group narrows the flood
		if r.cfg.Fabric.Replication == "selective" {
			want = r.fabricGroups()
		}
		if !sameGroups(want, f.groups) {
			if err := f.dev.SetGroups(want); err != nil {
				r.counters.inc("fabric_errors")
				r.log.Error("fabric replication", "err", err)
				f.lastErr = err.Error()
			} else {
				f.groups = want
			}
		}
	}
	if f.announceStale || !now.Before(f.announceAt) {
		r.announceFabricGroups(now)
	}
	if f.prefixesStale && !now.Before(f.prefixesAt.Add(prefixInterval)) {
		f.prefixesStale, f.prefixesAt = false, now
		prefixes := r.localSourcePrefixes()
		if !slices.Equal(prefixes, f.prefixes) {
			f.prefixes = prefixes
			if ifc := r.ifaces[r.cfg.Fabric.Interface]; ifc != nil && ifc.pim != nil {
				r.pimActions(ifc, ifc.pim.SetConfig(r.pimConfig(ifc), now))
			}
		}
	}
}

func sameGroups(a, b map[netip.Addr][]netip.Addr) bool {
	if b == nil || len(a) != len(b) {
		return false
	}
	for g, peers := range a {
		if !slices.Equal(peers, b[g]) {
			return false
		}
	}
	return true
}

// localSourcePrefixes are the sources behind this node, as its hellos advertise
// them to the other nodes: the node's own address, the subnets of its other
// interfaces, and the routes straight out of them (a pod's /32 on its veth),
// merged where they are adjacent. Not the underlay's subnet, which other nodes
// may share, nor the fabric's.
func (r *Router) localSourcePrefixes() []netip.Prefix {
	f := r.fab
	out := []netip.Prefix{netip.PrefixFrom(f.self, 32)}
	local := func(ifc *iface) bool {
		return ifc != nil && !r.isFabric(ifc) && ifc.name != f.link.Underlay && !ifc.register &&
			ifc.flags&net.FlagLoopback == 0 && ifc.flags&net.FlagUp != 0
	}
	for _, ifc := range r.ifaces {
		if local(ifc) {
			for _, p := range ifc.addresses {
				out = append(out, p.Masked())
			}
		}
	}
	routes, err := r.fib.DirectRoutes()
	if err != nil {
		r.counters.inc("fabric_errors")
		r.log.Warn("fabric: list routes", "err", err)
	}
	for _, rt := range routes {
		if rt.dst.Bits() > 0 && local(r.byIndex(rt.ifindex)) {
			out = append(out, rt.dst)
		}
	}
	out = mergePrefixes(out)
	if len(out) > maxAdvertisedPrefixes {
		r.counters.inc("fabric_prefixes_cut")
		out = out[:maxAdvertisedPrefixes]
	}
	return out
}

// mergePrefixes sorts prefixes, drops those inside another, and joins two
// halves of a prefix into it, until nothing more can be merged: the shortest
// list that covers exactly the same addresses.
func mergePrefixes(in []netip.Prefix) []netip.Prefix {
	list := slices.Clone(in)
	for {
		slices.SortFunc(list, func(a, b netip.Prefix) int {
			if c := a.Addr().Compare(b.Addr()); c != 0 {
				return c
			}
			return a.Bits() - b.Bits()
		})
		out := list[:0]
		for _, p := range list {
			if n := len(out); n > 0 && out[n-1].Overlaps(p) {
				continue // sorted: the earlier one, shorter or equal, holds it
			}
			out = append(out, p)
		}
		merged := false
		for i := 0; i+1 < len(out); i++ {
			a, b := out[i], out[i+1]
			if a.Bits() == b.Bits() && a.Bits() > 0 {
				parent := netip.PrefixFrom(a.Addr(), a.Bits()-1).Masked()
				if parent.Addr() == a.Addr() && parent.Contains(b.Addr()) {
					out[i] = parent
					out = slices.Delete(out, i+1, i+2)
					merged = true
				}
			}
		}
		if !merged {
			return out
		}
		list = out
	}
}

// fabricPath is the reverse path to addr over the fabric: through the peer
// advertising the longest prefix holding it; ok is false when no peer advertises
// addr.
func (r *Router) fabricPath(addr netip.Addr) (rpf pim.RPF, prefix netip.Prefix, ok bool) {
	if !r.fabricOn() {
		return pim.RPF{}, netip.Prefix{}, false
	}
	ifc := r.ifaces[r.cfg.Fabric.Interface]
	if ifc == nil || ifc.pim == nil {
		return pim.RPF{}, netip.Prefix{}, false
	}
	for _, n := range ifc.pim.Neighbors() {
		for _, p := range n.SourcePrefixes {
			if p.Contains(addr) && p.Bits() > prefix.Bits() {
				rpf, prefix = pim.RPF{Interface: ifc.name, Neighbor: n.Address}, p.Masked()
			}
		}
	}
	return rpf, prefix, prefix.IsValid()
}

// electFabricRP picks the RP the nodes agree on when none is configured: the
// lowest address among this node and its live peers on the fabric. Every node
// sees the same hellos, so each picks the same; when the RP goes, its neighbours
// drop it within a hello holdtime, and the next lowest takes over.
func (r *Router) electFabricRP() {
	if !r.fabricOn() || len(r.cfg.PIM.RPs) > 0 {
		return
	}
	rp := r.fab.self
	if ifc := r.ifaces[r.cfg.Fabric.Interface]; ifc != nil && ifc.pim != nil {
		for _, n := range ifc.pim.Neighbors() {
			if r.fab.isPeer[n.Address] && n.Address.Less(rp) {
				rp = n.Address
			}
		}
	}
	if rp == r.fab.rp {
		return
	}
	r.fab.rp, r.fab.announceStale = rp, true
	r.log.Info("fabric RP", "rp", rp, "self", rp == r.fab.self)
	r.counters.inc("fabric_rp_changes")
	r.rps = pim.NewRPSet([]pim.RPMapping{{Groups: multicastGroups, RP: rp, Origin: "fabric"}}, r.cfg.PIM.SSMRange)
	r.paths.stale = true
}

var multicastGroups = netip.MustParsePrefix("224.0.0.0/4")

// fabricView is what show fabric shows.
func (r *Router) fabricView() api.Fabric {
	c, f := r.cfg.Fabric, r.fab
	v := api.Fabric{
		Enabled: c.Enabled(), Interface: c.Interface, VNI: c.VNI, Port: c.Port, MTU: f.link.MTU,
		Underlay: f.link.Underlay, Replication: c.Replication, Error: f.lastErr,
		Prefixes: []string{}, Peers: []api.FabricPeer{},
	}
	if !r.fabricOn() {
		return v
	}
	v.Self = f.self.String()
	if f.rp.IsValid() && len(r.cfg.PIM.RPs) == 0 {
		v.RP = f.rp.String()
	}
	for _, p := range f.prefixes {
		v.Prefixes = append(v.Prefixes, p.String())
	}
	var link *pim.Interface
	if ifc := r.ifaces[c.Interface]; ifc != nil {
		link = ifc.pim
	}
	groups := r.fabricGroups()
	for _, p := range f.peers {
		peer := api.FabricPeer{Address: p.Addr.String(), Origin: string(p.Origin), Name: p.Name,
			Groups: []string{}, Prefixes: []string{}}
		if link != nil {
			if n, ok := link.Neighbor(p.Addr); ok {
				peer.Neighbor = true
				for _, pre := range n.SourcePrefixes {
					peer.Prefixes = append(peer.Prefixes, pre.String())
				}
			}
		}
		for g, peers := range groups {
			if slices.Contains(peers, p.Addr) {
				peer.Groups = append(peer.Groups, g.String())
			}
		}
		slices.SortFunc(peer.Groups, func(a, b string) int { return compareAddr(a, b) })
		v.Peers = append(v.Peers, peer)
	}
	return v
}
