package conf

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// TOML renders the effective configuration, every default filled in, in the
// config file's own syntax; Parse reads it back to an equal Config.
func (c *Config) TOML() string {
	var w tomlWriter
	w.table("router")
	w.set("table", strconv.FormatUint(uint64(c.Router.Table), 10))
	w.set("idle-timeout", quote(formatDuration(c.Router.IdleTimeout)))
	w.set("resync-interval", quote(formatDuration(c.Router.ResyncInterval)))
	w.set("max-learned-routes", strconv.Itoa(c.Router.MaxLearned))

	if len(c.Interfaces) == 0 {
		w.line("")
		w.line("# No [[interface]] blocks: every multicast-capable interface except loopback runs IGMP and PIM.")
	}
	for _, ifc := range c.Interfaces {
		w.table("[interface]")
		w.set("match", quote(ifc.Match))
		w.set("disabled", strconv.FormatBool(ifc.Disabled))
		w.set("igmp", strconv.FormatBool(ifc.IGMP))
		w.set("pim", strconv.FormatBool(ifc.PIM))
		w.set("dr-priority", strconv.FormatUint(uint64(ifc.DRPriority), 10))
		w.set("allowed-neighbors", prefixArray(ifc.AllowedNeighbors))
	}

	w.table("igmp")
	w.set("version", strconv.Itoa(c.IGMP.Version))
	w.set("query-interval", quote(formatDuration(c.IGMP.QueryInterval)))
	w.set("query-response-interval", quote(formatDuration(c.IGMP.QueryResponseInterval)))
	w.set("last-member-query-interval", quote(formatDuration(c.IGMP.LastMemberQueryInterval)))
	w.set("robustness", strconv.Itoa(c.IGMP.Robustness))
	w.set("allowed-groups", prefixArray(c.IGMP.AllowedGroups))
	w.set("max-groups", strconv.Itoa(c.IGMP.MaxGroups))
	w.set("max-sources", strconv.Itoa(c.IGMP.MaxSources))
	w.set("max-sources-per-interface", strconv.Itoa(c.IGMP.MaxSourcesPerInterface))

	w.table("pim")
	w.set("hello-interval", quote(formatDuration(c.PIM.HelloInterval)))
	w.set("join-prune-interval", quote(formatDuration(c.PIM.JoinPruneInterval)))
	w.set("ssm-range", quote(c.PIM.SSMRange.String()))
	w.set("spt-switchover", quote(c.PIM.SPTSwitchover))
	w.set("register-accept", prefixArray(c.PIM.RegisterAccept))
	w.set("max-holdtime", quote(formatDuration(c.PIM.MaxHoldtime)))
	w.set("max-neighbors", strconv.Itoa(c.PIM.MaxNeighbors))
	w.set("max-joins", strconv.Itoa(c.PIM.MaxJoins))
	w.set("max-joins-per-neighbor", strconv.Itoa(c.PIM.MaxJoinsPerNeighbor))
	w.set("max-registered-sources", strconv.Itoa(c.PIM.MaxRegisteredSources))
	for _, rp := range c.PIM.RPs {
		w.table("[pim.rp]")
		w.set("address", quote(rp.Address.String()))
		w.set("groups", prefixArray(rp.Groups))
	}

	for _, r := range c.PIM.RPFs {
		w.table("[pim.rpf]")
		w.set("prefix", quote(r.Prefix.String()))
		if r.Neighbor.IsValid() {
			w.set("neighbor", quote(r.Neighbor.String()))
		}
		if r.Interface != "" {
			w.set("interface", quote(r.Interface))
		}
	}

	for _, s := range c.Static {
		w.table("[static]")
		if s.Source.IsValid() {
			w.set("source", quote(s.Source.String()))
		}
		w.set("group", quote(s.Group.String()))
		w.set("iif", quote(s.IIF))
		w.set("oifs", stringArray(s.OIFs))
	}

	w.table("fabric")
	w.set("peers", stringArray(c.Fabric.Peers))
	w.set("vni", strconv.Itoa(c.Fabric.VNI))
	w.set("port", strconv.Itoa(c.Fabric.Port))
	w.set("interface", quote(c.Fabric.Interface))
	w.set("mtu", strconv.Itoa(c.Fabric.MTU))
	w.set("underlay", quote(c.Fabric.Underlay))
	w.set("dns-refresh", quote(formatDuration(c.Fabric.DNSRefresh)))
	w.set("replication", quote(c.Fabric.Replication))

	w.table("control")
	w.set("socket", quote(c.Control.Socket))
	w.set("metrics", quote(c.Control.Metrics))
	return w.String()
}

type tomlWriter struct{ strings.Builder }

func (w *tomlWriter) line(s string) {
	w.WriteString(s)
	w.WriteByte('\n')
}

// table starts a [name] table; pass "[name]" for a [[name]] block.
func (w *tomlWriter) table(name string) {
	if w.Len() > 0 {
		w.line("")
	}
	w.line("[" + name + "]")
}

func (w *tomlWriter) set(key, value string) {
	w.line(key + " = " + value)
}

func stringArray(list []string) string {
	quoted := make([]string, len(list))
	for i, s := range list {
		quoted[i] = quote(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

func prefixArray(list []netip.Prefix) string {
	quoted := make([]string, len(list))
	for i, p := range list {
		quoted[i] = quote(p.String())
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// formatDuration writes durations of a second or more in seconds, "125s"
// rather than "2m5s", the way protocol timers are usually given.
func formatDuration(d time.Duration) string {
	if d > -time.Second && d < time.Second {
		return d.String()
	}
	sign, sec, frac := "", d/time.Second, d%time.Second
	if d < 0 {
		sign, sec, frac = "-", -sec, -frac
	}
	if frac == 0 {
		return fmt.Sprintf("%s%ds", sign, sec)
	}
	return fmt.Sprintf("%s%d.%ss", sign, sec, strings.TrimRight(fmt.Sprintf("%09d", frac), "0"))
}
