package router

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/conf"
	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/pim"
	"github.com/mrouterd/mrouterd/router/mrib"
	"github.com/mrouterd/mrouterd/router/netwatch"
)

// fakeMRT is a kernel multicast routing table in memory. The socket reader and the
// loop both use it, hence the lock.
type fakeMRT struct {
	mu        sync.Mutex
	vifs      map[uint16]mroute.VIF
	mfc       map[sgKey]mroute.MFC
	pim       bool
	regIndex  int              // the ifindex the register VIF's device has
	forwarded map[sgKey]uint64 // SGCount's packets; none unless a test sets them
	messages  chan mroute.Message
	closed    chan struct{}
	closeOnce sync.Once
}

func newFakeMRT() *fakeMRT {
	return &fakeMRT{vifs: make(map[uint16]mroute.VIF), mfc: make(map[sgKey]mroute.MFC),
		messages: make(chan mroute.Message, 64), closed: make(chan struct{})}
}

func (f *fakeMRT) Read([]byte) (mroute.Message, error) {
	select {
	case m := <-f.messages:
		return m, nil
	case <-f.closed:
		return mroute.Message{}, net.ErrClosed
	}
}

func (f *fakeMRT) AddVIF(v mroute.VIF) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vifs[v.Index] = v
	return nil
}

func (f *fakeMRT) DelVIF(vif uint16) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.vifs, vif)
	return nil
}

func (f *fakeMRT) AddMFC(e mroute.MFC) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mfc[sgKey{Source: e.Source, Group: e.Group}] = e
	return nil
}

func (f *fakeMRT) DelMFC(source, group netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.mfc, sgKey{Source: source, Group: group})
	return nil
}

func (f *fakeMRT) Flush(mroute.FlushFlags) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.mfc)
	clear(f.vifs)
	return nil
}

func (f *fakeMRT) SetPIM(on bool) error { f.pim = on; return nil }
func (f *fakeMRT) VIFCount(uint16) (mroute.VIFCount, error) {
	return mroute.VIFCount{PacketsIn: 1}, nil
}

func (f *fakeMRT) SGCount(source, group netip.Addr) (mroute.SGCount, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := sgKey{Source: source, Group: group}
	if _, ok := f.mfc[key]; !ok {
		return mroute.SGCount{}, unix.EADDRNOTAVAIL
	}
	return mroute.SGCount{Packets: f.forwarded[key]}, nil
}

// Detach ends the reader; the table itself stays for a fake that adopts it (adopt).
func (f *fakeMRT) Detach() (int, error) {
	f.closeOnce.Do(func() { close(f.closed) })
	return 100, nil
}

func (f *fakeMRT) Share(fn func(fd int) error) error { return fn(100) }

// adopt is the same table behind a new socket, as the next program sees it.
func (f *fakeMRT) adopt() *fakeMRT {
	return &fakeMRT{vifs: f.vifs, mfc: f.mfc, regIndex: f.regIndex,
		messages: make(chan mroute.Message, 64), closed: make(chan struct{})}
}

func (f *fakeMRT) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeMRT) ifindex(vif uint16) int {
	v := f.vifs[vif]
	if v.Register {
		return f.regIndex
	}
	return v.IfIndex
}

// Dump reports the entries as the kernel would: by ifindex.
func (f *fakeMRT) Dump() ([]mroute.KernelEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []mroute.KernelEntry
	for _, e := range f.mfc {
		k := mroute.KernelEntry{Source: e.Source, Group: e.Group, IIF: f.ifindex(e.IIF), Packets: 1}
		for _, o := range e.OIFs {
			k.OIFs = append(k.OIFs, f.ifindex(o))
		}
		slices.Sort(k.OIFs)
		out = append(out, k)
	}
	return out, nil
}

// entry is what the kernel holds for (S,G), as interface names.
func (f *fakeMRT) entry(r *Router, key sgKey) (iif string, oifs []string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.mfc[key]
	if !ok {
		return "", nil, false
	}
	name := func(vif uint16) string {
		for _, ifc := range r.ifaces {
			if ifc.vif == int(vif) {
				return ifc.name
			}
		}
		return "?"
	}
	for _, o := range e.OIFs {
		oifs = append(oifs, name(o))
	}
	slices.Sort(oifs)
	return name(e.IIF), oifs, true
}

