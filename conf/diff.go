package conf

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Diff describes what changes from old to new, one human-readable line per
// change, for the reload log. It is empty when nothing that matters changed:
// the order of groups, prefixes and oifs within a list carries no meaning and
// is ignored, while the order of [[interface]] blocks (first match wins) is not.
func Diff(old, new *Config) []string {
	var d differ
	d.value("file:", fileName(old.File), fileName(new.File))

	d.value("router.table:", old.Router.Table, new.Router.Table)
	d.value("router.idle-timeout:", old.Router.IdleTimeout, new.Router.IdleTimeout)
	d.value("router.resync-interval:", old.Router.ResyncInterval, new.Router.ResyncInterval)
	d.value("router.max-learned-routes:", old.Router.MaxLearned, new.Router.MaxLearned)

	d.interfaces(old.Interfaces, new.Interfaces)

	d.value("igmp.version:", old.IGMP.Version, new.IGMP.Version)
	d.value("igmp.query-interval:", old.IGMP.QueryInterval, new.IGMP.QueryInterval)
	d.value("igmp.query-response-interval:", old.IGMP.QueryResponseInterval, new.IGMP.QueryResponseInterval)
	d.value("igmp.last-member-query-interval:", old.IGMP.LastMemberQueryInterval, new.IGMP.LastMemberQueryInterval)
	d.value("igmp.robustness:", old.IGMP.Robustness, new.IGMP.Robustness)
	d.set("igmp.allowed-groups:", prefixStrings(old.IGMP.AllowedGroups), prefixStrings(new.IGMP.AllowedGroups))
	d.value("igmp.max-groups:", old.IGMP.MaxGroups, new.IGMP.MaxGroups)
	d.value("igmp.max-sources:", old.IGMP.MaxSources, new.IGMP.MaxSources)
	d.value("igmp.max-sources-per-interface:", old.IGMP.MaxSourcesPerInterface, new.IGMP.MaxSourcesPerInterface)

	d.value("pim.hello-interval:", old.PIM.HelloInterval, new.PIM.HelloInterval)
	d.value("pim.join-prune-interval:", old.PIM.JoinPruneInterval, new.PIM.JoinPruneInterval)
	d.value("pim.ssm-range:", old.PIM.SSMRange, new.PIM.SSMRange)
	d.value("pim.spt-switchover:", old.PIM.SPTSwitchover, new.PIM.SPTSwitchover)
	d.set("pim.register-accept:", prefixStrings(old.PIM.RegisterAccept), prefixStrings(new.PIM.RegisterAccept))
	d.value("pim.max-holdtime:", old.PIM.MaxHoldtime, new.PIM.MaxHoldtime)
	d.value("pim.max-neighbors:", old.PIM.MaxNeighbors, new.PIM.MaxNeighbors)
	d.value("pim.max-joins:", old.PIM.MaxJoins, new.PIM.MaxJoins)
	d.value("pim.max-joins-per-neighbor:", old.PIM.MaxJoinsPerNeighbor, new.PIM.MaxJoinsPerNeighbor)
	d.value("pim.max-registered-sources:", old.PIM.MaxRegisteredSources, new.PIM.MaxRegisteredSources)
	d.rps(old.PIM.RPs, new.PIM.RPs)
	d.set("pim.rpf:", rpfStrings(old.PIM.RPFs), rpfStrings(new.PIM.RPFs))

	d.statics(old.Static, new.Static)

	d.set("fabric.peers:", old.Fabric.Peers, new.Fabric.Peers)
	d.value("fabric.vni:", old.Fabric.VNI, new.Fabric.VNI)
	d.value("fabric.port:", old.Fabric.Port, new.Fabric.Port)
	d.value("fabric.interface:", old.Fabric.Interface, new.Fabric.Interface)
	d.value("fabric.mtu:", old.Fabric.MTU, new.Fabric.MTU)
	d.value("fabric.underlay:", old.Fabric.Underlay, new.Fabric.Underlay)
	d.value("fabric.dns-refresh:", old.Fabric.DNSRefresh, new.Fabric.DNSRefresh)
	d.value("fabric.replication:", old.Fabric.Replication, new.Fabric.Replication)

	d.value("control.socket:", old.Control.Socket, new.Control.Socket)
	d.value("control.metrics:", old.Control.Metrics, new.Control.Metrics)
	return d.lines
}

