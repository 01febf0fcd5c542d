package router

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/router/api"
)

// metricsSnapshot is the loop's state as /metrics shows it. The loop takes one shortly
// after each burst of events and the handler serves the latest without the loop, so
// a scrape neither waits for a busy loop nor adds to its work. Once published it is
// never changed.
type metricsSnapshot struct {
	status    api.Status
	vifs      []namedVIF // by ifindex; their kernel counters are read when served
	neighbors int
	entries   int
}

type namedVIF struct {
	name string
	vif  uint16
}

// metricsDelay is how long after an event the loop takes its next snapshot: at most
// ten a second under load, so a scrape is never staler than this.
const metricsDelay = 100 * time.Millisecond

// publishMetrics takes a snapshot for /metrics; it runs on the loop.
func (r *Router) publishMetrics() {
	s := &metricsSnapshot{status: r.statusView(), entries: r.rib.Tree().Len()}
	for _, ifc := range r.sortedInterfaces() {
		if ifc.pim != nil {
			s.neighbors += len(ifc.pim.Neighbors())
		}
		if ifc.hasVIF() {
			s.vifs = append(s.vifs, namedVIF{name: ifc.name, vif: uint16(ifc.vif)})
		}
	}
	r.metrics.Store(s)
}

// serveMetrics writes the Prometheus text exposition format by hand: a handful of
// gauges and counters do not justify a client library.
func (r *Router) serveMetrics(w http.ResponseWriter, req *http.Request) {
	s := r.metrics.Load()
	if s == nil {
		writeError(w, http.StatusServiceUnavailable, errors.New("the router is starting"))
		return
	}
	st := s.status
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	b := bufio.NewWriter(w)
	defer b.Flush()

	metric := func(name, kind, help string) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
	}
	metric("mrouterd_uptime_seconds", "gauge", "Seconds since the daemon started.")
	fmt.Fprintf(b, "mrouterd_uptime_seconds %d\n", int64(r.now().Sub(r.started).Seconds()))
	metric("mrouterd_routes", "gauge", "Routes meant for the kernel's MFC.")
	fmt.Fprintf(b, "mrouterd_routes %d\n", st.Routes)
	metric("mrouterd_vifs", "gauge", "VIFs in use.")
	fmt.Fprintf(b, "mrouterd_vifs %d\n", st.VIFs)
	metric("mrouterd_vifs_max", "gauge", "VIFs the kernel allows per table.")
	fmt.Fprintf(b, "mrouterd_vifs_max %d\n", st.MaxVIFs)
	metric("mrouterd_warnings", "gauge", "Misconfigurations found (see mroutectl show status).")
	fmt.Fprintf(b, "mrouterd_warnings %d\n", len(st.Warnings))
	metric("mrouterd_pim_neighbors", "gauge", "PIM neighbours on all interfaces.")
	fmt.Fprintf(b, "mrouterd_pim_neighbors %d\n", s.neighbors)
	metric("mrouterd_pim_entries", "gauge", "(*,G) and (S,G) entries with PIM state (mroutectl show pim joins).")
	fmt.Fprintf(b, "mrouterd_pim_entries %d\n", s.entries)

	metric("mrouterd_events_total", "counter", "Events by kind: upcalls, route changes, errors, malformed input.")
	names := make([]string, 0, len(st.Counters))
	for name := range st.Counters {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(b, "mrouterd_events_total{event=%s} %d\n", strconv.Quote(name), st.Counters[name])
	}

	// The kernel's VIF counters move with the traffic, not with the loop's events:
	// they are read now, from the kernel, as the socket allows from any goroutine.
	counts := make([]mroute.VIFCount, len(s.vifs))
	for i, v := range s.vifs {
		counts[i], _ = r.mrt.VIFCount(v.vif) // zeros for a VIF gone meanwhile
	}
	vifCounter := func(name, help string, in, out func(i int) uint64) {
		metric(name, "counter", help)
		for i, v := range s.vifs {
			fmt.Fprintf(b, "%s{interface=%q,direction=\"in\"} %d\n", name, v.name, in(i))
			fmt.Fprintf(b, "%s{interface=%q,direction=\"out\"} %d\n", name, v.name, out(i))
		}
	}
	vifCounter("mrouterd_vif_packets_total", "Packets through each VIF, by direction.",
		func(i int) uint64 { return counts[i].PacketsIn }, func(i int) uint64 { return counts[i].PacketsOut })
	vifCounter("mrouterd_vif_bytes_total", "Bytes through each VIF, by direction.",
		func(i int) uint64 { return counts[i].BytesIn }, func(i int) uint64 { return counts[i].BytesOut })
}