// fakeFIB is a unicast routing table: the longest prefix wins. Its entries say
// who installed a route and its metric when set (zero otherwise). Interfaces
// without an address of their own send from node.
type fakeFIB struct {
	routes  map[netip.Prefix]fibRoute
	entries map[netip.Prefix]fibEntry
	node    netip.Addr
	// lookups counts the questions Route and Entry were asked.
	lookups, entryLookups int
}

func (f *fakeFIB) DirectRoutes() ([]directRoute, error) {
	var out []directRoute
	for p, rt := range f.routes {
		if !rt.gateway.IsValid() {
			out = append(out, directRoute{dst: p, ifindex: rt.ifindex})
		}
	}
	return out, nil
}

func (f *fakeFIB) Source(int) (netip.Addr, error) {
	if !f.node.IsValid() {
		return netip.Addr{}, io.EOF
	}
	return f.node, nil
}

func (f *fakeFIB) Route(addr netip.Addr) (fibRoute, error) {
	f.lookups++
	p, err := f.match(addr)
	return f.routes[p], err
}

func (f *fakeFIB) Entry(addr netip.Addr) (fibEntry, error) {
	f.entryLookups++
	p, err := f.match(addr)
	if err != nil {
		return fibEntry{}, err
	}
	e := f.entries[p]
	e.prefix = p
	return e, nil
}

func (f *fakeFIB) match(addr netip.Addr) (netip.Prefix, error) {
	best, found := netip.Prefix{}, false
	for p := range f.routes {
		if p.Contains(addr) && (!found || p.Bits() > best.Bits()) {
			best, found = p, true
		}
	}
	if !found {
		return netip.Prefix{}, io.EOF
	}
	return best, nil
}

// sentPIM is a PIM message the router sent: out of an interface, or unicast to dst.
type sentPIM struct {
	ifindex int
	src     netip.Addr // invalid when the kernel picks it
	dst     netip.Addr
	msg     any
}

// fakePIM records what the router sends and hands it what a test receives.
type fakePIM struct {
	mu     sync.Mutex
	sent   []sentPIM
	closed chan struct{}
}

func (f *fakePIM) record(ifindex int, src, dst netip.Addr, b []byte) error {
	m, err := pim.Decode(b)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, sentPIM{ifindex: ifindex, src: src, dst: dst, msg: m})
	return nil
}

func (f *fakePIM) send(ifindex int, src netip.Addr, b []byte) error {
	return f.record(ifindex, src, allPIMRouters, b)
}
func (f *fakePIM) sendTo(src, dst netip.Addr, b []byte) error { return f.record(0, src, dst, b) }

func (f *fakePIM) read([]byte) (pimPacket, error) {
	<-f.closed
	return pimPacket{}, net.ErrClosed
}

func (f *fakePIM) Close() error { return nil }

// take returns and forgets what was sent.
func (f *fakePIM) take() []sentPIM {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.sent
	f.sent = nil
	return out
}

// fakeIGMP counts the queries sent.
type fakeIGMP struct{ queries int }

func (f *fakeIGMP) sendQuery(int, netip.Addr, netip.Addr, *igmp.Query) error {
	f.queries++
	return nil
}
func (f *fakeIGMP) Close() error { return nil }

// fakeTap hands the router what a test sends on packets, and records the
// interfaces it is told to leave out.
type fakeTap struct {
	packets  chan tapped
	mu       sync.Mutex
	excluded []int
}

func (f *fakeTap) Read([]byte) (tapped, error) {
	p, ok := <-f.packets
	if !ok {
		return tapped{}, net.ErrClosed
	}
	return p, nil
}

func (f *fakeTap) Exclude(ifindexes []int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.excluded = slices.Clone(ifindexes)
	return nil
}

