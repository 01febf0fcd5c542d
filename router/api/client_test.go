package api

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serveUnix serves h on a unix socket in a fresh directory and returns the socket path.
func serveUnix(t *testing.T, h http.Handler) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return path
}

func TestNewClientSocket(t *testing.T) {
	t.Setenv(SocketEnv, "")
	if got := NewClient("").Socket(); got != DefaultSocket {
		t.Errorf("no socket, no env: %q, want %q", got, DefaultSocket)
	}
	t.Setenv(SocketEnv, "/tmp/from-env.sock")
	if got := NewClient("").Socket(); got != "/tmp/from-env.sock" {
		t.Errorf("env: %q", got)
	}
	if got := NewClient("/tmp/given.sock").Socket(); got != "/tmp/given.sock" {
		t.Errorf("given socket loses to env: %q", got)
	}
}

func TestClientGetPostRaw(t *testing.T) {
	const routes = `{"routes": [{"source": "*", "group": "239.1.1.1", "oifs": ["eth2"]}]}` + "\n"
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathRoutes, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(routes))
	})
	mux.HandleFunc("POST "+PathReload, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"changed":true,"summary":["igmp: query-interval 125s -> 60s"]}`))
	})
	mux.HandleFunc("GET "+PathStatus, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"router loop is busy"}`))
	})
	mux.HandleFunc("GET "+PathMFC, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "plain failure", http.StatusInternalServerError)
	})
	c := NewClient(serveUnix(t, mux))
	ctx := context.Background()

	raw, err := c.Raw(ctx, http.MethodGet, PathRoutes)
	if err != nil || string(raw) != routes {
		t.Fatalf("Raw = %q, %v; want the body as served", raw, err)
	}
	var rs Routes
	if err := c.Get(ctx, PathRoutes, &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs.Routes) != 1 || rs.Routes[0].Group != "239.1.1.1" || rs.Routes[0].OIFs[0] != "eth2" {
		t.Errorf("Get decoded %+v", rs)
	}
	var rl Reload
	if err := c.Post(ctx, PathReload, &rl); err != nil || !rl.Changed || len(rl.Summary) != 1 {
		t.Errorf("Post = %+v, %v", rl, err)
	}
	if err := c.Get(ctx, PathStatus, &Status{}); err == nil || err.Error() != "router loop is busy" {
		t.Errorf("error body: %v, want the daemon's message alone", err)
	}
	if err := c.Get(ctx, PathMFC, &MFC{}); err == nil || err.Error() != "mrouterd replied 500 Internal Server Error: plain failure" {
		t.Errorf("non-JSON error body: %v", err)
	}
}

func TestClientNotRunning(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	// A socket file whose listener is gone: what a crashed daemon leaves behind.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()

	for _, path := range []string{missing, stale} {
		err := NewClient(path).Get(context.Background(), PathStatus, &Status{})
		want := "mrouterd is not running (no control socket at " + path + ")"
		if err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", filepath.Base(path), err, want)
		}
	}
}

// The tests may run as root, for whom a socket's mode is no obstacle, so the
// permission case is checked on the error the dialer returns.
func TestClientPermissionDenied(t *testing.T) {
	c := NewClient("/run/mrouterd/mrouterd.sock")
	dialErr := &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)}
	err := c.requestError(dialErr)
	if !strings.HasPrefix(err.Error(), "permission denied on control socket /run/mrouterd/mrouterd.sock") {
		t.Errorf("got %q", err)
	}
}

func TestClientTimeout(t *testing.T) {
	unblock := make(chan struct{})
	path := serveUnix(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-unblock }))
	defer close(unblock)
	c := NewClient(path)
	c.timeout = 50 * time.Millisecond
	err := c.Get(context.Background(), PathStatus, &Status{})
	if err == nil || err.Error() != "mrouterd did not answer on "+path+" in time" {
		t.Errorf("got %v", err)
	}
}
