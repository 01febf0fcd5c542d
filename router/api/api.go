// Package api holds the JSON shapes of mrouterd's control API and a client for it.
// The daemon serves these shapes and mroutectl renders them; fields may be added,
// never renamed.
package api

import (
	"fmt"
	"net/netip"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/mrouterd/mrouterd.sock"

// SocketEnv, when set, replaces DefaultSocket for clients (the lab sets it per node).
const SocketEnv = "MROUTERD_SOCKET"

// Paths of the control API.
const (
	PathRoutes     = "/v1/routes"
	PathMFC        = "/v1/mfc"
	PathInterfaces = "/v1/interfaces"
	PathStatus     = "/v1/status"
	PathReload     = "/v1/reload"
	PathRestart    = "/v1/restart"
	PathMetrics    = "/metrics"
)

// Route is one entry of the multicast routing table: what mrouterd wants forwarded.
type Route struct {
	Source   string   `json:"source"` // "*" for (*,G)
	Group    string   `json:"group"`
	IIF      string   `json:"iif"`
	OIFs     []string `json:"oifs"`
	Protocol string   `json:"protocol"` // "static", "igmp", "pim"
	Flags    []string `json:"flags"`
	UptimeS  int64    `json:"uptime_s"`
	ExpiresS int64    `json:"expires_s"` // 0 when the route does not expire
	Packets  uint64   `json:"packets"`
	Bytes    uint64   `json:"bytes"`
	// Warning says why the route's traffic cannot flow, when mrouterd can tell
	// (a sender's TTL too low to be forwarded); "" otherwise.
	Warning string `json:"warning,omitempty"`
}

// Routes is the reply of GET /v1/routes.
type Routes struct {
	Routes []Route `json:"routes"`
}

// MFCEntry is one entry as read back from the kernel.
type MFCEntry struct {
	Source  string   `json:"source"`
	Group   string   `json:"group"`
	IIF     string   `json:"iif"`
	OIFs    []string `json:"oifs"`
	Packets uint64   `json:"packets"`
	Bytes   uint64   `json:"bytes"`
	WrongIf uint64   `json:"wrong_if"`
}

// MFC is the reply of GET /v1/mfc.
type MFC struct {
	MFC []MFCEntry `json:"mfc"`
}

// Interface is one interface mrouterd knows about, with its VIF if it has one.
type Interface struct {
	Name      string   `json:"name"`
	Index     int      `json:"ifindex"`
	VIF       int      `json:"vif"` // -1 when the interface has no VIF
	Addresses []string `json:"addresses"`
	Up        bool     `json:"up"`
	IGMP      bool     `json:"igmp"`
	PIM       bool     `json:"pim"`
	// State: "active" (it has a VIF), "idle" (watched, with nothing to route),
	// "no-vif" (it has something to route and every VIF is in use), "down", "disabled".
	State string `json:"state"`
	// VIFReason is what the interface has to route: "members", "neighbors",
	// "routes", "source" or "fabric"; "" for nothing.
	VIFReason  string `json:"vif_reason,omitempty"`
	PacketsIn  uint64 `json:"packets_in"`
	PacketsOut uint64 `json:"packets_out"`
	BytesIn    uint64 `json:"bytes_in"`
	BytesOut   uint64 `json:"bytes_out"`

	// IGMP state; absent when IGMP is off on the interface.
	IGMPState *IGMPInterface `json:"igmp_state,omitempty"`
	// PIM state; absent when PIM is off on the interface.
	PIMState *PIMInterface `json:"pim_state,omitempty"`
}

// PIMInterface is the PIM state of one interface.
type PIMInterface struct {
	Address      string `json:"address"`
	DR           string `json:"dr"`
	IsDR         bool   `json:"is_dr"`
	DRPriority   uint32 `json:"dr_priority"`
	GenerationID uint32 `json:"generation_id"`
	Neighbors    int    `json:"neighbors"`
}

// IGMPInterface is the IGMP querier state of one interface.
type IGMPInterface struct {
	Version             int     `json:"version"`
	Querier             bool    `json:"querier"`
	QuerierAddress      string  `json:"querier_address"`
	OtherQuerierExpires int64   `json:"other_querier_expires_s"` // 0 while this router is the querier
	QueryIntervalS      float64 `json:"query_interval_s"`
	Groups              int     `json:"groups"`
}

// Interfaces is the reply of GET /v1/interfaces.
type Interfaces struct {
	Interfaces []Interface `json:"interfaces"`
}

// Status is the reply of GET /v1/status.
type Status struct {
	Version string `json:"version"`
	UptimeS int64  `json:"uptime_s"`
	Started string `json:"started"` // RFC 3339 with nanoseconds; a restart in place changes it
	// Hold is set while entries adopted in a restart in place are held.
	Hold       *RestartHold `json:"restart_hold,omitempty"`
	ConfigFile string       `json:"config_file"`
	Table      uint32       `json:"table"`
	VIFs       int          `json:"vifs"`
	MaxVIFs    int          `json:"max_vifs"`
	Interfaces int          `json:"interfaces"` // watched: where IGMP or PIM runs
	// Unroutable are sources seen sending with a TTL the kernel does not forward.
	Unroutable []UnroutableSource `json:"unroutable"`
	Routes     int                `json:"routes"`
	Counters   map[string]uint64  `json:"counters"`
	Warnings   []string           `json:"warnings"`
}

// UnroutableSource is a sender whose packets no router forwards, and why.
type UnroutableSource struct {
	Source    string `json:"source"`
	Group     string `json:"group"`
	Interface string `json:"interface"`
	TTL       int    `json:"ttl"`
	SinceS    int64  `json:"since_s"` // seconds since its first such packet
}

// Reload is the reply of POST /v1/reload.
type Reload struct {
	Changed bool     `json:"changed"`
	Summary []string `json:"summary"`
	// Restart is set when the program on disk was replaced: the reload is a
	// restart in place, which reads the config anew too.
	Restart *Restart `json:"restart,omitempty"`
}

// Restart is the reply of POST /v1/restart: the version handing over and the one
// the program on disk reports, which runs next.
type Restart struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Started is when the program handing over started (Status.Started): the
	// next answers with another.
	Started string `json:"started"`
}

