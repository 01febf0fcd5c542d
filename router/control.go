package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/netutil"
	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/pim"
	"github.com/mrouterd/mrouterd/router/api"
	"github.com/mrouterd/mrouterd/router/mrib"
)

// counters are named event counts, owned by the loop.
type counters map[string]uint64

func (c counters) inc(name string) { c[name]++ }

// control is the control API: HTTP on a unix socket, and optionally /metrics on TCP.
type control struct {
	servers []*http.Server
	path    string
}

func (c *control) Close() {
	for _, s := range c.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.Shutdown(ctx)
		cancel()
	}
	_ = os.Remove(c.path)
}

func (r *Router) listenControl() (*control, error) {
	if err := os.MkdirAll(filepath.Dir(r.socket), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// A socket file left by a daemon that died is in the way; a live one answers.
	if c, err := net.Dial("unix", r.socket); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another mrouterd is listening there", r.socket)
	}
	_ = os.Remove(r.socket)
	ln, err := net.Listen("unix", r.socket)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(r.socket, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	c := &control{path: r.socket}
	c.serve(ln, controlLimits, r.handler(), r.log)
	if addr := r.cfg.Control.Metrics; addr != "" {
		tcp, err := net.Listen("tcp", addr)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET "+api.PathMetrics, r.serveMetrics)
		c.serve(tcp, metricsLimits, mux, r.log)
	}
	return c, nil
}

// serverLimits bound what one client can hold of a control server. Requests carry
// no body and answers take at most handler, so a client slower than these is stuck
// or hostile; cutting it off frees its connection for mroutectl and the scraper.
type serverLimits struct {
	readHeader, read, handler, idle time.Duration
	// conns are served at once; more wait in the kernel's accept queue until one closes.
	conns int
}

var (
	controlLimits = serverLimits{readHeader: 5 * time.Second, read: 10 * time.Second,
		handler: 30 * time.Second, idle: 60 * time.Second, conns: 64}
	metricsLimits = serverLimits{readHeader: 5 * time.Second, read: 10 * time.Second,
		handler: 30 * time.Second, idle: 60 * time.Second, conns: 16}
)

func (c *control) serve(ln net.Listener, lim serverLimits, h http.Handler, log *slog.Logger) {
	s := &http.Server{
		Handler:           withTimeout(h, lim.handler),
		ReadHeaderTimeout: lim.readHeader,
		ReadTimeout:       lim.read,
		// A handler that timed out still has the time to say so.
		WriteTimeout: lim.handler + 5*time.Second,
		IdleTimeout:  lim.idle,
		// net/http recovers a panicking handler; its report, stack included, goes to
		// the daemon's log rather than to stderr.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError),
	}
	c.servers = append(c.servers, s)
	go func() { _ = s.Serve(netutil.LimitListener(ln, lim.conns)) }()
}

// withTimeout bounds the request's context, so that a handler waiting for a stuck
// loop gives up and answers rather than holding its connection.
func withTimeout(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), d)
		defer cancel()
		h.ServeHTTP(w, req.WithContext(ctx))
	})
}

