// Package mrib is the multicast RIB: static routes and their (*,G) templates,
// routes learned from traffic, IGMP membership, the PIM join/prune Tree and the
// register state of each source, merged into the (S,G) entries the kernel's MFC
// should hold. Each PIM-SM rule of that merge is one function named after its
// RFC 7761 macro.
//
// The RIB does no I/O. It asks an Env for what it needs from outside (reverse
// paths, the RP of a group, membership, DR state, its own addresses), takes the
// time as an argument, and returns the PIM messages to send. Its owner reads the
// routes that changed with TakeChanged and reconciles them with the kernel.
package mrib

import (
	"iter"
	"log/slog"
	"maps"
	"net/netip"
	"time"

	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/pim"
)

// Key names an (S,G) entry; Source is the zero Addr for (*,G). Routes and PIM
// state share the one key type.
type Key = pim.Key

// Origin is what made a route: the config, IGMP membership alone, or PIM.
type Origin uint8

const (
	OriginStatic Origin = iota
	OriginIGMP
	OriginPIM
)

// String is the origin as the protocol column and the control API show it.
func (o Origin) String() string {
	switch o {
	case OriginStatic:
		return "static"
	case OriginIGMP:
		return "igmp"
	}
	return "pim"
}

// Route is one entry of the routing table. A static route with a source is
// installed as it is; one without a source is a (*,G) template whose (S,G)
// instances are learned from NOCACHE upcalls. Every other route is dynamic: its
// interfaces follow IGMP, the PIM Tree and the reverse paths. It exists while PIM
// holds (S,G) join state (JoinState) or, learned from traffic, until it goes idle.
// The RIB owns its routes: its owner only reads them, but for the idle counters.
type Route struct {
	Key       Key
	IIF       string
	OIFs      []string
	Origin    Origin
	Template  bool // a (*,G) template: never installed itself
	From      *Key // for an instance of a template: the template
	Learned   bool // created by traffic; removed when idle
	JoinState bool // PIM (S,G) join state, downstream or local: forwarded along the source's tree
	Shared    bool // accepted from the RP's direction: on the shared tree
	Created   time.Time

	// Idle tracking for learned entries, from the kernel's packet counter.
	LastPackets uint64
	LastActive  time.Time
}

// Installable reports whether the route is meant for the kernel's MFC.
func (rt *Route) Installable() bool { return !rt.Template }

// Config is the part of the router's config the RIB follows.
type Config struct {
	SPTSwitchover  bool           // a last hop switches to a source's tree at once
	RegisterAccept []netip.Prefix // first-hop DRs an RP accepts registers from; empty: those in the PIM domain
	IdleTimeout    time.Duration  // learned routes without traffic for this long go
	// Limits: beyond them new learned routes, and registers from new sources, are
	// refused and counted; what exists stays. 0 = no limit.
	MaxLearned    int
	MaxRegistered int
	// RegisterVIF is the device of the register VIF (pimreg); "" while there is none.
	RegisterVIF string
	// Fabric is the node fabric's interface; "" without one.
	Fabric string
}

// Env is what the RIB asks of the world around it.
type Env interface {
	RPF(addr netip.Addr) pim.RPF
	RP(group netip.Addr) (netip.Addr, bool)
	SSM(group netip.Addr) bool
	IsOwn(addr netip.Addr) bool
	// MemberInterfaces lists the interfaces where IGMP runs, and Member gives one
	// interface's state, nil where IGMP does not run.
	MemberInterfaces() []string
	Member(iface string) Membership
	// DR says whether PIM runs on an interface and whether it elected us.
	DR(iface string) (pimOn, isDR bool)
	// AssertMetric is our claim in an assert for (S,G) on an interface, along the
	// shared tree or the source's.
	AssertMetric(key Key, iface string, shared bool) pim.AssertMetric
	// FabricWants reports whether a peer on the node fabric joined (S,G) or (*,G).
	FabricWants(key Key) bool
	// Forwarded is the kernel's packet counter of the (S,G) entry it holds; false
	// when it holds none.
	Forwarded(key Key) (packets uint64, ok bool)
	// Count counts an event by name.
	Count(name string)
}

// Membership is IGMP's state on one interface; *igmp.Querier has it.
type Membership interface {
	Group(group netip.Addr) (igmp.GroupState, bool)
	Mode(group netip.Addr) (igmp.FilterMode, bool)
	Forward(source, group netip.Addr) bool
}

// Message is a PIM message to send.
type Message interface{ Marshal() ([]byte, error) }

// Send asks for a PIM message to go to ALL-PIM-ROUTERS out of the interface On or,
// when On is empty, unicast to To. What names the counter it counts under.
type Send struct {
	On   string
	To   netip.Addr
	Msg  Message
	What string
}

// RIB is the multicast routing table and the PIM state behind it.
type RIB struct {
	cfg  Config
	env  Env
	log  *slog.Logger
	tree *pim.Tree

	routes  map[Key]*Route
	byGroup map[netip.Addr]map[Key]*Route
	learned int // routes with Learned set
	// uses counts, per interface, the routes that name it as iif or oif.
	uses map[string]int
	// local is, per interface and group, what members there asked the Tree for.
	local map[string]map[netip.Addr][]Key
	// dirtyGroups are groups whose routes must be recomputed by Refresh, dirtyKeys
	// single (S,G) routes, and changed the routes whose interfaces changed since
	// TakeChanged.
	dirtyGroups map[netip.Addr]bool
	dirtyKeys   map[Key]bool
	changed     map[Key]bool
	registerers map[Key]netip.Addr // on an RP: the first-hop DR registering each source
	sptPending  map[Key]time.Time  // on an RP: sources waiting to switch to their own tree, until then

	out []Send // what the call in progress asks to send
}

