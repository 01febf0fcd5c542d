package conf

import (
	"fmt"
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"
)

// reporter records one problem with the setting named key.
type reporter func(key, format string, args ...any)

// Protocol limits on timer values, so that the protocol packages never have to
// send a value its field cannot carry.
const (
	// IGMPv3 QQIC (RFC 3376 4.1.7): at most 0x1f << 10 seconds.
	maxQueryInterval = 31744 * time.Second
	// IGMPv2 Max Response Time: one byte in tenths of a second.
	maxResponseV2 = 25500 * time.Millisecond
	// IGMPv3 Max Resp Code (RFC 3376 4.1.1): at most 0x1f << 10 tenths of a second.
	maxResponseV3 = 3174400 * time.Millisecond
	minResponse   = 100 * time.Millisecond
	// PIM holdtimes are 3.5 times the interval, in a 16-bit count of seconds
	// where 0 means "gone now" and 0xffff "forever".
	minPIMInterval = time.Second
	maxPIMInterval = 18724 * time.Second
	maxPIMHoldtime = 0xfffe * time.Second // 0xffff means forever
	maxRobustness  = 7                    // the IGMPv3 QRV field is 3 bits
	// sun_path holds 108 bytes including the terminating NUL.
	maxSocketPath = 107
	// IFNAMSIZ is 16 including the terminating NUL.
	maxIfName = 15
)

// validate checks what the TOML types cannot express.
func validate(c *Config, fail reporter) {
	fail.positive("router.idle-timeout", c.Router.IdleTimeout)
	fail.positive("router.resync-interval", c.Router.ResyncInterval)
	fail.atLeastOne("router.max-learned-routes", c.Router.MaxLearned)
	validateInterfaces(c.Interfaces, fail)
	validateIGMP(&c.IGMP, fail)
	validatePIM(&c.PIM, fail)
	validateStatic(c.Static, fail)
	validateFabric(&c.Fabric, fail)
	validateControl(&c.Control, fail)
}

func validateInterfaces(list []Interface, fail reporter) {
	first := map[string]int{}
	for i, ifc := range list {
		key := indexKey("interface", i) + ".match"
		switch j, seen := first[ifc.Match]; {
		case ifc.Match == "":
			fail(key, "empty")
		case !validGlob(ifc.Match):
			fail(key, "%s is not a valid glob", quote(ifc.Match))
		case seen:
			fail(key, "%s repeats interface[%d], which always matches first", quote(ifc.Match), j)
		default:
			first[ifc.Match] = i
		}
	}
}

func validateIGMP(g *IGMP, fail reporter) {
	if g.Version != 2 && g.Version != 3 {
		fail("igmp.version", "%d is not supported; use 2 or 3", g.Version)
	}
	if g.Robustness < 1 || g.Robustness > maxRobustness {
		fail("igmp.robustness", "%d is out of range 1..%d", g.Robustness, maxRobustness)
	}
	fail.atLeastOne("igmp.max-groups", g.MaxGroups)
	fail.atLeastOne("igmp.max-sources", g.MaxSources)
	fail.atLeastOne("igmp.max-sources-per-interface", g.MaxSourcesPerInterface)
	maxResponse, why := maxResponseV3, "the longest an IGMPv3 query can carry"
	if g.Version == 2 {
		maxResponse, why = maxResponseV2, "the longest an IGMPv2 query can carry"
	}
	fail.within("igmp.query-interval", g.QueryInterval, time.Second, maxQueryInterval, "the range an IGMPv3 query can carry")
	fail.within("igmp.query-response-interval", g.QueryResponseInterval, minResponse, maxResponse, why)
	fail.within("igmp.last-member-query-interval", g.LastMemberQueryInterval, minResponse, maxResponse, why)
	if g.QueryResponseInterval >= g.QueryInterval && g.QueryInterval > 0 {
		fail("igmp.query-response-interval", "%s must be less than igmp.query-interval (%s)",
			formatDuration(g.QueryResponseInterval), formatDuration(g.QueryInterval))
	}
	if len(g.AllowedGroups) == 0 {
		fail("igmp.allowed-groups", `empty, so every join would be ignored; allow all with ["224.0.0.0/4"]`)
	}
	fail.multicastPrefixes("igmp.allowed-groups", g.AllowedGroups)
}