func (r *Router) handler() http.Handler {
	mux := http.NewServeMux()
	// view serves what build makes in the loop, for the query that parse reads from
	// the request's parameters; a bad query is refused before the loop is asked.
	view := func(path string, parse func(url.Values) (query, error), build func(query) (any, error)) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, req *http.Request) {
			values, err := url.ParseQuery(req.URL.RawQuery)
			var q query
			if err == nil {
				q, err = parse(values)
			}
			if err != nil {
				r.countOutsideLoop(req.Context(), "control_bad_requests")
				writeError(w, http.StatusBadRequest, err)
				return
			}
			var v any
			var buildErr error
			if err := r.call(req.Context(), func() { v, buildErr = build(q) }); err != nil {
				writeError(w, http.StatusServiceUnavailable, err)
				return
			}
			if buildErr != nil {
				status := http.StatusInternalServerError
				if errors.As(buildErr, new(notFound)) {
					status = http.StatusNotFound
				}
				writeError(w, status, buildErr)
				return
			}
			writeJSON(w, http.StatusOK, v)
		})
	}
	sg := takes(api.ParamSource, api.ParamGroup)
	view(api.PathRoutes, sg, func(q query) (any, error) { return r.routesView(q) })
	view(api.PathMFC, sg, func(q query) (any, error) { return r.mfcView(q) })
	view(api.PathInterfaces, takes(), func(query) (any, error) { return r.interfacesView(), nil })
	view(api.PathStatus, takes(), func(query) (any, error) { return r.statusView(), nil })
	view(api.PathIGMPGroups, takes(api.ParamInterface, api.ParamGroup), func(q query) (any, error) { return r.igmpGroupsView(q) })
	view(api.PathPIMNeighbors, takes(), func(query) (any, error) { return r.pimNeighborsView(), nil })
	view(api.PathPIMRP, takes(), func(query) (any, error) { return r.rpView(), nil })
	view(api.PathPIMJoins, sg, func(q query) (any, error) { return r.joinsView(r.now(), q), nil })
	view(api.PathFabric, takes(), func(query) (any, error) { return r.fabricView(), nil })
	view(api.PathRPF, needs(api.ParamAddress), func(q query) (any, error) { return r.rpfView(q.address), nil })
	// An action refused is a 400 that says why.
	action := func(path string, act func(context.Context) (any, error)) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, req *http.Request) {
			reply, err := act(req.Context())
			if err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
			writeJSON(w, http.StatusOK, reply)
		})
	}
	action(api.PathReload, func(ctx context.Context) (any, error) { return r.ReloadOrRestart(ctx) })
	action(api.PathRestart, func(ctx context.Context) (any, error) { return r.Restart(ctx) })
	mux.HandleFunc("GET "+api.PathMetrics, r.serveMetrics)
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		r.countOutsideLoop(req.Context(), "control_bad_requests")
		writeError(w, http.StatusNotFound, fmt.Errorf("no such endpoint: %s %s", req.Method, req.URL.Path))
	})
	return mux
}

// countOutsideLoop counts an event seen by a control goroutine.
func (r *Router) countOutsideLoop(ctx context.Context, name string) {
	_ = r.call(ctx, func() { r.counters.inc(name) })
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, api.Error{Error: err.Error()})
}

// query is what a request's parameters select; the zero query selects everything.
type query struct {
	source, group, address netip.Addr
	iface                  string
}

// matches reports whether the query selects an (S,G) or (*,G) entry: a query for a
// source selects no (*,G).
func (q query) matches(key sgKey) bool {
	return (!q.source.IsValid() || key.Source == q.source) && (!q.group.IsValid() || key.Group == q.group)
}

// takes reads the parameters a view may be given, each at most once, and refuses
// any other.
func takes(names ...string) func(url.Values) (query, error) {
	return func(values url.Values) (query, error) {
		var q query
		for _, name := range slices.Sorted(maps.Keys(values)) {
			if !slices.Contains(names, name) {
				if len(names) == 0 {
					return q, fmt.Errorf("unknown parameter %q: this view takes none", name)
				}
				return q, fmt.Errorf("unknown parameter %q: this view takes %s", name, strings.Join(names, ", "))
			}
			if n := len(values[name]); n != 1 {
				return q, fmt.Errorf("parameter %q given %d times", name, n)
			}
			v := values.Get(name)
			var err error
			switch name {
			case api.ParamSource:
				q.source, err = api.ParseUnicast(v)
			case api.ParamGroup:
				q.group, err = api.ParseGroup(v)
			case api.ParamAddress:
				q.address, err = api.ParseUnicast(v)
			case api.ParamInterface:
				q.iface = v
				if v == "" || len(v) >= unix.IFNAMSIZ || strings.ContainsAny(v, "/ \t\n") {
					err = fmt.Errorf("%q is not an interface name", v)
				}
			}
			if err != nil {
				return q, fmt.Errorf("parameter %s: %w", name, err)
			}
		}
		return q, nil
	}
}

// needs reads one parameter a view cannot do without.
func needs(name string) func(url.Values) (query, error) {
	parse := takes(name)
	return func(values url.Values) (query, error) {
		if !values.Has(name) {
			return query{}, fmt.Errorf("parameter %s is missing", name)
		}
		return parse(values)
	}
}

