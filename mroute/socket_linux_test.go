package mroute_test

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/test/lab"
)

// Every test below runs in its own network namespace. Inside lab.InNewNetns
// only the calling thread is in the namespace, so failures use t.Error and
// return, and sockets are opened on that thread.

// links holds the ifindexes of a veth pair (upstream, downstream) and of one
// end of a second pair that serves as a sink for forwarded packets.
type links struct {
	up, down, sink int
}

// addLinks creates mra <-> mrb and mrd <-> mre (veth; not a dummy device, which
// some kernels lack), with 10.9.0.1/24, 10.9.1.1/24 and 10.9.2.1/24 on mra, mrb
// and mrd. A packet sent out of mra arrives on mrb.
func addLinks(t *testing.T) (links, bool) {
	t.Helper()
	for _, pair := range [][2]string{{"mra", "mrb"}, {"mrd", "mre"}} {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: pair[0]}, PeerName: pair[1]}
		if err := netlink.LinkAdd(veth); err != nil {
			t.Errorf("add veth %s: %v", pair[0], err)
			return links{}, false
		}
	}
	var l links
	for _, c := range []struct {
		name, addr string
		ifindex    *int
	}{
		{"mra", "10.9.0.1/24", &l.up},
		{"mrb", "10.9.1.1/24", &l.down},
		{"mrd", "10.9.2.1/24", &l.sink},
		{"mre", "", nil},
	} {
		link, err := netlink.LinkByName(c.name)
		if err == nil {
			err = netlink.LinkSetUp(link)
		}
		if err == nil && c.addr != "" {
			addr, _ := netlink.ParseAddr(c.addr)
			err = netlink.AddrAdd(link, addr)
		}
		if err != nil {
			t.Errorf("set up %s: %v", c.name, err)
			return links{}, false
		}
		if c.ifindex != nil {
			*c.ifindex = link.Attrs().Index
		}
	}
	// Until the link watcher has seen the carrier, the device has no queue and
	// drops what is sent.
	running := func() bool {
		for _, name := range []string{"mra", "mrb", "mrd", "mre"} {
			link, err := netlink.LinkByName(name)
			if err != nil || link.Attrs().OperState != netlink.OperUp {
				return false
			}
		}
		return true
	}
	if !eventually(running) {
		t.Error("veth interfaces not operationally up after 3 s")
		return links{}, false
	}
	return l, true
}

// addVIFs makes mra VIF 0, mrb VIF 1 and mrd VIF 2.
func addVIFs(t *testing.T, s *mroute.Socket, l links) bool {
	t.Helper()
	for i, ifindex := range []int{l.up, l.down, l.sink} {
		if err := s.AddVIF(mroute.VIF{Index: uint16(i), IfIndex: ifindex}); err != nil {
			t.Errorf("AddVIF %d: %v", i, err)
			return false
		}
	}
	return true
}

// withTable runs fn in a namespace of its own with addLinks' links and table 0
// open with addVIFs' VIFs.
func withTable(t *testing.T, fn func(s *mroute.Socket, l links)) {
	lab.InNewNetns(t, func() {
		l, ok := addLinks(t)
		if !ok {
			return
		}
		s, err := mroute.Open(0)
		if err != nil {
			t.Errorf("Open(0): %v", err)
			return
		}
		defer s.Close()
		if addVIFs(t, s, l) {
			fn(s, l)
		}
	})
}

// injector sends hand-built IPv4 packets out of one interface, so their source
// can be a host that is not local (a local source would be a martian on the
// receiving end).
type injector struct{ fd int }

func newInjector(t *testing.T, ifindex int) (*injector, bool) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err == nil {
		err = unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifindex)})
	}
	if err == nil {
		err = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0)
	}
	if err != nil {
		t.Errorf("injector socket: %v", err)
		return nil, false
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &injector{fd: fd}, true
}

func (in *injector) send(t *testing.T, pkt []byte) bool {
	t.Helper()
	dst := &unix.SockaddrInet4{Addr: [4]byte(pkt[16:20])}
	if err := unix.Sendto(in.fd, pkt, 0, dst); err != nil {
		t.Errorf("inject packet: %v", err)
		return false
	}
	return true
}

