package router

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/router/api"
)

// serveTest serves h on a loopback TCP listener with lim and returns its address.
func serveTest(t *testing.T, lim serverLimits, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &control{}
	c.serve(ln, lim, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(c.Close)
	return ln.Addr().String()
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })

// startRequest opens a connection and sends a request line but never ends the headers.
func startRequest(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// A client that never finishes its headers is cut off.
func TestControlCutsOffSlowHeaders(t *testing.T) {
	addr := serveTest(t, serverLimits{readHeader: 50 * time.Millisecond, read: time.Second,
		handler: time.Second, idle: time.Second, conns: 4}, okHandler)
	c := startRequest(t, addr)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("connection not closed by the server: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cut off after %v", d)
	}
}

// Beyond the connection cap a client waits until a connection closes.
func TestControlConnectionCap(t *testing.T) {
	addr := serveTest(t, serverLimits{readHeader: time.Minute, read: time.Minute,
		handler: time.Second, idle: time.Second, conns: 2}, okHandler)
	held := []net.Conn{startRequest(t, addr), startRequest(t, addr)}

	answered := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			answered <- err
			return
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			answered <- err
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		t.Fatalf("a third connection was served past a cap of 2 (%v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	held[0].Close()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting client was never served")
	}
}

// /metrics answers from the loop's last snapshot while the loop is blocked, where a
// view that needs the loop gives up at its deadline; once the loop runs again, the
// snapshot follows its events.
func TestMetricsWhileLoopBlocked(t *testing.T) {
	l, _, _, _ := threeLinks(t, withRP+staticSG)
	l.r.reconcile("start")
	l.r.clock = time.Now
	l.runLoop()
	blocked, release := make(chan struct{}), make(chan struct{})
	l.r.in.calls <- func() { close(blocked); <-release }
	<-blocked
	released := false
	unblock := func() {
		if !released {
			released = true
			close(release)
		}
	}
	t.Cleanup(unblock) // before the loop stops

	h := withTimeout(l.r.handler(), 100*time.Millisecond)
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w
	}
	start := time.Now()
	if w := get(api.PathMetrics); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "mrouterd_routes 1\n") {
		t.Fatalf("metrics while the loop is blocked: %d\n%s", w.Code, w.Body)
	}
	// A scrape takes a few milliseconds (the Go runtime's and the process's metrics
	// included); as long as the loop's deadline, it would have waited for the loop.
	if d := time.Since(start); d >= 100*time.Millisecond {
		t.Errorf("metrics took %v", d)
	}
	if w := get(api.PathStatus); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status while the loop is blocked: %d %s", w.Code, w.Body)
	}

	unblock()
	l.r.in.calls <- func() { l.r.counters.inc("reloads") }
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(get(api.PathMetrics).Body.String(), "\nmrouterd_reloads_total 1\n") {
		if time.Now().After(deadline) {
			t.Fatalf("the snapshot never showed the event:\n%s", get(api.PathMetrics).Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// controlGet asks h for path, decodes the reply into v and returns the status.
func controlGet(t *testing.T, h http.Handler, path string, v any) int {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("%s: %v: %s", path, err, w.Body)
	}
	return w.Code
}

// Views answer for the sources, groups and interfaces their parameters name.
func TestControlFilters(t *testing.T) {
	l, eth1, eth2, eth3 := threeLinks(t, withRP+staticSG)
	l.withRegisterVIF()
	l.report(eth2, "10.0.2.5", exclude(grp1))
	l.report(eth3, "10.0.3.5", exclude(grp2))
	l.upcall(mroute.NoCache, eth1, hostSrc2, grp1, nil)
	l.upcall(mroute.NoCache, eth1, hostSrc2, grp2, nil)
	l.r.reconcile("start")
	l.runLoop()
	h := l.r.handler()

	sg := func(source, group string) string { return source + " " + group }
	routes := func(query string) []string {
		var v api.Routes
		if code := controlGet(t, h, api.PathRoutes+query, &v); code != http.StatusOK {
			t.Fatalf("%s: %d", query, code)
		}
		var out []string
		for _, r := range v.Routes {
			out = append(out, sg(r.Source, r.Group))
		}
		return out
	}
	mfc := func(query string) []string {
		var v api.MFC
		if code := controlGet(t, h, api.PathMFC+query, &v); code != http.StatusOK {
			t.Fatalf("%s: %d", query, code)
		}
		var out []string
		for _, e := range v.MFC {
			out = append(out, sg(e.Source, e.Group))
		}
		return out
	}
	joins := func(query string) []string {
		var v api.PIMJoins
		if code := controlGet(t, h, api.PathPIMJoins+query, &v); code != http.StatusOK {
			t.Fatalf("%s: %d", query, code)
		}
		var out []string
		for _, j := range v.Joins {
			out = append(out, sg(j.Source, j.Group))
		}
		return out
	}
	groups := func(query string) []string {
		var v api.IGMPGroups
		if code := controlGet(t, h, api.PathIGMPGroups+query, &v); code != http.StatusOK {
			t.Fatalf("%s: %d", query, code)
		}
		var out []string
		for _, g := range v.Groups {
			out = append(out, g.Interface+" "+g.Group)
		}
		return out
	}
	cases := []struct {
		what string
		got  []string
		want string
	}{
		{"routes", routes(""), "* 239.1.1.1, 10.0.1.2 239.1.1.1, 10.0.1.3 239.1.1.1, * 239.2.2.2, 10.0.1.3 239.2.2.2"},
		{"routes of a group", routes("?group=239.1.1.1"), "* 239.1.1.1, 10.0.1.2 239.1.1.1, 10.0.1.3 239.1.1.1"},
		{"routes of a source", routes("?source=10.0.1.3"), "10.0.1.3 239.1.1.1, 10.0.1.3 239.2.2.2"},
		{"one route", routes("?source=10.0.1.3&group=239.2.2.2"), "10.0.1.3 239.2.2.2"},
		{"no route", routes("?source=10.0.1.2&group=239.2.2.2"), ""},
		{"mfc", mfc(""), "10.0.1.2 239.1.1.1, 10.0.1.3 239.1.1.1, 10.0.1.3 239.2.2.2"},
		{"mfc of a group", mfc("?group=239.2.2.2"), "10.0.1.3 239.2.2.2"},
		{"mfc of a source", mfc("?source=10.0.1.2"), "10.0.1.2 239.1.1.1"},
		{"joins", joins(""), "* 239.1.1.1, 10.0.1.3 239.1.1.1, * 239.2.2.2, 10.0.1.3 239.2.2.2"},
		{"joins of a group", joins("?group=239.2.2.2"), "* 239.2.2.2, 10.0.1.3 239.2.2.2"},
		{"joins of a source", joins("?source=10.0.1.3&group=239.2.2.2"), "10.0.1.3 239.2.2.2"},
		{"joins of a static source", joins("?source=10.0.1.2"), ""},
		{"igmp groups", groups(""), "eth2 239.1.1.1, eth3 239.2.2.2"},
		{"igmp groups of an interface", groups("?interface=eth3"), "eth3 239.2.2.2"},
		{"igmp groups of a group", groups("?group=239.1.1.1"), "eth2 239.1.1.1"},
		{"igmp groups of both", groups("?interface=eth3&group=239.1.1.1"), ""},
	}
	for _, c := range cases {
		if got := strings.Join(c.got, ", "); got != c.want {
			t.Errorf("%s: %q, want %q", c.what, got, c.want)
		}
	}
	// An empty answer is an empty list, as without a filter.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", api.PathRoutes+"?group=239.9.9.9", nil))
	if w.Body.String() != `{"routes":[]}`+"\n" {
		t.Errorf("no routes: %s", w.Body)
	}
}

// A malformed, unknown or repeated parameter is refused with a message that says
// which, and counted; so is an interface that does not exist.
func TestControlBadQueries(t *testing.T) {
	l, _, _, _ := threeLinks(t, staticSG)
	l.runLoop()
	h := l.r.handler()
	cases := []struct {
		path string
		code int
		msg  string
	}{
		{api.PathRoutes + "?group=10.0.1.2", 400, "parameter group: 10.0.1.2 is not a multicast group address"},
		{api.PathRoutes + "?group=239.1.1", 400, `parameter group: "239.1.1" is not an IPv4 address`},
		{api.PathRoutes + "?group=ff02::1", 400, `parameter group: "ff02::1" is not an IPv4 address`},
		{api.PathRoutes + "?source=239.1.1.1", 400, "parameter source: 239.1.1.1 is a multicast group address, not a source's or a router's"},
		{api.PathRoutes + "?source=0.0.0.0", 400, "parameter source: 0.0.0.0 is not a source's or a router's address"},
		{api.PathRoutes + "?source=", 400, `parameter source: "" is not an IPv4 address`},
		{api.PathRoutes + "?grp=239.1.1.1", 400, `unknown parameter "grp": this view takes source, group`},
		{api.PathMFC + "?group=239.1.1.1&group=239.2.2.2", 400, `parameter "group" given 2 times`},
		{api.PathPIMJoins + "?interface=eth1", 400, `unknown parameter "interface": this view takes source, group`},
		{api.PathIGMPGroups + "?source=10.0.1.2", 400, `unknown parameter "source": this view takes interface, group`},
		{api.PathIGMPGroups + "?interface=a/b", 400, `parameter interface: "a/b" is not an interface name`},
		{api.PathIGMPGroups + "?interface=eth9", 404, `no interface "eth9"`},
		{api.PathStatus + "?verbose=1", 400, `unknown parameter "verbose": this view takes none`},
		{api.PathRoutes + "?group=%zz", 400, `invalid URL escape "%zz"`},
		{api.PathRPF, 400, "parameter address is missing"},
		{api.PathRPF + "?address=224.0.0.13", 400, "parameter address: 224.0.0.13 is a multicast group address, not a source's or a router's"},
		{api.PathRPF + "?address=10.0.1.2&group=239.1.1.1", 400, `unknown parameter "group": this view takes address`},
	}
	for _, c := range cases {
		var e api.Error
		if code := controlGet(t, h, c.path, &e); code != c.code || e.Error != c.msg {
			t.Errorf("%s: %d %q, want %d %q", c.path, code, e.Error, c.code, c.msg)
		}
	}
	if n := l.counter("control_bad_requests"); n != uint64(len(cases))-1 { // the missing interface is no bad request
		t.Errorf("control_bad_requests %d, want %d", n, len(cases)-1)
	}
}

// show rpf: the way back to an address and where it comes from, whichever that is.
func TestRPFView(t *testing.T) {
	l, eth1, _, _ := threeLinks(t, `
[[pim.rpf]]
prefix = "10.0.6.0/24"
interface = "eth2"
`)
	l.fib.entries[netip.MustParsePrefix("10.0.5.0/24")] = fibEntry{protocol: unix.RTPROT_OSPF, priority: 20}
	l.route("10.0.7.0/24", 13, "")
	l.hello(eth1, rpGateway.String())
	u32 := func(n uint32) *uint32 { return &n }
	cases := []struct {
		addr string
		want api.RPF
	}{
		{"10.0.1.2", api.RPF{Interface: "eth1", Origin: "connected", Prefix: "10.0.1.0/24"}},
		{"10.0.1.254", api.RPF{Interface: "eth1", Neighbor: "10.0.1.254", Origin: "connected", Prefix: "10.0.1.0/24"}},
		{"10.0.2.1", api.RPF{Interface: "eth2", Origin: "local", Prefix: "10.0.2.1/32"}},
		{"10.0.6.9", api.RPF{Interface: "eth2", Origin: "static", Prefix: "10.0.6.0/24"}},
		{"10.0.9.9", api.RPF{Interface: "eth1", Neighbor: "10.0.1.254", Origin: "fib", Prefix: "10.0.9.0/24",
			Gateway: "10.0.1.254", Protocol: "unspec", Metric: u32(0), Preference: u32(110)}},
		// A next hop not heard from yet is joined all the same.
		{"10.0.5.5", api.RPF{Interface: "eth3", Neighbor: "10.0.3.254", Origin: "fib", Prefix: "10.0.5.0/24",
			Gateway: "10.0.3.254", Protocol: "ospf", Metric: u32(20), Preference: u32(110)}},
		{"10.0.7.7", api.RPF{Interface: "eth3", Origin: "fib", Prefix: "10.0.7.0/24", Protocol: "unspec", Metric: u32(0), Preference: u32(110)}},
		{"192.0.2.1", api.RPF{Origin: "unreachable"}},
	}
	cached := len(l.r.paths.byAddr)
	for _, c := range cases {
		c.want.Address = c.addr
		got := l.r.rpfView(netip.MustParseAddr(c.addr))
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(c.want)
		if string(g) != string(w) {
			t.Errorf("%s:\n got %s\nwant %s", c.addr, g, w)
		}
	}
	// Asking kept nothing, and an address nobody routes to counts only when the
	// router itself needs the way there.
	if n := len(l.r.paths.byAddr); n != cached {
		t.Errorf("the reverse-path cache grew from %d to %d", cached, n)
	}
	if n := l.r.counters["rpf_unreachable"]; n != 0 {
		t.Errorf("rpf_unreachable %d", n)
	}
	// An address the router holds state for answers with the path it follows: the
	// cached one, until netlink reports the change.
	l.r.rpf(farSrc)
	l.route("10.0.5.0/24", 11, "10.0.1.254")
	if got := l.r.rpfView(farSrc); got.Interface != "eth3" {
		t.Errorf("before the route change: %+v", got)
	}
	l.routeChanged("10.0.5.0/24")
	l.r.rpf(farSrc)
	if got := l.r.rpfView(farSrc); got.Interface != "eth1" || got.Neighbor != "10.0.1.254" {
		t.Errorf("after the route change: %+v", got)
	}

	l.runLoop()
	var v api.RPF
	if code := controlGet(t, l.r.handler(), api.PathRPF+"?address=10.0.6.9", &v); code != http.StatusOK || v.Origin != "static" {
		t.Errorf("GET rpf: %d %+v", code, v)
	}
}

// Over the fabric, the way to a pod on another node is through that node.
func TestRPFViewFabric(t *testing.T) {
	l, _, fab, _ := fabricNode(t, fabricConf)
	l.peerHello(fab, node2, "10.244.2.0/24")
	got := l.r.rpfView(pod2)
	want := api.RPF{Address: "10.244.2.5", Interface: "mrfabric", Neighbor: "10.0.2.2", Origin: "fabric", Prefix: "10.244.2.0/24"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