// notFound is the error of a view asked about something that does not exist.
type notFound struct{ error }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// routesView lists the routes q selects with the kernel's counters, read fresh.
func (r *Router) routesView(q query) (api.Routes, error) {
	if !r.refreshKernel() {
		return api.Routes{}, errors.New("read the kernel MFC for counters failed (see the daemon's log)")
	}
	now := r.now()
	size := r.rib.Len()
	if q != (query{}) {
		size = 0 // a few routes of many
	}
	out := api.Routes{Routes: make([]api.Route, 0, size)}
	for rt := range r.rib.Routes() {
		key := rt.Key
		if !q.matches(key) {
			continue
		}
		v := api.Route{
			Source: "*", Group: key.Group.String(), IIF: rt.IIF, OIFs: nonNil(slices.Clone(rt.OIFs)),
			Protocol: rt.Origin.String(), Flags: r.routeFlags(rt),
			UptimeS:  int64(now.Sub(rt.Created).Seconds()),
			ExpiresS: int64(r.rib.ExpiresIn(rt, now).Seconds()),
		}
		if key.Source.IsValid() {
			v.Source = key.Source.String()
		}
		if k, ok := r.kernelByKey[key]; ok {
			v.Packets, v.Bytes = k.Packets, k.Bytes
		}
		out.Routes = append(out.Routes, v)
	}
	out.Routes = append(out.Routes, r.sharedTreeViews(now, q)...)
	out.Routes = r.markUnroutable(out.Routes, now, q)
	slices.SortFunc(out.Routes, func(a, b api.Route) int {
		return compareSG(a.Source, a.Group, b.Source, b.Group)
	})
	return out, nil
}

// sharedTreeViews shows PIM's (*,G) entries as routes: never installed themselves,
// they say where the group's shared tree comes from and goes to. A static (*,G)
// template of the same group takes their place.
func (r *Router) sharedTreeViews(now time.Time, q query) []api.Route {
	var out []api.Route
	for _, e := range r.rib.Tree().Entries(q.group) {
		if _, ok := r.rib.Route(e.Key); !e.Key.Wildcard() || ok || !q.matches(e.Key) {
			continue
		}
		v := api.Route{Source: "*", Group: e.Key.Group.String(), OIFs: []string{}, Protocol: mrib.OriginPIM.String(),
			Flags: []string{"WC"}, UptimeS: int64(now.Sub(e.Created).Seconds())}
		if rp, ok := r.rpOf(e.Key.Group); ok && !r.isOwn(rp) { // the RP's own tree comes from nowhere
			v.IIF = r.rpf(rp).Interface
		}
		if e.Joined {
			v.Flags = append(v.Flags, "joined")
		}
		for _, d := range e.Downstream {
			if !d.RPT && d.State != pim.NoInfo {
				v.OIFs = append(v.OIFs, d.Interface)
			}
		}
		v.OIFs = append(v.OIFs, e.Local...)
		slices.Sort(v.OIFs)
		v.OIFs = slices.Compact(v.OIFs)
		out = append(out, v)
	}
	return out
}

// markUnroutable flags the routes of sources that send with too low a TTL, and
// shows those that have no route, which the kernel never asked about: it drops
// their packets before it would.
func (r *Router) markUnroutable(routes []api.Route, now time.Time, q query) []api.Route {
	keys := slices.DeleteFunc(r.unroutableKeys(now), func(k sgKey) bool { return !q.matches(k) })
	if len(keys) == 0 {
		return routes
	}
	at := make(map[sgKey]int, len(routes))
	for i, v := range routes {
		s, _ := netip.ParseAddr(v.Source)
		g, _ := netip.ParseAddr(v.Group)
		at[sgKey{Source: s, Group: g}] = i
	}
	for _, key := range keys {
		u := r.unroutable[key]
		i, ok := at[key]
		if !ok {
			routes = append(routes, api.Route{Source: key.Source.String(), Group: key.Group.String(), IIF: u.iface,
				OIFs: []string{}, Protocol: "none", Flags: []string{}, UptimeS: int64(now.Sub(u.first).Seconds())})
			i = len(routes) - 1
		}
		routes[i].Flags = append(routes[i].Flags, "low-ttl")
		routes[i].Warning = unroutableWarning(key, u)
	}
	return routes
}

