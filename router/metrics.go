package router

import (
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mrouterd/mrouterd/router/api"
)

// metricsSnapshot is the loop's state as /metrics shows it. The loop takes one shortly
// after each burst of events and the handler serves the latest without the loop, so
// a scrape neither waits for a busy loop nor adds to its work. Once published it is
// never changed.
type metricsSnapshot struct {
	status     api.Status
	vifs       []namedVIF       // by ifindex; their kernel counters are read when served
	igmpGroups []interfaceCount // per interface with an IGMP querier
	neighbors  []interfaceCount // per interface with PIM
	entries    int
}

type namedVIF struct {
	name string
	vif  uint16
}

type interfaceCount struct {
	name string
	n    int
}

// metricsDelay is how long after an event the loop takes its next snapshot: at most
// ten a second under load, so a scrape is never staler than this.
const metricsDelay = 100 * time.Millisecond

// publishMetrics takes a snapshot for /metrics; it runs on the loop.
func (r *Router) publishMetrics() {
	s := &metricsSnapshot{status: r.statusView(), entries: r.rib.Tree().Len()}
	for _, ifc := range r.sortedInterfaces() {
		if ifc.querier != nil {
			s.igmpGroups = append(s.igmpGroups, interfaceCount{ifc.name, ifc.querier.GroupCount()})
		}
		if ifc.pim != nil {
			s.neighbors = append(s.neighbors, interfaceCount{ifc.name, len(ifc.pim.Neighbors())})
		}
		if ifc.hasVIF() {
			s.vifs = append(s.vifs, namedVIF{name: ifc.name, vif: uint16(ifc.vif)})
		}
	}
	r.metrics.Store(s)
}

// serveMetrics serves /metrics from the latest snapshot, once there is one.
func (r *Router) serveMetrics(w http.ResponseWriter, req *http.Request) {
	if r.metrics.Load() == nil {
		writeError(w, http.StatusServiceUnavailable, errors.New("the router is starting"))
		return
	}
	r.metricsHandler.ServeHTTP(w, req)
}

// newMetricsHandler serves the router's metrics and the process's from a registry
// of its own: the global one would mix in whatever else the binary registers.
func newMetricsHandler(r *Router) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newRouterCollector(r), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// A collector that fails (the process's, without /proc) leaves the others shown.
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// routerCollector turns the loop's latest snapshot into metrics when scraped.
type routerCollector struct {
	r *Router

	buildInfo, uptime, routes, vifs, vifsMax, warnings, entries *prometheus.Desc
	igmpGroups, neighbors, vifPackets, vifBytes                 *prometheus.Desc
	counters                                                    []*prometheus.Desc // one per counterFamilies
}

func newRouterCollector(r *Router) *routerCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	c := &routerCollector{
		r:         r,
		buildInfo: desc("mrouterd_build_info", "The daemon's version and the Go version it was built with; always 1.", "version", "goversion"),
		uptime:    desc("mrouterd_uptime_seconds", "Seconds since the daemon started."),
		routes:    desc("mrouterd_routes", "Routes meant for the kernel's MFC."),
		vifs:      desc("mrouterd_vifs", "VIFs in use."),
		vifsMax:   desc("mrouterd_vifs_max", "VIFs the kernel allows per table."),
		warnings:  desc("mrouterd_warnings", "Misconfigurations found (see mroutectl show status)."),
		entries:   desc("mrouterd_pim_entries", "(*,G) and (S,G) entries with PIM state (mroutectl show pim joins)."),
		igmpGroups: desc("mrouterd_igmp_groups", "Groups with members, per interface with an IGMP querier.",
			"interface"),
		neighbors: desc("mrouterd_pim_neighbors", "PIM neighbours, per interface with PIM.", "interface"),
		vifPackets: desc("mrouterd_vif_packets_total", "Packets through each VIF, by direction, as the kernel counts them.",
			"interface", "direction"),
		vifBytes: desc("mrouterd_vif_bytes_total", "Bytes through each VIF, by direction, as the kernel counts them.",
			"interface", "direction"),
	}
	for _, f := range counterFamilies {
		var labels []string
		if f.label != "" {
			labels = []string{f.label}
		}
		c.counters = append(c.counters, desc(f.name, f.help, labels...))
	}
	return c
}

func (c *routerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.buildInfo, c.uptime, c.routes, c.vifs, c.vifsMax, c.warnings, c.entries,
		c.igmpGroups, c.neighbors, c.vifPackets, c.vifBytes} {
		ch <- d
	}
	for _, d := range c.counters {
		ch <- d
	}
}

func (c *routerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.metrics.Load()
	if s == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	st := s.status
	gauge(c.buildInfo, 1, c.r.version, runtime.Version())
	ch <- prometheus.MustNewConstMetric(c.uptime, prometheus.GaugeValue, c.r.now().Sub(c.r.started).Seconds())
	gauge(c.routes, st.Routes)
	gauge(c.vifs, st.VIFs)
	gauge(c.vifsMax, st.MaxVIFs)
	gauge(c.warnings, len(st.Warnings))
	gauge(c.entries, s.entries)
	for _, g := range s.igmpGroups {
		gauge(c.igmpGroups, g.n, g.name)
	}
	for _, n := range s.neighbors {
		gauge(c.neighbors, n.n, n.name)
	}
	for i, f := range counterFamilies {
		for _, series := range f.series {
			if f.label == "" {
				counter(c.counters[i], st.Counters[series.counter])
			} else {
				counter(c.counters[i], st.Counters[series.counter], series.value)
			}
		}
	}
	// The kernel's VIF counters move with the traffic, not with the loop's events:
	// they are read now, from the kernel, as the socket allows from any goroutine.
	for _, v := range s.vifs {
		n, _ := c.r.mrt.VIFCount(v.vif) // zeros for a VIF gone meanwhile
		counter(c.vifPackets, n.PacketsIn, v.name, "in")
		counter(c.vifPackets, n.PacketsOut, v.name, "out")
		counter(c.vifBytes, n.BytesIn, v.name, "in")
		counter(c.vifBytes, n.BytesOut, v.name, "out")
	}
}
