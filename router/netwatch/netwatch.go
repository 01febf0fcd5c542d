// Package netwatch follows the kernel's links, IPv4 addresses and unicast routes
// over netlink and hands them on as typed events. It lists them too, for a start
// and for a resync after notifications were lost.
package netwatch

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Event is a *LinkUpdate, *AddrUpdate, *RouteUpdate or Resync.
type Event interface{ isEvent() }

// Link is a network interface as the kernel reports it.
type Link struct {
	Index int
	Name  string
	Flags net.Flags
}

// LinkUpdate says a link appeared or changed, or, Gone, was deleted.
type LinkUpdate struct {
	Link
	Gone bool
}

// AddrUpdate says an IPv4 address was added to a link or, Gone, removed.
type AddrUpdate struct {
	Index  int
	Prefix netip.Prefix // the address and its subnet's length
	Gone   bool
}

// RouteUpdate says a unicast route of the main table to Dst came, went or
// changed: reverse paths through it may have moved.
type RouteUpdate struct{ Dst netip.Prefix }

// Resync says notifications may have been lost: list everything again. First marks
// the one sent once the first subscription holds: what changed between the owner's
// own first listing and then was never notified.
type Resync struct{ First bool }

func (*LinkUpdate) isEvent()  {}
func (*AddrUpdate) isEvent()  {}
func (*RouteUpdate) isEvent() {}
func (Resync) isEvent()       {}

// Netlink is the kernel's rtnetlink.
type Netlink struct{ Log *slog.Logger }

// Watch sends link, address and route changes to out until ctx is done. Once
// subscribed it sends Resync, since notifications may have been lost: before the
// first subscription held, or when one broke (socket overflow, error) and it
// subscribed again.
func (n Netlink) Watch(ctx context.Context, out chan<- Event) {
	backoff := 100 * time.Millisecond
	for first := true; ctx.Err() == nil; first = false {
		done := make(chan struct{})
		links := make(chan netlink.LinkUpdate, 64)
		addrs := make(chan netlink.AddrUpdate, 64)
		routes := make(chan netlink.RouteUpdate, 256)
		errs := func(err error) {
			if ctx.Err() == nil { // the subscriptions fail as they close: no news
				n.Log.Warn("netlink subscription", "err", err)
			}
		}
		err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{
			ErrorCallback: errs, ReceiveBufferSize: 1 << 20})
		if err == nil {
			err = netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{
				ErrorCallback: errs, ReceiveBufferSize: 1 << 20})
		}
		if err == nil {
			err = netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{
				ErrorCallback: errs, ReceiveBufferSize: 1 << 20})
		}
		if err != nil {
			close(done)
			n.Log.Error("netlink subscribe", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		send(ctx, out, Resync{First: first})
		forward(ctx, out, links, addrs, routes)
		close(done)
		// Drain so the library's reader goroutines can finish.
		for range links {
		}
		for range addrs {
		}
		for range routes {
		}
	}
}

// forward passes updates on until ctx is done or a subscription closes.
func forward(ctx context.Context, out chan<- Event, links <-chan netlink.LinkUpdate, addrs <-chan netlink.AddrUpdate,
	routes <-chan netlink.RouteUpdate) {
	for {
		var ev Event
		select {
		case <-ctx.Done():
			return
		case u, ok := <-links:
			if !ok {
				return
			}
			ev = linkEvent(u)
		case u, ok := <-addrs:
			if !ok {
				return
			}
			ev = addrEvent(u)
		case u, ok := <-routes:
			if !ok {
				return
			}
			ev = routeEvent(u)
		}
		if ev != nil {
			send(ctx, out, ev)
		}
	}
}

func send(ctx context.Context, out chan<- Event, ev Event) {
	select {
	case out <- ev:
	case <-ctx.Done():
	}
}

func linkEvent(u netlink.LinkUpdate) *LinkUpdate {
	return &LinkUpdate{Link: linkOf(u.Link), Gone: u.Header.Type == unix.RTM_DELLINK}
}

func linkOf(l netlink.Link) Link {
	a := l.Attrs()
	return Link{Index: a.Index, Name: a.Name, Flags: a.Flags}
}

// addrEvent is nil for an address that is not IPv4.
func addrEvent(u netlink.AddrUpdate) Event {
	p, ok := toPrefix(u.LinkAddress)
	if !ok {
		return nil
	}
	return &AddrUpdate{Index: u.LinkIndex, Prefix: p, Gone: !u.NewAddr}
}

// routeEvent is nil for a route that cannot steer RPF: only unicast routes of the
// main table do; the MFC's own and the local table's churn are not worth a wakeup.
func routeEvent(u netlink.RouteUpdate) Event {
	if u.Route.Table != unix.RT_TABLE_MAIN || u.Route.Type != unix.RTN_UNICAST {
		return nil
	}
	dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0) // the default route
	if u.Dst != nil {
		if p, ok := toPrefix(*u.Dst); ok {
			dst = p.Masked()
		}
	}
	return &RouteUpdate{Dst: dst}
}

// Links lists every link.
func (Netlink) Links() ([]Link, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	out := make([]Link, 0, len(links))
	for _, l := range links {
		out = append(out, linkOf(l))
	}
	return out, nil
}

// Link looks a link up by name.
func (Netlink) Link(name string) (Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return Link{}, err
	}
	return linkOf(l), nil
}

// Addresses lists every IPv4 address, by link index.
func (Netlink) Addresses() (map[int][]netip.Prefix, error) {
	addrs, err := netlink.AddrList(nil, unix.AF_INET)
	if err != nil {
		return nil, err
	}
	out := make(map[int][]netip.Prefix)
	for _, a := range addrs {
		if p, ok := toPrefix(*a.IPNet); ok {
			out[a.LinkIndex] = append(out[a.LinkIndex], p)
		}
	}
	return out, nil
}

func toPrefix(n net.IPNet) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap()
	if !addr.Is4() {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(addr, ones), true
}