func validatePIM(p *PIM, fail reporter) {
	const why = "so that the 3.5 times longer holdtime fits PIM's 16-bit seconds"
	fail.within("pim.hello-interval", p.HelloInterval, minPIMInterval, maxPIMInterval, why)
	fail.within("pim.join-prune-interval", p.JoinPruneInterval, minPIMInterval, maxPIMInterval, why)
	fail.within("pim.max-holdtime", p.MaxHoldtime, minPIMInterval, maxPIMHoldtime,
		"the finite holdtimes a Hello can advertise")
	fail.multicastPrefix("pim.ssm-range", p.SSMRange)
	fail.atLeastOne("pim.max-neighbors", p.MaxNeighbors)
	fail.atLeastOne("pim.max-joins", p.MaxJoins)
	fail.atLeastOne("pim.max-joins-per-neighbor", p.MaxJoinsPerNeighbor)
	fail.atLeastOne("pim.max-registered-sources", p.MaxRegisteredSources)
	if p.SPTSwitchover != "immediate" && p.SPTSwitchover != "never" {
		fail("pim.spt-switchover", `must be "immediate" or "never", got %s`, quote(p.SPTSwitchover))
	}
	validateRPFs(p.RPFs, fail)
	first := map[netip.Addr]int{}
	for i, rp := range p.RPs {
		key := indexKey("pim.rp", i)
		switch j, seen := first[rp.Address]; {
		case !rp.Address.IsValid():
			fail(key+".address", "missing")
		case !isUnicast(rp.Address):
			fail(key+".address", "%s is not a unicast address", rp.Address)
		case seen:
			fail(key+".address", "%s repeats pim.rp[%d]; list all its groups there", rp.Address, j)
		default:
			first[rp.Address] = i
		}
		if len(rp.Groups) == 0 {
			fail(key+".groups", `empty; omit it to serve all groups`)
		}
		fail.multicastPrefixes(key+".groups", rp.Groups)
	}
}

func validateRPFs(list []RPF, fail reporter) {
	first := map[netip.Prefix]int{}
	for i, r := range list {
		key := indexKey("pim.rpf", i)
		if j, seen := first[r.Prefix]; seen && r.Prefix.IsValid() {
			fail(key+".prefix", "%s repeats pim.rpf[%d]", r.Prefix, j)
		} else {
			first[r.Prefix] = i
		}
		switch {
		case !r.Neighbor.IsValid() && r.Interface == "":
			fail(key, "give a neighbor, an interface, or both")
		case r.Neighbor.IsValid() && !isUnicast(r.Neighbor):
			fail(key+".neighbor", "%s is not a unicast address", r.Neighbor)
		}
		if r.Interface != "" {
			if why := ifNameProblem(r.Interface); why != "" {
				fail(key+".interface", "%s", why)
			}
		}
	}
}

func validateFabric(f *Fabric, fail reporter) {
	for i, p := range f.Peers {
		if why := peerProblem(p); why != "" {
			fail(indexKey("fabric.peers", i), "%s", why)
		}
	}
	if f.VNI < 1 || f.VNI > 1<<24-1 {
		fail("fabric.vni", "%d is out of range 1..%d, the 24 bits of a VXLAN network identifier", f.VNI, 1<<24-1)
	}
	if f.Port < 1 || f.Port > 65535 {
		fail("fabric.port", "%d is not a UDP port", f.Port)
	}
	if why := ifNameProblem(f.Interface); why != "" {
		fail("fabric.interface", "%s", why)
	}
	// 68 is the least an IPv4 link may carry (RFC 791); 65535 is the most a VXLAN
	// device takes.
	if f.MTU != 0 && (f.MTU < 68 || f.MTU > 65535) {
		fail("fabric.mtu", "%d is outside 68..65535; 0 chooses it from the underlay", f.MTU)
	}
	if f.Underlay != "" {
		if why := ifNameProblem(f.Underlay); why != "" {
			fail("fabric.underlay", "%s", why)
		}
	}
	fail.positive("fabric.dns-refresh", f.DNSRefresh)
	if f.Replication != "selective" && f.Replication != "all" {
		fail("fabric.replication", `must be "selective" or "all", got %s`, quote(f.Replication))
	}
}

// peerProblem checks one fabric peer: an IPv4 unicast address or dns:NAME.
func peerProblem(p string) string {
	if name, ok := strings.CutPrefix(p, "dns:"); ok {
		if !validHostname(name) {
			return fmt.Sprintf("%s is not a valid DNS name", quote(name))
		}
		return ""
	}
	a, err := netip.ParseAddr(p)
	if err != nil || !isUnicast(a) {
		return fmt.Sprintf(`%s is neither an IPv4 unicast address nor "dns:NAME"`, quote(p))
	}
	return ""
}