// New returns an empty RIB.
func New(cfg Config, env Env, tree pim.TreeConfig, log *slog.Logger) *RIB {
	return &RIB{
		cfg: cfg, env: env, log: log, tree: pim.NewTree(tree),
		routes:      make(map[Key]*Route),
		uses:        make(map[string]int),
		byGroup:     make(map[netip.Addr]map[Key]*Route),
		local:       make(map[string]map[netip.Addr][]Key),
		dirtyGroups: make(map[netip.Addr]bool),
		dirtyKeys:   make(map[Key]bool),
		changed:     make(map[Key]bool),
		registerers: make(map[Key]netip.Addr),
		sptPending:  make(map[Key]time.Time),
	}
}

// SetConfig follows a reload.
func (r *RIB) SetConfig(cfg Config, tree pim.TreeConfig) {
	r.cfg = cfg
	r.tree.SetConfig(tree)
}

// SetRegisterVIF follows the register VIF coming and going.
func (r *RIB) SetRegisterVIF(name string) { r.cfg.RegisterVIF = name }

// Tree is the PIM join/prune state. Its owner hands it the PIM protocol events and
// passes the actions it returns to TreeActions.
func (r *RIB) Tree() *pim.Tree { return r.tree }

// Route returns the route of an entry.
func (r *RIB) Route(key Key) (*Route, bool) {
	rt, ok := r.routes[key]
	return rt, ok
}

// Routes yields every route, in no order.
func (r *RIB) Routes() iter.Seq[*Route] { return maps.Values(r.routes) }

// Len is the number of routes, templates included.
func (r *RIB) Len() int { return len(r.routes) }

// Changed reports whether routes changed since TakeChanged.
func (r *RIB) Changed() bool { return len(r.changed) > 0 }

// TakeChanged returns the routes changed, added or removed since the last call.
func (r *RIB) TakeChanged() []Key {
	out := make([]Key, 0, len(r.changed))
	for k := range r.changed {
		out = append(out, k)
	}
	clear(r.changed)
	return out
}

// MarkGroup has Refresh recompute a group's routes.
func (r *RIB) MarkGroup(group netip.Addr) { r.dirtyGroups[group] = true }

// MarkAll has Refresh recompute every group's routes.
func (r *RIB) MarkAll() {
	for group := range r.byGroup {
		r.dirtyGroups[group] = true
	}
}

// Uses counts the routes, templates included, whose incoming or outgoing
// interfaces name iface: an interface needs a VIF while any does.
func (r *RIB) Uses(iface string) int { return r.uses[iface] }

// countUses adds d to the use count of each interface rt names; nil is none.
func (r *RIB) countUses(rt *Route, d int) {
	if rt == nil {
		return
	}
	for _, name := range append([]string{rt.IIF}, rt.OIFs...) {
		if name == "" {
			continue
		}
		if r.uses[name] += d; r.uses[name] == 0 {
			delete(r.uses, name)
		}
	}
}

// setInterfaces changes a route's interfaces, keeping the use counts.
func (r *RIB) setInterfaces(rt *Route, iif string, oifs []string) {
	r.countUses(rt, -1)
	rt.IIF, rt.OIFs = iif, oifs
	r.countUses(rt, 1)
}

func (r *RIB) addRoute(rt *Route) {
	r.uncountLearned(r.routes[rt.Key])
	r.countUses(r.routes[rt.Key], -1)
	r.countUses(rt, 1)
	if rt.Learned {
		r.learned++
	}
	r.routes[rt.Key] = rt
	set := r.byGroup[rt.Key.Group]
	if set == nil {
		set = make(map[Key]*Route)
		r.byGroup[rt.Key.Group] = set
	}
	set[rt.Key] = rt
	r.changed[rt.Key] = true
}

// uncountLearned takes a learned route out of the count; nil is none.
func (r *RIB) uncountLearned(rt *Route) {
	if rt != nil && rt.Learned {
		r.learned--
	}
}

func (r *RIB) deleteRoute(key Key) {
	r.uncountLearned(r.routes[key])
	r.countUses(r.routes[key], -1)
	delete(r.routes, key)
	if set := r.byGroup[key.Group]; set != nil {
		delete(set, key)
		if len(set) == 0 {
			delete(r.byGroup, key.Group)
		}
	}
	r.changed[key] = true
}

// TreeActions carries out what the Tree asked for and returns what to send.
func (r *RIB) TreeActions(actions []pim.Action) []Send {
	r.treeActions(actions)
	return r.take()
}

func (r *RIB) treeActions(actions []pim.Action) {
	for _, a := range actions {
		switch a := a.(type) {
		case pim.SendJoinPrune:
			r.send(a.Interface, netip.Addr{}, a.Message, "pim_joinprunes_sent")
		case pim.TreeChanged:
			if a.Sources == nil {
				r.dirtyGroups[a.Group] = true
			}
			for _, s := range a.Sources {
				r.dirtyKeys[Key{Source: s, Group: a.Group}] = true
			}
		case pim.JoinPruneIgnored:
			r.env.Count("pim_joinprune_ignored_" + a.Reason)
		case pim.SendAssert:
			r.send(a.Interface, netip.Addr{}, &a.Assert, "asserts_sent")
		case pim.SendNullRegister:
			r.send("", a.RP, nullRegister(a.Key), "null_registers_sent")
		}
	}
}

func (r *RIB) send(on string, to netip.Addr, m Message, what string) {
	r.out = append(r.out, Send{On: on, To: to, Msg: m, What: what})
}

// take returns what the call asked to send.
func (r *RIB) take() []Send {
	out := r.out
	r.out = nil
	return out
}