// RestartHold is what a router that adopted the table in a restart in place still
// holds until its protocols want it again.
type RestartHold struct {
	From     string `json:"from"` // the version that handed over
	Entries  int    `json:"entries"`
	ExpiresS int64  `json:"expires_s"`
}

// Error is the body of every non-2xx reply.
type Error struct {
	Error string `json:"error"`
}

// More paths of the control API.
const (
	PathIGMPGroups   = "/v1/igmp/groups"
	PathPIMNeighbors = "/v1/pim/neighbors"
	PathPIMRP        = "/v1/pim/rp"
	PathPIMJoins     = "/v1/pim/joins"
	PathFabric       = "/v1/fabric"
	PathRPF          = "/v1/rpf"
)

// Query parameters. Some views take them to answer for part of their table only:
// routes, mfc and pim/joins take source and group (GET /v1/routes?group=239.1.1.1),
// igmp/groups takes interface and group; rpf needs address. A view refuses a
// parameter it does not take, a repeated one and a malformed one with 400.
const (
	ParamSource    = "source"
	ParamGroup     = "group"
	ParamInterface = "interface"
	ParamAddress   = "address"
)

// ParseGroup reads a group: an IPv4 multicast address.
func ParseGroup(s string) (netip.Addr, error) {
	a, err := parseIPv4(s)
	if err == nil && !a.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("%s is not a multicast group address", s)
	}
	return a, err
}

// ParseUnicast reads the address of a source or a router: IPv4, neither multicast
// nor 0.0.0.0.
func ParseUnicast(s string) (netip.Addr, error) {
	a, err := parseIPv4(s)
	switch {
	case err != nil:
		return netip.Addr{}, err
	case a.IsMulticast():
		return netip.Addr{}, fmt.Errorf("%s is a multicast group address, not a source's or a router's", s)
	case a.IsUnspecified():
		return netip.Addr{}, fmt.Errorf("%s is not a source's or a router's address", s)
	}
	return a, nil
}

func parseIPv4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return a, nil
}

// RPF is the reply of GET /v1/rpf?address=A: the reverse path to an address, which
// the router's joins towards it follow and its packets must arrive by.
type RPF struct {
	Address   string `json:"address"`
	Interface string `json:"interface"` // "" when there is no way back
	Neighbor  string `json:"neighbor"`  // the PIM neighbour joins go to; "" when there is none, as on a connected subnet
	// Origin says where the path comes from: "connected" (a subnet of one of the
	// interfaces), "fabric" (a prefix a node on the fabric advertises), "static" (a
	// [[pim.rpf]] entry), "fib" (the kernel's unicast routes), "local" (an address
	// of this host) or "unreachable" (no route at all).
	Origin string `json:"origin"`
	Prefix string `json:"prefix"` // the prefix that matched; "" when none did
	// The kernel's route, when the path comes from the FIB: its next hop ("" for a
	// direct route), who installed it (kernel, boot, static, dhcp, ospf, bgp, ...),
	// its metric, and the preference the router's asserts claim for it.
	Gateway    string  `json:"gateway,omitempty"`
	Protocol   string  `json:"protocol,omitempty"`
	Metric     *uint32 `json:"metric,omitempty"`
	Preference *uint32 `json:"preference,omitempty"`
}