func validateStatic(list []Static, fail reporter) {
	first := map[string]int{}
	for i, s := range list {
		key := indexKey("static", i)
		switch {
		case !s.Group.IsValid():
			fail(key+".group", "missing")
		case !s.Group.IsMulticast():
			fail(key+".group", "%s is not a multicast address", s.Group)
		case linkLocalRange.Contains(s.Group):
			fail(key+".group", "%s is link-local (%s), which is never routed", s.Group, linkLocalRange)
		}
		if s.Source.IsValid() && !isUnicast(s.Source) {
			fail(key+".source", "%s is not a unicast address", s.Source)
		}
		if why := ifNameProblem(s.IIF); why != "" {
			fail(key+".iif", "%s", why)
		}
		if len(s.OIFs) == 0 {
			fail(key+".oifs", "empty")
		}
		seen := map[string]bool{}
		for j, oif := range s.OIFs {
			oifKey := indexKey(key+".oifs", j)
			switch why := ifNameProblem(oif); {
			case why != "":
				fail(oifKey, "%s", why)
			case oif == s.IIF:
				fail(oifKey, "%s is also the iif", quote(oif))
			case seen[oif]:
				fail(oifKey, "%s is listed twice", quote(oif))
			}
			seen[oif] = true
		}
		if !s.Group.IsValid() {
			continue
		}
		if j, dup := first[s.Key()]; dup {
			fail(key, "repeats static[%d] (%s)", j, s.Key())
		} else {
			first[s.Key()] = i
		}
	}
}

func validateControl(c *Control, fail reporter) {
	switch s := c.Socket; {
	case s == "":
		fail("control.socket", "empty")
	case !path.IsAbs(s):
		fail("control.socket", "%s is not an absolute path", quote(s))
	case len(s) > maxSocketPath:
		fail("control.socket", "%s is longer than %d bytes, the limit for a unix socket path", quote(s), maxSocketPath)
	case strings.ContainsRune(s, 0):
		fail("control.socket", "%s contains a NUL byte", quote(s))
	}
	if c.Metrics != "" {
		if why := hostPortProblem(c.Metrics); why != "" {
			fail("control.metrics", "%s", why)
		}
	}
}

// atLeastOne checks a limit: zero would refuse everything.
func (fail reporter) atLeastOne(key string, n int) {
	if n < 1 {
		fail(key, "must be at least 1, got %d", n)
	}
}

func (fail reporter) positive(key string, d time.Duration) {
	if d <= 0 {
		fail(key, "must be greater than zero, got %s", formatDuration(d))
	}
}

func (fail reporter) within(key string, d, lo, hi time.Duration, why string) {
	if d <= 0 {
		fail.positive(key, d)
	} else if d < lo || d > hi {
		fail(key, "%s is outside %s..%s, %s", formatDuration(d), formatDuration(lo), formatDuration(hi), why)
	}
}

func (fail reporter) multicastPrefix(key string, p netip.Prefix) {
	if !p.IsValid() {
		fail(key, "missing")
	} else if p.Bits() < multicastRange.Bits() || !multicastRange.Contains(p.Addr()) {
		fail(key, "%s is not inside %s", p, multicastRange)
	}
}

func (fail reporter) multicastPrefixes(key string, list []netip.Prefix) {
	for i, p := range list {
		fail.multicastPrefix(indexKey(key, i), p)
	}
}

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// isUnicast reports whether a can be a host's or router's own IPv4 address.
func isUnicast(a netip.Addr) bool {
	return a.Is4() && !a.IsMulticast() && !a.IsUnspecified() && !a.IsLoopback() && a != limitedBroadcast
}

// ifNameProblem applies the kernel's rules for interface names (dev_valid_name).
func ifNameProblem(name string) string {
	switch {
	case name == "":
		return "empty"
	case len(name) > maxIfName:
		return fmt.Sprintf("%s is longer than %d bytes, the kernel's limit for interface names", quote(name), maxIfName)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n\v\f\r\x00"):
		return fmt.Sprintf("%s is not a valid interface name", quote(name))
	}
	return ""
}

func hostPortProblem(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf(`%s is not host:port, such as "127.0.0.1:9591"`, quote(s))
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Sprintf("%s: the port must be a number from 1 to 65535", quote(s))
	}
	if _, err := netip.ParseAddr(host); host != "" && err != nil && !validHostname(host) {
		return fmt.Sprintf("%s: %s is neither an IP address nor a host name", quote(s), quote(host))
	}
	return ""
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