// routeFlags explains a route's state in a word or two each.
func (r *Router) routeFlags(rt *mrib.Route) []string {
	flags := []string{}
	if rt.Template {
		flags = append(flags, "template")
	}
	if rt.Learned {
		flags = append(flags, "learned")
	}
	// SPT: accepted along the source's own tree; RPT: along the shared tree.
	switch {
	case rt.Shared:
		flags = append(flags, "RPT")
	case rt.Origin == mrib.OriginPIM:
		flags = append(flags, "SPT")
	}
	if _, ok := r.rib.Tree().Upstream(rt.Key); ok {
		flags = append(flags, "joined")
	}
	if !rt.Template {
		if _, ok := r.kernelByKey[rt.Key]; ok {
			flags = append(flags, "installed")
		} else {
			flags = append(flags, "pending")
		}
	}
	return flags
}

// mfcView reads the kernel's MFC and lists the entries q selects; a failed read is
// an error for the client, never an empty table that looks like the truth.
func (r *Router) mfcView(q query) (api.MFC, error) {
	entries, err := r.mrt.Dump()
	if err != nil {
		r.counters.inc("mfc_dump_errors")
		return api.MFC{}, fmt.Errorf("read the kernel MFC: %w", err)
	}
	out := api.MFC{MFC: make([]api.MFCEntry, 0, len(entries))}
	for _, e := range entries {
		if !q.matches(sgKey{Source: e.Source, Group: e.Group}) {
			continue
		}
		v := api.MFCEntry{
			Source: e.Source.String(), Group: e.Group.String(), IIF: r.nameOf(e.IIF),
			OIFs: []string{}, Packets: e.Packets, Bytes: e.Bytes, WrongIf: e.WrongIf,
		}
		for _, o := range e.OIFs {
			v.OIFs = append(v.OIFs, r.nameOf(o))
		}
		out.MFC = append(out.MFC, v)
	}
	slices.SortFunc(out.MFC, func(a, b api.MFCEntry) int {
		return compareSG(a.Source, a.Group, b.Source, b.Group)
	})
	return out, nil
}

func (r *Router) nameOf(index int) string {
	if ifc := r.byIndex(index); ifc != nil {
		return ifc.name
	}
	if index == 0 {
		return "-"
	}
	return fmt.Sprintf("if%d", index)
}

func (r *Router) interfacesView() api.Interfaces {
	out := api.Interfaces{Interfaces: make([]api.Interface, 0, len(r.ifaces))}
	for _, ifc := range r.ifaces {
		settings, enabled := r.settingsFor(ifc)
		v := api.Interface{
			Name: ifc.name, Index: ifc.index, VIF: ifc.vif, Addresses: []string{},
			Up: ifc.flags&net.FlagUp != 0, IGMP: enabled && settings.IGMP, PIM: enabled && settings.PIM,
		}
		for _, a := range ifc.addresses {
			v.Addresses = append(v.Addresses, a.String())
		}
		if q := ifc.querier; q != nil {
			v.IGMPState = &api.IGMPInterface{
				Version: r.cfg.IGMP.Version, Querier: q.IsQuerier(), QuerierAddress: addrOrDash(q.QuerierAddress()),
				QueryIntervalS: r.cfg.IGMP.QueryInterval.Seconds(), Groups: len(q.Groups()),
			}
			v.IGMPState.OtherQuerierExpires = secondsUntil(q.OtherQuerierExpires(), r.now())
		}
		if p := ifc.pim; p != nil {
			v.PIMState = &api.PIMInterface{
				Address: ifc.pimSelf.String(), DR: addrOrDash(p.DR()), IsDR: p.IsDR(),
				DRPriority: settings.DRPriority, GenerationID: p.GenerationID(), Neighbors: len(p.Neighbors()),
			}
		}
		v.VIFReason = ifc.vifReason
		switch {
		case ifc.hasVIF():
			v.State = "active"
			if c, err := r.mrt.VIFCount(uint16(ifc.vif)); err == nil {
				v.PacketsIn, v.PacketsOut, v.BytesIn, v.BytesOut = c.PacketsIn, c.PacketsOut, c.BytesIn, c.BytesOut
			}
		case !enabled:
			v.State = "disabled"
		case !r.eligible(ifc):
			v.State = "down"
		case ifc.vifRefused:
			v.State = "no-vif"
		default:
			v.State = "idle"
		}
		out.Interfaces = append(out.Interfaces, v)
	}
	slices.SortFunc(out.Interfaces, func(a, b api.Interface) int { return a.Index - b.Index })
	return out
}