type differ struct{ lines []string }

func (d *differ) add(format string, args ...any) {
	d.lines = append(d.lines, fmt.Sprintf(format, args...))
}

// value compares two values of the same comparable type; label starts the
// line, as in "igmp.version:" or "interface eth*: pim".
func (d *differ) value(label string, old, new any) {
	if old != new {
		d.add("%s %s -> %s", label, show(old), show(new))
	}
}

// set compares two lists as sets.
func (d *differ) set(label string, old, new []string) {
	if !sameSet(old, new) {
		d.add("%s %s -> %s", label, showList(old), showList(new))
	}
}

func (d *differ) interfaces(old, new []Interface) {
	newByMatch := map[string]Interface{}
	for _, ifc := range new {
		newByMatch[ifc.Match] = ifc
	}
	oldByMatch := map[string]bool{}
	var oldOrder, newOrder []string
	for _, o := range old {
		oldByMatch[o.Match] = true
		n, ok := newByMatch[o.Match]
		if !ok {
			d.add("interface %s: removed", o.Match)
			continue
		}
		oldOrder = append(oldOrder, o.Match)
		key := "interface " + o.Match
		d.value(key+": disabled", o.Disabled, n.Disabled)
		d.value(key+": igmp", o.IGMP, n.IGMP)
		d.value(key+": pim", o.PIM, n.PIM)
		d.value(key+": dr-priority", o.DRPriority, n.DRPriority)
		d.set(key+": allowed-neighbors", prefixStrings(o.AllowedNeighbors), prefixStrings(n.AllowedNeighbors))
	}
	for _, n := range new {
		if oldByMatch[n.Match] {
			newOrder = append(newOrder, n.Match)
		} else {
			d.add("interface %s: added", n.Match)
		}
	}
	if !slices.Equal(oldOrder, newOrder) {
		d.add("interface order: %s -> %s", showList(oldOrder), showList(newOrder))
	}
}

func (d *differ) rps(old, new []RP) {
	newByAddr := map[netip.Addr]RP{}
	for _, rp := range new {
		newByAddr[rp.Address] = rp
	}
	oldByAddr := map[netip.Addr]bool{}
	for _, o := range old {
		oldByAddr[o.Address] = true
		n, ok := newByAddr[o.Address]
		if !ok {
			d.add("pim.rp %s: removed", o.Address)
			continue
		}
		d.set(fmt.Sprintf("pim.rp %s: groups", o.Address), prefixStrings(o.Groups), prefixStrings(n.Groups))
	}
	for _, n := range new {
		if !oldByAddr[n.Address] {
			d.add("pim.rp %s: added", n.Address)
		}
	}
}

func (d *differ) statics(old, new []Static) {
	newByKey := map[string]Static{}
	for _, s := range new {
		newByKey[s.Key()] = s
	}
	oldByKey := map[string]bool{}
	for _, o := range old {
		oldByKey[o.Key()] = true
		n, ok := newByKey[o.Key()]
		if !ok {
			d.add("static %s: removed", o.Key())
			continue
		}
		d.value("static "+o.Key()+": iif", o.IIF, n.IIF)
		d.set("static "+o.Key()+": oifs", o.OIFs, n.OIFs)
	}
	for _, n := range new {
		if !oldByKey[n.Key()] {
			d.add("static %s: added", n.Key())
		}
	}
}

// rpfStrings writes each [[pim.rpf]] as one comparable line.
func rpfStrings(list []RPF) []string {
	out := make([]string, len(list))
	for i, r := range list {
		out[i] = r.Prefix.String() + " via"
		if r.Neighbor.IsValid() {
			out[i] += " " + r.Neighbor.String()
		}
		if r.Interface != "" {
			out[i] += " " + r.Interface
		}
	}
	return out
}

func fileName(file string) string {
	if file == "" {
		return "(embedded defaults)"
	}
	return file
}

func show(v any) string {
	switch v := v.(type) {
	case time.Duration:
		return formatDuration(v)
	case string:
		if v == "" {
			return `""`
		}
		return v
	}
	return fmt.Sprint(v)
}

func showList(list []string) string {
	return "[" + strings.Join(list, ", ") + "]"
}

func prefixStrings(list []netip.Prefix) []string {
	out := make([]string, len(list))
	for i, p := range list {
		out[i] = p.String()
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
