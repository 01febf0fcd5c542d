package router

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
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