// igmpGroupsView lists the memberships q selects, by interface and group.
func (r *Router) igmpGroupsView(q query) (api.IGMPGroups, error) {
	out := api.IGMPGroups{Groups: []api.IGMPGroup{}}
	if _, ok := r.ifaces[q.iface]; q.iface != "" && !ok {
		return out, notFound{fmt.Errorf("no interface %q", q.iface)}
	}
	now := r.now()
	for _, ifc := range r.sortedInterfaces() {
		if ifc.querier == nil || q.iface != "" && ifc.name != q.iface {
			continue
		}
		for _, g := range ifc.querier.Groups() {
			if q.group.IsValid() && g.Group != q.group {
				continue
			}
			v := api.IGMPGroup{
				Interface: ifc.name, Group: g.Group.String(), Mode: g.Mode.String(), Sources: []string{},
				Version: g.Version, Reporter: addrOrDash(g.Reporter),
			}
			for _, s := range g.Sources {
				// INCLUDE lists the sources wanted; EXCLUDE the sources refused.
				if s.Forward == (g.Mode == igmp.Include) {
					v.Sources = append(v.Sources, s.Source.String())
				}
			}
			v.ExpiresS = secondsUntil(g.Expires, now)
			out.Groups = append(out.Groups, v)
		}
	}
	return out, nil
}

func (r *Router) pimNeighborsView() api.PIMNeighbors {
	out := api.PIMNeighbors{Neighbors: []api.PIMNeighbor{}}
	now := r.now()
	for _, ifc := range r.sortedInterfaces() {
		if ifc.pim == nil {
			continue
		}
		dr := ifc.pim.DR()
		for _, n := range ifc.pim.Neighbors() {
			v := api.PIMNeighbor{
				Interface: ifc.name, Address: n.Address.String(), UptimeS: int64(now.Sub(n.Since).Seconds()),
				DRPriority: n.DRPriority, GenerationID: n.GenerationID, DR: n.Address == dr,
			}
			v.ExpiresS = secondsUntil(n.Expires, now)
			out.Neighbors = append(out.Neighbors, v)
		}
	}
	return out
}

func (r *Router) rpView() api.RPMappings {
	out := api.RPMappings{RP: []api.RPMapping{}}
	for _, m := range r.rps.Mappings() {
		out.RP = append(out.RP, api.RPMapping{GroupRange: m.Groups.String(), RP: m.RP.String(), Source: m.Origin})
	}
	if ssm := r.cfg.PIM.SSMRange; ssm.IsValid() {
		out.RP = append(out.RP, api.RPMapping{GroupRange: ssm.String(), RP: "-", Source: "ssm"})
	}
	return out
}

// joinsView lists the PIM Tree's entries that q selects.
func (r *Router) joinsView(now time.Time, q query) api.PIMJoins {
	out := api.PIMJoins{Joins: []api.PIMJoin{}}
	for _, e := range r.rib.Tree().Entries(q.group) {
		if !q.matches(e.Key) {
			continue
		}
		j := api.PIMJoin{
			Source: "*", Group: e.Key.Group.String(), Upstream: e.Upstream.Interface,
			Joined: e.Joined, Keepalive: e.Keepalive, SPT: e.SPTBit, Register: e.Register,
			Downstream: []api.PIMDownstream{}, Local: nonNil(e.Local), Asserts: []api.PIMAssert{},
			UptimeS: int64(now.Sub(e.Created).Seconds()),
		}
		for _, a := range e.Asserts {
			j.Asserts = append(j.Asserts, api.PIMAssert{Interface: a.Interface, Winner: a.Winner.String(),
				WeWin: a.WeWin, ExpiresS: secondsUntil(a.Expires, now)})
		}
		if e.Key.Source.IsValid() {
			j.Source = e.Key.Source.String()
		}
		if e.Upstream.Neighbor.IsValid() {
			j.UpstreamNeighbor = e.Upstream.Neighbor.String()
		}
		for _, d := range e.Downstream {
			j.Downstream = append(j.Downstream, api.PIMDownstream{Interface: d.Interface, State: d.State.String(),
				RPT: d.RPT, ExpiresS: secondsUntil(d.Expires, now)})
		}
		out.Joins = append(out.Joins, j)
	}
	return out
}

