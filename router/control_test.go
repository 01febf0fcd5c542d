package router

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