func (f *fakeTap) Close() error { return nil }

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// lab is a router on fakes and the fakes it runs on.
type lab struct {
	t     *testing.T
	r     *Router
	mrt   *fakeMRT
	fib   *fakeFIB
	pim   *fakePIM
	igmp  *fakeIGMP
	tap   *fakeTap
	net   *fakeNet
	clock *fakeClock
}

func newLab(t *testing.T, cfgText string) *lab {
	t.Helper()
	cfg, err := conf.Parse("test.toml", []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, mrt: newFakeMRT(), fib: &fakeFIB{routes: make(map[netip.Prefix]fibRoute), entries: make(map[netip.Prefix]fibEntry)},
		pim: &fakePIM{closed: make(chan struct{})}, igmp: &fakeIGMP{}, tap: &fakeTap{packets: make(chan tapped, 16)}, net: &fakeNet{addrs: make(map[int][]netip.Prefix), events: make(chan netwatch.Event)},
		clock: &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	l.r = newState(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	l.r.clock, l.r.mrt, l.r.fib, l.r.pimIO, l.r.igmp, l.r.links = l.clock.now, l.mrt, l.fib, l.pim, l.igmp, l.net
	l.r.tap = l.tap
	t.Cleanup(func() { close(l.pim.closed); close(l.tap.packets) })
	return l
}

// link brings up an interface with one address, as netlink reports it.
func (l *lab) link(name string, index int, addr string) *iface {
	return l.linkWith(netwatch.Link{Name: name, Index: index, Flags: net.FlagUp | net.FlagRunning | net.FlagMulticast}, addr)
}

func (l *lab) linkWith(link netwatch.Link, addr string) *iface {
	l.net.links = append(l.net.links, link)
	l.r.linkSeen(link)
	if addr != "" {
		p := netip.MustParsePrefix(addr)
		l.net.addrs[link.Index] = append(l.net.addrs[link.Index], p)
		l.r.addrChanged(link.Index, p, true)
	}
	return l.r.ifaces[link.Name]
}

// fakeNet is the kernel's links and addresses; Watch passes on what a test sends
// on events.
type fakeNet struct {
	links  []netwatch.Link
	addrs  map[int][]netip.Prefix
	events chan netwatch.Event
}

func (f *fakeNet) Watch(ctx context.Context, out chan<- netwatch.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-f.events:
			out <- ev
		}
	}
}
func (f *fakeNet) Links() ([]netwatch.Link, error)            { return f.links, nil }
func (f *fakeNet) Addresses() (map[int][]netip.Prefix, error) { return f.addrs, nil }

func (f *fakeNet) Link(name string) (netwatch.Link, error) {
	for _, l := range f.links {
		if l.Name == name {
			return l, nil
		}
	}
	return netwatch.Link{}, io.EOF
}

// route adds a unicast route to the fake FIB, via a gateway or directly.
func (l *lab) route(prefix string, index int, gateway string) {
	rt := fibRoute{ifindex: index}
	if gateway != "" {
		rt.gateway = netip.MustParseAddr(gateway)
	}
	l.fib.routes[netip.MustParsePrefix(prefix)] = rt
}

// settle runs what the loop runs between events, and sends the Join/Prunes at once.
func (l *lab) settle() {
	l.r.settle()
	l.r.treeActions(l.r.rib.Tree().Flush())
}

// report has a host on an interface send an IGMPv3 report.
func (l *lab) report(ifc *iface, host string, recs ...igmp.Record) {
	l.t.Helper()
	l.r.handleIGMP(reportPacket(l.t, host, recs...), ifc.index, l.r.now())
	l.settle()
}

// reportPacket is an IGMPv3 report from a host, IP header included.
func reportPacket(t *testing.T, host string, recs ...igmp.Record) []byte {
	t.Helper()
	return igmpMessage(t, netip.MustParseAddr(host), igmp.AllV3Routers, &igmp.Report{Version: 3, Records: recs})
}

