package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/mrouterd/mrouterd/router/api"
)

// newTable starts a table aligned in columns, with its header row; cells are
// separated by tabs.
func newTable(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	return tw
}

// row adds one line of cells to a table.
func row(tw *tabwriter.Writer, cells ...string) {
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

// finish flushes a table, saying so when it has no rows: a bare header could pass
// for a truncated reply.
func finish(tw *tabwriter.Writer, rows int, noun string) error {
	if rows == 0 {
		fmt.Fprintf(tw, "(no %s)\n", noun)
	}
	return tw.Flush()
}

func renderRoutes(w io.Writer, r api.Routes) error {
	tw := newTable(w, "Source", "Group", "Proto", "IIF", "OIFs", "Flags", "Uptime", "Expires", "Packets", "Bytes")
	for _, rt := range r.Routes {
		row(tw, rt.Source, rt.Group, dash(rt.Protocol), dash(rt.IIF), list(rt.OIFs), list(rt.Flags),
			duration(rt.UptimeS), expiry(rt.ExpiresS), count(rt.Packets), count(rt.Bytes))
	}
	if err := finish(tw, len(r.Routes), "routes"); err != nil {
		return err
	}
	for _, rt := range r.Routes {
		if rt.Warning != "" {
			fmt.Fprintf(w, "! %s\n", rt.Warning)
		}
	}
	return nil
}

func renderMFC(w io.Writer, m api.MFC) error {
	tw := newTable(w, "Source", "Group", "IIF", "OIFs", "Packets", "Bytes", "Wrong IF")
	for _, e := range m.MFC {
		row(tw, e.Source, e.Group, dash(e.IIF), list(e.OIFs), count(e.Packets), count(e.Bytes), count(e.WrongIf))
	}
	return finish(tw, len(m.MFC), "MFC entries")
}

func renderInterfaces(w io.Writer, is api.Interfaces) error {
	tw := newTable(w, "Name", "Index", "VIF", "Addresses", "State", "IGMP", "PIM", "Pkts in/out")
	for _, i := range is.Interfaces {
		vif := "-"
		if i.VIF >= 0 {
			vif = strconv.Itoa(i.VIF)
		}
		row(tw, i.Name, strconv.Itoa(i.Index), vif, list(i.Addresses), dash(i.State), igmpCell(i), pimCell(i),
			count(i.PacketsIn)+"/"+count(i.PacketsOut))
	}
	return finish(tw, len(is.Interfaces), "interfaces")
}

// igmpCell says whether IGMP runs and, when it does, who the querier is: "v3 querier"
// when this router is, else "v3, querier 10.0.4.1".
func igmpCell(i api.Interface) string {
	q := i.IGMPState
	switch {
	case q == nil:
		return yesNo(i.IGMP)
	case q.Querier:
		return fmt.Sprintf("v%d querier", q.Version)
	}
	return fmt.Sprintf("v%d, querier %s", q.Version, q.QuerierAddress)
}

// pimCell says whether PIM runs and who the DR is: "DR" when this router is, else
// "DR 10.0.5.3".
func pimCell(i api.Interface) string {
	p := i.PIMState
	switch {
	case p == nil:
		return yesNo(i.PIM)
	case p.IsDR:
		return "DR"
	}
	return "DR " + p.DR
}

func renderIGMPGroups(w io.Writer, g api.IGMPGroups) error {
	tw := newTable(w, "Interface", "Group", "Mode", "Sources", "Version", "Reporter", "Expires")
	for _, m := range g.Groups {
		row(tw, m.Interface, m.Group, dash(m.Mode), list(m.Sources), "v"+strconv.Itoa(m.Version), dash(m.Reporter),
			expiry(m.ExpiresS))
	}
	return finish(tw, len(g.Groups), "IGMP groups")
}

func renderPIMNeighbors(w io.Writer, n api.PIMNeighbors) error {
	tw := newTable(w, "Interface", "Address", "Uptime", "Expires", "DR Priority", "Generation ID", "DR")
	for _, nb := range n.Neighbors {
		row(tw, nb.Interface, nb.Address, duration(nb.UptimeS), expiry(nb.ExpiresS),
			strconv.FormatUint(uint64(nb.DRPriority), 10), strconv.FormatUint(uint64(nb.GenerationID), 10), yesNo(nb.DR))
	}
	return finish(tw, len(n.Neighbors), "PIM neighbors")
}

func renderRPMappings(w io.Writer, m api.RPMappings) error {
	tw := newTable(w, "Group Range", "RP", "Source")
	for _, rp := range m.RP {
		row(tw, rp.GroupRange, rp.RP, dash(rp.Source))
	}
	return finish(tw, len(m.RP), "RP mappings")
}

func renderPIMJoins(w io.Writer, m api.PIMJoins) error {
	tw := newTable(w, "Source", "Group", "Upstream", "Flags", "Downstream", "Local")
	for _, j := range m.Joins {
		up := "-"
		if j.Joined {
			up = j.Upstream + " " + j.UpstreamNeighbor
		}
		var flags []string
		if j.SPT {
			flags = append(flags, "SPT")
		}
		if j.Keepalive {
			flags = append(flags, "KAT")
		}
		if j.Register != "" {
			flags = append(flags, "register:"+j.Register)
		}
		for _, a := range j.Asserts {
			if a.WeWin {
				flags = append(flags, "assert-winner:"+a.Interface)
			} else {
				flags = append(flags, "assert-loser:"+a.Interface+"("+a.Winner+")")
			}
		}
		var down []string
		for _, d := range j.Downstream {
			s := d.Interface + ":" + d.State
			if d.RPT {
				s += "(rpt)"
			}
			if d.ExpiresS > 0 {
				s += "/" + duration(d.ExpiresS)
			}
			down = append(down, s)
		}
		row(tw, j.Source, j.Group, up, dash(strings.Join(flags, ",")), dash(strings.Join(down, " ")), dash(strings.Join(j.Local, ",")))
	}
	return finish(tw, len(m.Joins), "PIM join state")
}

// rpfOrigins explain where a reverse path comes from.
var rpfOrigins = map[string]string{
	"local":       "an address of this host",
	"connected":   "a subnet of the interface",
	"fabric":      "a prefix the neighbour advertises on the fabric",
	"static":      "a [[pim.rpf]] entry",
	"fib":         "the kernel's unicast routes",
	"unreachable": "no route",
}

// renderRPF says which way the router expects an address's packets, and why.
func renderRPF(w io.Writer, p api.RPF) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row(tw, "Address:", p.Address)
	row(tw, "Interface:", dash(p.Interface))
	neighbor := p.Neighbor
	switch {
	case neighbor != "":
	case p.Interface != "":
		neighbor = "none"
	default:
		neighbor = "-"
	}
	row(tw, "Neighbor:", neighbor)
	origin := dash(p.Origin)
	if why, ok := rpfOrigins[p.Origin]; ok {
		origin += " (" + why + ")"
	}
	row(tw, "Origin:", origin)
	row(tw, "Prefix:", dash(p.Prefix))
	if p.Origin == "fib" {
		route := "direct"
		if p.Gateway != "" {
			route = "via " + p.Gateway
		}
		if p.Protocol != "" {
			route += ", proto " + p.Protocol
		}
		if p.Metric != nil {
			route += fmt.Sprintf(", metric %d", *p.Metric)
		}
		if p.Preference != nil {
			route += fmt.Sprintf(", preference %d", *p.Preference)
		}
		row(tw, "Route:", route)
	}
	return tw.Flush()
}

