package router

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/router/netwatch"
)

// runOnFakes starts Run with a static route on three links, waits until it is
// ready, and returns what Run returns and what it logged.
func runOnFakes(t *testing.T, l *lab) (<-chan error, *bytes.Buffer) {
	t.Helper()
	var logged bytes.Buffer
	l.r.log = slog.New(slog.NewTextHandler(&logged, nil))
	l.r.clock = time.Now
	l.r.socket = t.TempDir() + "/mrouterd.sock"
	for i, name := range []string{"eth1", "eth2", "eth3"} {
		index := 11 + i
		l.net.links = append(l.net.links, netwatch.Link{Name: name, Index: index, Flags: net.FlagUp | net.FlagRunning | net.FlagMulticast})
		l.net.addrs[index] = []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(1 + i), 1}), 24)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	t.Cleanup(func() { l.mrt.Close() }) // after a panic nobody else closes it
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- l.r.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return done, &logged
}

// crashed checks that Run ended with the panic, logged with its stack, and left the
// kernel's table as it was.
func crashed(t *testing.T, l *lab, done <-chan error, logged *bytes.Buffer, where string) {
	t.Helper()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run goes on after a panic")
	}
	if _, ok := err.(*panicError); !ok || !strings.Contains(err.Error(), where) || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("Run returned %v, want the panic in the %s", err, where)
	}
	if log := logged.String(); !strings.Contains(log, "panic; exiting") || !strings.Contains(log, "goroutine ") {
		t.Errorf("the panic is not logged with its stack:\n%s", log)
	}
	if _, _, ok := l.mrt.entry(l.r, sgKey{Source: src, Group: grp1}); !ok || len(l.mrt.vifs) == 0 {
		t.Error("cleanup after a panic: the MFC or the VIFs were flushed")
	}
}

func TestPanicInLoop(t *testing.T) {
	l := newLab(t, staticSG)
	done, logged := runOnFakes(t, l)
	l.r.in.calls <- func() { panic("injected") }
	crashed(t, l, done, logged, "router loop")
}

// panickyNet is a netlink watcher that panics.
type panickyNet struct{ *fakeNet }

func (panickyNet) Watch(context.Context, chan<- netwatch.Event) { panic("injected") }

func TestPanicInWatcher(t *testing.T) {
	l := newLab(t, staticSG)
	l.r.links = panickyNet{l.net}
	done, logged := runOnFakes(t, l)
	crashed(t, l, done, logged, "netlink watcher")
}
