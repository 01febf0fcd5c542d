// Package netnstest makes network namespaces for tests and runs code inside
// them: the lab's nodes, and kernel-level tests that need no lab (packet
// sockets, VXLAN).
package netnstest

import (
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// InNetns runs fn on an OS thread inside ns. The thread is never unlocked, so
// the runtime ends it with the goroutine rather than reuse it elsewhere.
func InNetns(ns netns.NsHandle, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			done <- err
			return
		}
		done <- fn()
	}()
	return <-done
}

// New makes a named namespace with lo up, deleted when the test ends, and
// a netlink handle for it.
func New(t *testing.T, name string) (netns.NsHandle, *netlink.Handle) {
	t.Helper()
	type made struct {
		ns  netns.NsHandle
		err error
	}
	done := make(chan made, 1)
	go func() {
		runtime.LockOSThread() // NewNamed moves the thread: never unlocked
		ns, err := netns.NewNamed(name)
		done <- made{ns, err}
	}()
	m := <-done
	if m.err != nil {
		t.Fatalf("netns %s: %v", name, m.err)
	}
	t.Cleanup(func() {
		m.ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	h, err := netlink.NewHandleAt(m.ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("netns %s: lo: %v", name, err)
	}
	return m.ns, h
}