// igmpMessage is an IGMP message from src to dst, IP header included.
func igmpMessage(t *testing.T, src, dst netip.Addr, m interface{ Marshal() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pkt := make([]byte, 20+len(b))
	pkt[0], pkt[8], pkt[9] = 0x45, 1, 2
	binary.BigEndian.PutUint16(pkt[2:4], uint16(len(pkt)))
	copy(pkt[12:16], src.AsSlice())
	copy(pkt[16:20], dst.AsSlice())
	binary.BigEndian.PutUint16(pkt[10:12], igmp.Checksum(pkt[:20]))
	copy(pkt[20:], b)
	return pkt
}

// dataPacket is the IP header of a UDP packet from src to group with a TTL, as the
// tap passes it.
func dataPacket(src, group netip.Addr, ttl uint8) []byte {
	pkt := make([]byte, 28)
	pkt[0], pkt[8], pkt[9] = 0x45, ttl, 17
	binary.BigEndian.PutUint16(pkt[2:4], uint16(len(pkt)))
	copy(pkt[12:16], src.AsSlice())
	copy(pkt[16:20], group.AsSlice())
	return pkt
}

// receivePIM has a neighbour send a PIM message on an interface.
func (l *lab) receivePIM(ifc *iface, from string, m mrib.Message) {
	l.t.Helper()
	b, err := m.Marshal()
	if err != nil {
		l.t.Fatal(err)
	}
	pkt := pimPacket{data: b, src: netip.MustParseAddr(from), dst: allPIMRouters, ttl: 1}
	switch m.(type) {
	case *pim.Register, *pim.RegisterStop:
		pkt.dst, pkt.ttl = ifc.primary(), 63 // unicast, routed
	}
	l.receivePIMPacket(ifc, pkt)
}

// receivePIMPacket has the router receive a PIM packet, as addressed, on an interface.
func (l *lab) receivePIMPacket(ifc *iface, pkt pimPacket) {
	l.t.Helper()
	pkt.ifindex = ifc.index
	l.r.handlePIM(pkt, l.r.now())
	l.settle()
}

// hello has a PIM router on an interface say Hello, so that it is a neighbour.
func (l *lab) hello(ifc *iface, from string) {
	l.t.Helper()
	l.receivePIM(ifc, from, &pim.Hello{})
}

// upcall hands the router a kernel upcall for (S,G) on an interface's VIF. The
// kernel raises none on an interface without a VIF: there the tap sees the packet
// first, and the VIF it gets makes the upcall.
func (l *lab) upcall(typ mroute.UpcallType, ifc *iface, s, g netip.Addr, pkt []byte) {
	l.t.Helper()
	if !ifc.hasVIF() {
		l.r.handleSighting(sighting{ifindex: ifc.index, source: s, group: g, ttl: 64}, l.r.now())
		l.settle()
		if !ifc.hasVIF() {
			l.t.Fatalf("a source on %s got no VIF", ifc.name)
		}
	}
	l.r.handleUpcall(mroute.Upcall{Type: typ, VIF: uint16(ifc.vif), Source: s, Group: g, Packet: pkt})
	l.settle()
}

// mfc checks what the kernel holds for (S,G); no iif means no entry at all.
func (l *lab) mfc(key sgKey, iif string, oifs ...string) {
	l.t.Helper()
	gotIIF, gotOIFs, ok := l.mrt.entry(l.r, key)
	if iif == "" {
		if ok {
			l.t.Fatalf("%v installed (%s -> %v), want none", key, gotIIF, gotOIFs)
		}
		return
	}
	if !ok || gotIIF != iif || !slices.Equal(gotOIFs, oifs) {
		l.t.Fatalf("%v: kernel holds %v %s -> %v, want %s -> %v", key, ok, gotIIF, gotOIFs, iif, oifs)
	}
}

// sentOf lists the messages of one type sent since the last call.
func sentOf[T any](l *lab) []T {
	var out []T
	for _, s := range l.pim.take() {
		if m, ok := s.msg.(T); ok {
			out = append(out, m)
		}
	}
	return out
}

// routeChanged has netlink report a change of the unicast route to a prefix.
func (l *lab) routeChanged(prefix string) {
	p := netip.MustParsePrefix(prefix)
	l.r.handleNetwork(&netwatch.RouteUpdate{Dst: p})
	l.settle()
}
