// Package conf is mrouterd's configuration: the TOML schema, the embedded
// defaults, validation with file:line errors, and the diff logged on reload.
package conf

import (
	_ "embed"
	"net/netip"
	"os"
	"path"
	"slices"
	"sync"
	"time"
)

// DefaultPath is the config file read when none is named on the command line.
const DefaultPath = "/etc/mrouterd/mrouterd.toml"

// Config is a complete, validated configuration: every default is filled in.
type Config struct {
	File       string // path loaded from; "" for embedded defaults
	Router     Router
	Interfaces []Interface
	IGMP       IGMP
	PIM        PIM
	Static     []Static
	Fabric     Fabric
	Control    Control
}

// Router holds settings of the routing core.
type Router struct {
	Table          uint32        // kernel multicast routing table (MRT_TABLE)
	IdleTimeout    time.Duration // learned (S,G) entries without traffic for this long are removed
	ResyncInterval time.Duration // period of the kernel MFC reconcile
	MaxLearned     int           // routes learned from traffic; beyond it new ones are refused, counted
}

// Interface is one [[interface]] block.
type Interface struct {
	Match      string // interface name or path.Match glob
	Disabled   bool
	IGMP       bool
	PIM        bool
	DRPriority uint32
	// AllowedNeighbors limits the PIM routers whose Hellos are accepted; empty: any
	// router on the link.
	AllowedNeighbors []netip.Prefix
}

// IGMP holds the querier settings shared by all interfaces.
type IGMP struct {
	Version                 int
	Robustness              int
	MaxGroups               int // per interface
	MaxSources              int // per group; beyond it a record's new sources are refused, counted
	MaxSourcesPerInterface  int // all groups' together; beyond it likewise
	QueryInterval           time.Duration
	QueryResponseInterval   time.Duration
	LastMemberQueryInterval time.Duration
	AllowedGroups           []netip.Prefix
}

// PIM holds the PIM-SM settings.
type PIM struct {
	HelloInterval     time.Duration
	JoinPruneInterval time.Duration
	SSMRange          netip.Prefix
	SPTSwitchover     string // "immediate" or "never"
	RPs               []RP
	RPFs              []RPF
	RegisterAccept    []netip.Prefix // senders an RP accepts registers from; empty: see the defaults file
	MaxHoldtime       time.Duration  // longest a neighbour's Hello is believed for, whatever it advertises

	// Limits: beyond each, new state is refused and counted; what exists stays.
	MaxNeighbors         int // per interface
	MaxJoins             int // (S,G) and (*,G) entries with downstream join state, in all
	MaxJoinsPerNeighbor  int // entries one downstream neighbour's joins hold
	MaxRegisteredSources int // sources registered with us as RP
}

// RP is a static rendezvous point and the groups it serves.
type RP struct {
	Address netip.Addr
	Groups  []netip.Prefix
}

// RPF is a static multicast route ([[pim.rpf]]): reverse paths towards sources and
// RPs in Prefix go through Neighbor, or out Interface, not where the unicast FIB
// points. It is for networks whose unicast and multicast paths differ, like
// FRR's and Cisco's "ip mroute".
type RPF struct {
	Prefix    netip.Prefix
	Neighbor  netip.Addr // invalid when omitted: any neighbour out Interface
	Interface string     // "" when omitted: the interface Neighbor is on
}

// Fabric is the node fabric ([fabric]): one VXLAN interface that joins the nodes
// of a cluster whose network carries no multicast, replicating head-end to peers.
type Fabric struct {
	// Peers are the nodes' underlay addresses and "dns:NAME" entries, re-resolved
	// every DNSRefresh; the node finds itself in the list. Empty: no fabric.
	Peers       []string
	VNI         int
	Port        int    // VXLAN UDP port
	Interface   string // the VXLAN interface's name
	MTU         int    // 0: the underlay's MTU less the encapsulation
	Underlay    string // interface the fabric's packets leave by; "": the route to the peers'
	DNSRefresh  time.Duration
	Replication string // "selective": a group only to the peers that joined it; "all"
}

