package router

import (
	"bufio"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/mrouterd/mrouterd/router/api"
)

// serveMetrics writes the Prometheus text exposition format by hand: a handful of
// gauges and counters do not justify a client library.
func (r *Router) serveMetrics(w http.ResponseWriter, req *http.Request) {
	var st api.Status
	var ifs api.Interfaces
	var neighbors, entries int
	if err := r.call(req.Context(), func() {
		st, ifs = r.statusView(), r.interfacesView()
		for _, ifc := range r.ifaces {
			if ifc.pim != nil {
				neighbors += len(ifc.pim.Neighbors())
			}
		}
		entries = r.rib.Tree().Len()
	}); err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	b := bufio.NewWriter(w)
	defer b.Flush()

	metric := func(name, kind, help string) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
	}
	metric("mrouterd_uptime_seconds", "gauge", "Seconds since the daemon started.")
	fmt.Fprintf(b, "mrouterd_uptime_seconds %d\n", st.UptimeS)
	metric("mrouterd_routes", "gauge", "Routes meant for the kernel's MFC.")
	fmt.Fprintf(b, "mrouterd_routes %d\n", st.Routes)
	metric("mrouterd_vifs", "gauge", "VIFs in use.")
	fmt.Fprintf(b, "mrouterd_vifs %d\n", st.VIFs)
	metric("mrouterd_vifs_max", "gauge", "VIFs the kernel allows per table.")
	fmt.Fprintf(b, "mrouterd_vifs_max %d\n", st.MaxVIFs)
	metric("mrouterd_warnings", "gauge", "Misconfigurations found (see mroutectl show status).")
	fmt.Fprintf(b, "mrouterd_warnings %d\n", len(st.Warnings))
	metric("mrouterd_pim_neighbors", "gauge", "PIM neighbours on all interfaces.")
	fmt.Fprintf(b, "mrouterd_pim_neighbors %d\n", neighbors)
	metric("mrouterd_pim_entries", "gauge", "(*,G) and (S,G) entries with PIM state (mroutectl show pim joins).")
	fmt.Fprintf(b, "mrouterd_pim_entries %d\n", entries)

	metric("mrouterd_events_total", "counter", "Events by kind: upcalls, route changes, errors, malformed input.")
	names := make([]string, 0, len(st.Counters))
	for name := range st.Counters {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(b, "mrouterd_events_total{event=%s} %d\n", strconv.Quote(name), st.Counters[name])
	}

	vifCounter := func(name, help string, in, out func(api.Interface) uint64) {
		metric(name, "counter", help)
		for _, i := range ifs.Interfaces {
			if i.VIF >= 0 {
				fmt.Fprintf(b, "%s{interface=%q,direction=\"in\"} %d\n", name, i.Name, in(i))
				fmt.Fprintf(b, "%s{interface=%q,direction=\"out\"} %d\n", name, i.Name, out(i))
			}
		}
	}
	vifCounter("mrouterd_vif_packets_total", "Packets through each VIF, by direction.",
		func(i api.Interface) uint64 { return i.PacketsIn }, func(i api.Interface) uint64 { return i.PacketsOut })
	vifCounter("mrouterd_vif_bytes_total", "Bytes through each VIF, by direction.",
		func(i api.Interface) uint64 { return i.BytesIn }, func(i api.Interface) uint64 { return i.BytesOut })
}