// secondsUntil is the whole seconds left until t, rounded up so that a timer about to
// fire never shows 0; the zero time (a timer that is not running) shows 0.
func secondsUntil(t, now time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return int64(math.Ceil(t.Sub(now).Seconds()))
}

func addrOrDash(a netip.Addr) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}

func (r *Router) statusView() api.Status {
	cs := make(map[string]uint64, len(r.counters)+2)
	for k, v := range r.counters {
		cs[k] = v
	}
	cs["mrt_read_errors"] = r.mrtReader.readErrors.Load()
	cs["mrt_queue_full"] = r.mrtReader.queueFull.Load()
	cs["pim_read_errors"] = r.pimReader.readErrors.Load()
	cs["pim_queue_full"] = r.pimReader.queueFull.Load()
	cs["tap_read_errors"] = r.tapReader.readErrors.Load()
	cs["tap_queue_full"] = r.tapReader.queueFull.Load()
	for _, ifc := range r.ifaces {
		if ifc.querier != nil {
			st := ifc.querier.Stats()
			cs["igmp_groups_refused"] += st.Refused
			cs["igmp_sources_refused"] += st.SourcesRefused
		}
	}
	installed := 0
	for rt := range r.rib.Routes() {
		if rt.Installable() {
			installed++
		}
	}
	watched := 0
	for _, ifc := range r.ifaces {
		if ifc.querier != nil || ifc.pim != nil {
			watched++
		}
	}
	now := r.now()
	unroutable := []api.UnroutableSource{}
	for _, key := range r.unroutableKeys(now) {
		u := r.unroutable[key]
		unroutable = append(unroutable, api.UnroutableSource{Source: key.Source.String(), Group: key.Group.String(),
			Interface: u.iface, TTL: int(u.ttl), SinceS: int64(now.Sub(u.first).Seconds())})
	}
	return api.Status{
		Version: r.version, UptimeS: int64(now.Sub(r.started).Seconds()), Started: r.started.Format(time.RFC3339Nano),
		Hold:       r.holdView(now),
		ConfigFile: r.cfg.File, Table: r.cfg.Router.Table,
		VIFs: r.vifs.Used(), MaxVIFs: mroute.MaxVIFs, Interfaces: watched, Routes: installed,
		Unroutable: unroutable, Counters: cs, Warnings: nonNil(r.warnings()),
	}
}

// compareSG orders by group, then source, with "*" first.
func compareSG(s1, g1, s2, g2 string) int {
	if c := compareAddr(g1, g2); c != 0 {
		return c
	}
	return compareAddr(s1, s2)
}

// compareAddr orders addresses numerically; "*" parses to the zero Addr, which sorts first.
func compareAddr(a, b string) int {
	pa, _ := netip.ParseAddr(a)
	pb, _ := netip.ParseAddr(b)
	return pa.Compare(pb)
}

// rpfView is the reverse path to addr. When the router holds state for addr, that
// is the path it follows, from its cache; any other address is looked up afresh
// and not kept, so that asking about addresses never grows the cache.
func (r *Router) rpfView(addr netip.Addr) api.RPF {
	p, cached := r.paths.byAddr[addr]
	if !cached {
		p = r.lookupPath(addr)
	}
	v := api.RPF{Address: addr.String(), Interface: p.rpf.Interface, Origin: string(p.origin)}
	if p.rpf.Neighbor.IsValid() {
		v.Neighbor = p.rpf.Neighbor.String()
	}
	if p.prefix.IsValid() {
		v.Prefix = p.prefix.String()
	}
	if p.origin != originFIB {
		return v
	}
	if p.route.gateway.IsValid() {
		v.Gateway = p.route.gateway.String()
	}
	var e fibEntry
	ok := false
	if cached {
		e, ok = r.fibEntry(addr)
	} else {
		var err error
		e, err = r.fib.Entry(addr)
		ok = err == nil
	}
	if ok {
		metric, preference := e.priority, e.preference()
		v.Prefix, v.Protocol, v.Metric, v.Preference = e.prefix.String(), e.protocolName(), &metric, &preference
	}
	return v
}