// Enabled reports whether the node joins a fabric.
func (f Fabric) Enabled() bool { return len(f.Peers) > 0 }

// Static is a static multicast route.
type Static struct {
	Source netip.Addr // invalid (zero) when omitted: a (*,G) template
	Group  netip.Addr
	IIF    string
	OIFs   []string
}

// Key identifies a static route across reloads: "S,G", or "*,G" for a (*,G) route.
func (s Static) Key() string {
	src := "*"
	if s.Source.IsValid() {
		src = s.Source.String()
	}
	return src + "," + s.Group.String()
}

// Control holds where the control API and metrics are served.
type Control struct {
	Socket  string // unix socket of the control API
	Metrics string // host:port for /metrics over TCP; "" for none
}

// Values of keys inside [[interface]] and [[pim.rp]] blocks when omitted; the
// defaults file cannot hold them because it has no blocks.
const (
	defaultIGMP       = true
	defaultPIM        = true
	defaultDRPriority = 1
)

var (
	multicastRange = netip.MustParsePrefix("224.0.0.0/4")
	linkLocalRange = netip.MustParsePrefix("224.0.0.0/24")
)

//go:embed defaults.toml
var defaultsTOML []byte

// embeddedDefaults parses the defaults file once; every Parse starts from a copy.
var embeddedDefaults = sync.OnceValue(func() *Config {
	c, err := parseOnto(&Config{}, "defaults.toml", defaultsTOML)
	if err != nil {
		// The file is compiled in and covered by the tests.
		panic("conf: embedded defaults: " + err.Error())
	}
	c.File = ""
	return c
})

// Default returns the configuration used when there is no config file. Each call
// returns a fresh copy the caller may modify.
func Default() *Config {
	return embeddedDefaults().clone()
}

func (c *Config) clone() *Config {
	out := *c
	out.Interfaces = slices.Clone(c.Interfaces)
	for i := range out.Interfaces {
		out.Interfaces[i].AllowedNeighbors = slices.Clone(out.Interfaces[i].AllowedNeighbors)
	}
	out.IGMP.AllowedGroups = slices.Clone(c.IGMP.AllowedGroups)
	out.PIM.RegisterAccept = slices.Clone(c.PIM.RegisterAccept)
	out.PIM.RPs = slices.Clone(c.PIM.RPs)
	for i := range out.PIM.RPs {
		out.PIM.RPs[i].Groups = slices.Clone(out.PIM.RPs[i].Groups)
	}
	out.PIM.RPFs = slices.Clone(c.PIM.RPFs)
	out.Fabric.Peers = slices.Clone(c.Fabric.Peers)
	out.Static = slices.Clone(c.Static)
	for i := range out.Static {
		out.Static[i].OIFs = slices.Clone(out.Static[i].OIFs)
	}
	return &out
}

// Load reads and parses the config file at path. A missing file is an error that
// matches os.ErrNotExist.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses a config file's contents over the defaults; name is used in
// error messages and kept as Config.File. All problems are reported together,
// one per line, each naming name:line: key.
func Parse(name string, data []byte) (*Config, error) {
	return parseOnto(Default(), name, data)
}

// InterfaceFor returns the settings for the interface called name: those of the
// first [[interface]] block whose match is the name or a glob matching it.
// ok is false when no block matches or the matching block is disabled. Without
// any [[interface]] block every interface matches with IGMP and PIM on.
func (c *Config) InterfaceFor(name string) (Interface, bool) {
	if len(c.Interfaces) == 0 {
		return Interface{Match: "*", IGMP: defaultIGMP, PIM: defaultPIM, DRPriority: defaultDRPriority}, true
	}
	for _, ifc := range c.Interfaces {
		if ifc.Match == name || globMatch(ifc.Match, name) {
			return ifc, !ifc.Disabled
		}
	}
	return Interface{}, false
}

func globMatch(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}

// validGlob reports whether pattern is well-formed; path.Match checks the
// whole pattern even when the name does not match.
func validGlob(pattern string) bool {
	_, err := path.Match(pattern, "")
	return err == nil
}