// ipPacket builds an IPv4 packet; the kernel fills in the length, ID and
// header checksum.
func ipPacket(proto, ttl byte, src, dst netip.Addr, payload []byte) []byte {
	b := make([]byte, 20, 20+len(payload))
	b[0] = 0x45
	b[8], b[9] = ttl, proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return append(b, payload...)
}

func udpDatagram(src, grp netip.Addr, ttl byte) []byte {
	udp := make([]byte, 8, 8+5)
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], 5001)
	binary.BigEndian.PutUint16(udp[4:], 8+5)
	// A zero UDP checksum means none, which is valid over IPv4.
	return ipPacket(unix.IPPROTO_UDP, ttl, src, grp, append(udp, "hello"...))
}

// igmpV3Report is an IGMPv3 membership report with no records, sent to
// 224.0.0.22.
func igmpV3Report(t *testing.T, src netip.Addr) []byte {
	t.Helper()
	msg, err := (&igmp.Report{Version: 3}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return ipPacket(unix.IPPROTO_IGMP, 1, src, igmp.AllV3Routers, msg)
}

// eventually polls cond until it holds or the deadline passes: forwarding
// happens in softirq context, after the sending syscall has returned.
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func dump(t *testing.T, table uint32) []mroute.KernelEntry {
	t.Helper()
	entries, err := mroute.Dump(table)
	if err != nil {
		t.Errorf("Dump(%d): %v", table, err)
	}
	return entries
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestSocketMFCLifecycle(t *testing.T) {
	withTable(t, func(s *mroute.Socket, l links) {
		if s.Table() != 0 || s.IPConn() == nil {
			t.Errorf("Table() = %d, IPConn() = %v", s.Table(), s.IPConn())
		}
		err := s.AddVIF(mroute.VIF{Index: 1, IfIndex: l.sink})
		if err == nil || !strings.Contains(err.Error(), "vif 1 (ifindex ") {
			t.Errorf("AddVIF on a used slot = %v, want an error naming vif and ifindex", err)
		}

		counted := mroute.MFC{Source: mustAddr("10.9.0.2"), Group: mustAddr("239.1.1.1"), IIF: 1, OIFs: []uint16{2}}
		fanout := mroute.MFC{Source: mustAddr("10.9.0.3"), Group: mustAddr("239.1.1.2"), IIF: 1, OIFs: []uint16{2, 0}}
		for _, e := range []mroute.MFC{counted, fanout} {
			if err := s.AddMFC(e); err != nil {
				t.Errorf("AddMFC: %v", err)
				return
			}
		}
		entries := dump(t, 0)
		if len(entries) != 2 {
			t.Errorf("Dump after two AddMFC: %+v", entries)
			return
		}
		wantOIFs := []int{l.up, l.sink}
		slices.Sort(wantOIFs)
		for i, want := range []struct {
			e    mroute.MFC
			oifs []int
		}{{counted, []int{l.sink}}, {fanout, wantOIFs}} {
			got := entries[i]
			if got.Source != want.e.Source || got.Group != want.e.Group || got.IIF != l.down ||
				!slices.Equal(got.OIFs, want.oifs) || got.Unresolved || got.Static {
				t.Errorf("entry %d = %+v, want (%s,%s) iif %d oifs %v", i, got, want.e.Source, want.e.Group, l.down, want.oifs)
			}
		}

		// Forward three packets arriving on mrb and read them back in the counters.
		in, ok := newInjector(t, l.up)
		if !ok {
			return
		}
		for range 3 {
			if !in.send(t, udpDatagram(counted.Source, counted.Group, 8)) {
				return
			}
		}
		var sg mroute.SGCount
		if !eventually(func() bool { sg, err = s.SGCount(counted.Source, counted.Group); return err == nil && sg.Packets == 3 }) {
			t.Errorf("SGCount = %+v, %v; want 3 packets", sg, err)
		}
		if sg.Bytes != 3*33 {
			t.Errorf("SGCount bytes = %d, want %d", sg.Bytes, 3*33)
		}
		in1, err1 := s.VIFCount(1)
		out2, err2 := s.VIFCount(2)
		if err1 != nil || err2 != nil || in1.PacketsIn != 3 || out2.PacketsOut != 3 {
			t.Errorf("VIFCount(1) = %+v, %v; VIFCount(2) = %+v, %v; want 3 in and 3 out", in1, err1, out2, err2)
		}
		if _, err := s.VIFCount(9); err == nil {
			t.Error("VIFCount of a missing VIF succeeded")
		}
		if got := dump(t, 0); len(got) == 2 && (got[0].Packets != 3 || got[0].Bytes != 3*33 || got[0].Idle > 2*time.Second) {
			t.Errorf("dumped counters of %s = %+v", counted.Group, got[0])
		}

		for _, e := range []mroute.MFC{counted, fanout} {
			if err := s.DelMFC(e.Source, e.Group); err != nil {
				t.Errorf("DelMFC: %v", err)
			}
		}
		if got := dump(t, 0); len(got) != 0 {
			t.Errorf("Dump after DelMFC: %+v", got)
		}
		if err := s.DelMFC(counted.Source, counted.Group); !errors.Is(err, unix.ENOENT) {
			t.Errorf("DelMFC of a missing entry = %v, want ENOENT", err)
		}
		if _, err := s.SGCount(counted.Source, counted.Group); !errors.Is(err, unix.EADDRNOTAVAIL) {
			t.Errorf("SGCount of a missing entry = %v, want EADDRNOTAVAIL", err)
		}
		if err := s.DelVIF(2); err != nil {
			t.Errorf("DelVIF: %v", err)
		}
		if err := s.DelVIF(2); err == nil {
			t.Error("DelVIF of a missing VIF succeeded")
		}
		if err := s.SetPIM(true); err != nil {
			t.Errorf("SetPIM: %v", err)
		}
		if err := s.SetAssert(true); err != nil {
			t.Errorf("SetAssert: %v", err)
		}
		if err := s.AddVIF(mroute.VIF{Index: 5, Register: true}); err != nil {
			t.Errorf("AddVIF register: %v", err)
		} else if _, err := netlink.LinkByName("pimreg"); err != nil {
			t.Errorf("register VIF made no pimreg device: %v", err)
		}

		// Closing gives the table up, and the kernel drops what the owner installed.
		if err := s.AddMFC(counted); err != nil {
			t.Errorf("AddMFC: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if got := dump(t, 0); len(got) != 0 {
			t.Errorf("Dump after Close: %+v", got)
		}
		if err := s.AddMFC(counted); !errors.Is(err, net.ErrClosed) {
			t.Errorf("AddMFC after Close = %v, want net.ErrClosed", err)
		}
	})
}

func TestTables(t *testing.T) {
	lab.InNewNetns(t, func() {
		l, ok := addLinks(t)
		if !ok {
			return
		}
		s0, err := mroute.Open(0)
		if err != nil {
			t.Errorf("Open(0): %v", err)
			return
		}
		defer s0.Close()

		again, err := mroute.Open(0)
		if err == nil {
			again.Close()
			t.Error("a second Open(0) succeeded")
		} else if !errors.Is(err, mroute.ErrTableInUse) || !strings.Contains(err.Error(), "pimd") ||
			!strings.Contains(err.Error(), "smcroute") || !strings.Contains(err.Error(), "table 0") {
			t.Errorf("second Open(0) = %v, want ErrTableInUse naming the table and pimd, smcroute", err)
		}

		s100, err := mroute.Open(100)
		if err != nil {
			t.Errorf("Open(100) next to table 0: %v", err)
			return
		}
		defer s100.Close()
		if s100.Table() != 100 {
			t.Errorf("Table() = %d", s100.Table())
		}
		if !addVIFs(t, s0, l) || !addVIFs(t, s100, l) {
			return
		}
		e0 := mroute.MFC{Source: mustAddr("10.9.0.2"), Group: mustAddr("239.0.0.1"), IIF: 1, OIFs: []uint16{2}}
		e100 := mroute.MFC{Source: netip.IPv4Unspecified(), Group: mustAddr("239.100.0.1"), IIF: 0, OIFs: []uint16{1, 2}}
		if err := s0.AddMFC(e0); err != nil {
			t.Errorf("AddMFC table 0: %v", err)
		}
		if err := s100.AddMFC(e100); err != nil {
			t.Errorf("AddMFC (*,G) table 100: %v", err)
		}
		for table, want := range map[uint32]mroute.MFC{0: e0, 100: e100, 253: e0} {
			got := dump(t, table)
			if len(got) != 1 || got[0].Source != want.Source || got[0].Group != want.Group {
				t.Errorf("Dump(%d) = %+v, want only (%s,%s)", table, got, want.Source, want.Group)
			}
		}
		if got := dump(t, 7); len(got) != 0 {
			t.Errorf("Dump of a table nobody made = %+v", got)
		}

		if err := s100.AddVIF(mroute.VIF{Index: 3, Register: true}); err != nil {
			t.Errorf("AddVIF register in table 100: %v", err)
		} else if _, err := netlink.LinkByName("pimreg100"); err != nil {
			t.Errorf("register VIF of table 100 made no pimreg100: %v", err)
		}
		if err := s100.Flush(mroute.FlushMFC | mroute.FlushVIFs); err != nil {
			t.Errorf("Flush: %v", err)
		}
		if got := dump(t, 100); len(got) != 0 {
			t.Errorf("Dump(100) after Flush = %+v", got)
		}
		if got := dump(t, 0); len(got) != 1 {
			t.Errorf("Flush of table 100 touched table 0: %+v", got)
		}
		if _, err := s100.VIFCount(0); err == nil {
			t.Error("VIF 0 of table 100 survived Flush")
		}
		if _, err := netlink.LinkByName("pimreg100"); err == nil {
			t.Error("pimreg100 survived Flush")
		}
		// The kernel accepts entries that name missing VIFs, and leaves them out
		// of the dump.
		if err := s100.AddMFC(e100); err != nil {
			t.Errorf("AddMFC without VIFs: %v", err)
		}
		if got := dump(t, 100); len(got) != 1 || got[0].IIF != 0 || len(got[0].OIFs) != 0 || got[0].Unresolved {
			t.Errorf("Dump(100) of an entry without VIFs = %+v", got)
		}
	})
}

// message is what the reader goroutine hands back.
type message struct {
	msg mroute.Message
	err error
}

func TestUpcallsAndIGMP(t *testing.T) {
	withTable(t, func(s *mroute.Socket, l links) {
		down, err := net.InterfaceByIndex(l.down)
		if err == nil {
			err = ipv4.NewPacketConn(s.IPConn()).JoinGroup(down, &net.IPAddr{IP: net.IPv4(224, 0, 0, 22)})
		}
		if err != nil {
			t.Errorf("join 224.0.0.22 on mrb: %v", err)
			return
		}

		// The reader runs on another thread, which is fine: the socket already
		// belongs to this namespace. Closing the socket is its timeout.
		msgs := make(chan message, 16)
		go func() {
			buf := make([]byte, 65536)
			for {
				m, err := s.Read(buf)
				if m.Packet != nil {
					m.Packet = slices.Clone(m.Packet)
				}
				msgs <- message{m, err}
				if err != nil {
					return
				}
			}
		}()
		timeout := time.AfterFunc(5*time.Second, func() { s.Close() })
		defer timeout.Stop()

		in, ok := newInjector(t, l.up)
		if !ok {
			return
		}
		source, group := mustAddr("10.9.0.7"), mustAddr("239.2.2.2")
		if !in.send(t, udpDatagram(source, group, 8)) || !in.send(t, igmpV3Report(t, mustAddr("10.9.0.8"))) {
			return
		}
		var upcall *mroute.Upcall
		var report *mroute.Message
		for upcall == nil || report == nil {
			m := <-msgs
			if m.err != nil {
				t.Errorf("Read before both messages arrived (timed out?): %v", m.err)
				return
			}
			switch {
			case m.msg.Upcall != nil:
				upcall = m.msg.Upcall
				if m.msg.IfIndex != l.down {
					t.Errorf("upcall came with ifindex %d, want the arrival interface mrb %d", m.msg.IfIndex, l.down)
				}
			case len(m.msg.Packet) >= 20 && m.msg.Packet[9] == unix.IPPROTO_IGMP && netip.AddrFrom4([4]byte(m.msg.Packet[12:16])) == mustAddr("10.9.0.8"):
				report = &m.msg
			}
		}
		if upcall.Type != mroute.NoCache || upcall.VIF != 1 || upcall.Source != source || upcall.Group != group || upcall.Packet != nil {
			t.Errorf("upcall = %+v, want nocache on vif 1 for (%s,%s)", upcall, source, group)
		}
		if report.IfIndex != l.down || report.Packet[20] != 0x22 {
			t.Errorf("IGMP report arrived on ifindex %d (want mrb %d): %x", report.IfIndex, l.down, report.Packet)
		}

		// Until the router answers, the kernel holds the packet in an unresolved entry.
		got := dump(t, 0)
		if len(got) != 1 || !got[0].Unresolved || got[0].Source != source || got[0].Group != group || got[0].IIF != 0 || got[0].OIFs != nil {
			t.Errorf("Dump with a pending upcall = %+v, want one unresolved (%s,%s)", got, source, group)
		}
		// Resolving the entry releases the queued packet.
		if err := s.AddMFC(mroute.MFC{Source: source, Group: group, IIF: 1, OIFs: []uint16{2}}); err != nil {
			t.Errorf("AddMFC: %v", err)
		}
		var sg mroute.SGCount
		if !eventually(func() bool { sg, err = s.SGCount(source, group); return err == nil && sg.Packets == 1 }) {
			t.Errorf("SGCount after resolving = %+v, %v; want the queued packet forwarded", sg, err)
		}
		if got := dump(t, 0); len(got) != 1 || got[0].Unresolved || got[0].IIF != l.down {
			t.Errorf("Dump after resolving = %+v", got)
		}

		timeout.Stop()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		for m := range msgs {
			if m.err != nil {
				if !errors.Is(m.err, net.ErrClosed) {
					t.Errorf("Read after Close = %v, want net.ErrClosed", m.err)
				}
				break
			}
		}
		if got := dump(t, 0); len(got) != 0 {
			t.Errorf("Dump after Close: %+v", got)
		}
	})
}

// TestAdopt hands a table's socket to a second Socket, as a restart does across
// exec: the VIFs and MFC entries stay, and the adopted socket programs the table.
func TestAdopt(t *testing.T) {
	withTable(t, func(s *mroute.Socket, l links) {
		first := mroute.MFC{Source: mustAddr("10.9.0.2"), Group: mustAddr("239.1.1.1"), IIF: 1, OIFs: []uint16{2}}
		if err := s.AddMFC(first); err != nil {
			t.Errorf("AddMFC: %v", err)
		}
		fd, err := s.Detach()
		if err != nil {
			t.Errorf("Detach: %v", err)
			return
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC != 0 {
			t.Errorf("descriptor flags after Detach = %#x, %v; want close-on-exec off", flags, err)
		}
		if err := s.AddMFC(first); !errors.Is(err, net.ErrClosed) {
			t.Errorf("AddMFC on a detached Socket = %v, want an error", err)
		}
		// The descriptor stands for the one the next program inherits across exec.
		adopted, err := mroute.Adopt(fd, 0)
		if err != nil {
			t.Errorf("Adopt: %v", err)
			return
		}
		defer adopted.Close()
		if got := dump(t, 0); len(got) != 1 || got[0].Source != first.Source {
			t.Errorf("table after Adopt = %+v, want the entry installed before", got)
		}
		second := mroute.MFC{Source: mustAddr("10.9.0.3"), Group: mustAddr("239.1.1.1"), IIF: 1, OIFs: []uint16{0}}
		if err := adopted.AddMFC(second); err != nil {
			t.Errorf("AddMFC through the adopted socket: %v", err)
		}
		if got := dump(t, 0); len(got) != 2 {
			t.Errorf("table after an adopted AddMFC = %+v, want 2 entries", got)
		}

		udp, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			t.Errorf("socket: %v", err)
			return
		}
		if _, err := mroute.Adopt(udp, 0); err == nil || !strings.Contains(err.Error(), "not a raw IGMP socket") {
			t.Errorf("Adopt of a UDP socket = %v, want refused", err)
		}
	})
}