// Fabric is the reply of GET /v1/fabric: the node fabric and its peers.
type Fabric struct {
	Enabled     bool         `json:"enabled"`
	Interface   string       `json:"interface"`
	Self        string       `json:"self"` // this node's address; "" while it is not among the peers
	Underlay    string       `json:"underlay"`
	VNI         int          `json:"vni"`
	Port        int          `json:"port"`
	MTU         int          `json:"mtu"`
	Replication string       `json:"replication"` // "selective" or "all"
	RP          string       `json:"rp"`          // the RP the nodes agreed on; "" when RPs are configured
	Prefixes    []string     `json:"prefixes"`    // the sources this node advertises
	Peers       []FabricPeer `json:"peers"`
	Error       string       `json:"error,omitempty"` // the last failure, if any
}

// FabricPeer is one other node of the fabric.
type FabricPeer struct {
	Address  string   `json:"address"`
	Origin   string   `json:"origin"` // "config" or "dns"
	Name     string   `json:"name,omitempty"`
	Neighbor bool     `json:"neighbor"` // a live PIM neighbour on the fabric
	Groups   []string `json:"groups"`   // the groups it joined, which it is sent
	Prefixes []string `json:"prefixes"` // the sources it says are behind it
}

// IGMPGroup is one group membership learned on one interface.
type IGMPGroup struct {
	Interface string   `json:"interface"`
	Group     string   `json:"group"`
	Mode      string   `json:"mode"`    // "include" or "exclude"
	Sources   []string `json:"sources"` // included or excluded, after the mode
	Version   int      `json:"version"` // the oldest host version heard: 1, 2 or 3
	Reporter  string   `json:"reporter"`
	ExpiresS  int64    `json:"expires_s"` // 0 when the membership does not expire
}

// IGMPGroups is the reply of GET /v1/igmp/groups.
type IGMPGroups struct {
	Groups []IGMPGroup `json:"groups"`
}

// PIMNeighbor is one PIM router heard on one interface.
type PIMNeighbor struct {
	Interface    string `json:"interface"`
	Address      string `json:"address"`
	UptimeS      int64  `json:"uptime_s"`
	ExpiresS     int64  `json:"expires_s"` // 0 when the neighbor announced an infinite holdtime
	DRPriority   uint32 `json:"dr_priority"`
	GenerationID uint32 `json:"generation_id"`
	DR           bool   `json:"dr"` // the neighbor is the interface's designated router
}

// PIMNeighbors is the reply of GET /v1/pim/neighbors.
type PIMNeighbors struct {
	Neighbors []PIMNeighbor `json:"neighbors"`
}

// PIMJoin is the join/prune state of one (*,G) or (S,G).
type PIMJoin struct {
	Source           string          `json:"source"` // "*" for (*,G)
	Group            string          `json:"group"`
	Upstream         string          `json:"upstream"`          // interface our joins leave by; "" when not joined
	UpstreamNeighbor string          `json:"upstream_neighbor"` // the neighbour they go to
	Joined           bool            `json:"joined"`
	Keepalive        bool            `json:"keepalive"` // (S,G): the source's traffic flows
	SPT              bool            `json:"spt"`       // (S,G): accepted along the source's tree
	Register         string          `json:"register"`  // first-hop DR: "join", "join-pending", "prune"; "" otherwise
	Downstream       []PIMDownstream `json:"downstream"`
	Local            []string        `json:"local"` // interfaces with IGMP members, as DR
	Asserts          []PIMAssert     `json:"asserts"`
	UptimeS          int64           `json:"uptime_s"`
}

// PIMDownstream is one interface's join/prune state for an entry.
type PIMDownstream struct {
	Interface string `json:"interface"`
	State     string `json:"state"` // "join", "prune-pending", "prune"
	RPT       bool   `json:"rpt"`   // an (S,G,rpt) prune: the source is pruned off the shared tree there
	ExpiresS  int64  `json:"expires_s"`
}

// PIMAssert is the assert state of an (S,G) on one interface.
type PIMAssert struct {
	Interface string `json:"interface"`
	Winner    string `json:"winner"`
	WeWin     bool   `json:"we_win"`
	ExpiresS  int64  `json:"expires_s"`
}

// PIMJoins is the reply of GET /v1/pim/joins.
type PIMJoins struct {
	Joins []PIMJoin `json:"joins"`
}

// RPMapping says which rendezvous point serves a range of groups.
type RPMapping struct {
	GroupRange string `json:"group_range"`
	RP         string `json:"rp"`
	Source     string `json:"source"` // where the mapping came from, e.g. "static"
}

// RPMappings is the reply of GET /v1/pim/rp.
type RPMappings struct {
	RP []RPMapping `json:"rp"`
}
