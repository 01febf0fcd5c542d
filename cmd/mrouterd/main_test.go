package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFlags(t *testing.T) {
	o, err := parseFlags([]string{"--config", "/x.toml", "-s", "/y.sock", "--log-level", "debug"})
	if err != nil || o.config != "/x.toml" || !o.configGiven || o.socket != "/y.sock" || o.logLevel != "debug" {
		t.Fatalf("%+v %v", o, err)
	}
	o, err = parseFlags(nil)
	if err != nil || o.configGiven || o.config != "/etc/mrouterd/mrouterd.toml" {
		t.Fatalf("defaults: %+v %v", o, err)
	}
	if _, err := parseFlags([]string{"extra"}); err == nil {
		t.Fatal("stray argument accepted")
	}
	if _, err := newLogger("loud", "text"); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Fatalf("bad level: %v", err)
	}
	if _, err := newLogger("info", "xml"); err == nil {
		t.Fatal("bad format accepted")
	}
}

// The default config path may be absent (embedded defaults apply); a path given on
// the command line must exist.
func TestConfigFallback(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.toml")
	cfg, err := options{config: missing}.loadConfig()
	if err != nil || cfg.File != "" {
		t.Fatalf("implicit missing file: %v %+v", err, cfg)
	}
	if _, err := (options{config: missing, configGiven: true}).loadConfig(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("explicit missing file: %v", err)
	}
}

func TestNotifier(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "20000")
	t.Setenv("WATCHDOG_PID", "")
	n := newNotifier()
	if n.interval != 10*time.Millisecond {
		t.Fatalf("watchdog interval %v, want half of WATCHDOG_USEC", n.interval)
	}
	read := func() string {
		buf := make([]byte, 256)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:k])
	}
	n.notify("READY=1")
	if got := read(); got != "READY=1" {
		t.Fatalf("got %q", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.watchdog(ctx, func(context.Context) error { return nil })
	if got := read(); got != "WATCHDOG=1" {
		t.Fatalf("got %q", got)
	}
}