func renderFabric(w io.Writer, f api.Fabric) error {
	if !f.Enabled {
		_, err := fmt.Fprintln(w, "no fabric: [fabric] peers is empty")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row(tw, "Interface:", fmt.Sprintf("%s (VNI %d, UDP %d, MTU %d, over %s)", f.Interface, f.VNI, f.Port, f.MTU, dash(f.Underlay)))
	row(tw, "This node:", dash(f.Self))
	row(tw, "RP:", dash(f.RP))
	row(tw, "Replication:", f.Replication)
	row(tw, "Advertised:", list(f.Prefixes))
	if f.Error != "" {
		row(tw, "Last error:", f.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w, "Peer", "Origin", "Neighbor", "Groups", "Sources")
	for _, p := range f.Peers {
		origin := p.Origin
		if p.Name != "" {
			origin += " " + p.Name
		}
		row(tw, p.Address, origin, yesNo(p.Neighbor), list(p.Groups), list(p.Prefixes))
	}
	return finish(tw, len(f.Peers), "peers")
}

func renderStatus(w io.Writer, s api.Status) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row(tw, "Version:", dash(s.Version))
	row(tw, "Uptime:", duration(s.UptimeS))
	row(tw, "Config file:", dash(s.ConfigFile))
	row(tw, "Kernel table:", strconv.FormatUint(uint64(s.Table), 10))
	row(tw, "VIFs:", fmt.Sprintf("%d of %d", s.VIFs, s.MaxVIFs))
	row(tw, "Interfaces:", fmt.Sprintf("%d watched", s.Interfaces))
	row(tw, "Routes:", strconv.Itoa(s.Routes))
	if h := s.Hold; h != nil {
		row(tw, "Restart hold:", fmt.Sprintf("%d entries adopted from %s held for %s more", h.Entries, dash(h.From), duration(h.ExpiresS)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Counters) == 0 {
		fmt.Fprintln(w, "Counters: none")
	} else {
		fmt.Fprintln(w, "Counters:")
		for _, name := range slices.Sorted(maps.Keys(s.Counters)) {
			row(tw, "  "+name, count(s.Counters[name]))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(s.Warnings) == 0 {
		_, err := fmt.Fprintln(w, "Warnings: none")
		return err
	}
	fmt.Fprintln(w, "Warnings:")
	for _, warning := range s.Warnings {
		fmt.Fprintf(w, "  - %s\n", warning)
	}
	return nil
}

func renderReload(w io.Writer, r api.Reload) error {
	if !r.Changed {
		_, err := fmt.Fprintln(w, "no change")
		return err
	}
	for _, line := range r.Summary {
		fmt.Fprintln(w, line)
	}
	return nil
}

// duration renders seconds like 1d2h3m4s, leaving out zero units.
func duration(seconds int64) string {
	if seconds <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		name string
		size int64
	}{{"d", 86400}, {"h", 3600}, {"m", 60}, {"s", 1}} {
		if n := seconds / u.size; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			seconds -= n * u.size
		}
	}
	return b.String()
}

// expiry renders a remaining lifetime, where the API's 0 means it never runs out.
func expiry(seconds int64) string {
	if seconds == 0 {
		return "never"
	}
	return duration(seconds)
}

func list(items []string) string {
	if len(items) == 0 {
		return "-"
	}
	return strings.Join(items, ",")
}

// dash stands in for an empty cell, which would shift the columns a reader sees.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func count(n uint64) string { return strconv.FormatUint(n, 10) }
