package benchlab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/test/lab"
)

// IGMP message and IGMPv3 group record types (RFC 3376, RFC 2236).
const (
	igmpV2Report    = 0x16
	igmpV2Leave     = 0x17
	igmpV3Report    = 0x22
	recordToInclude = 3 // CHANGE_TO_INCLUDE_MODE: with no sources, a leave
	recordToExclude = 4 // CHANGE_TO_EXCLUDE_MODE: with no sources, a join
)

// Capture watches one interface of a host through a packet socket, which sees the
// wire whatever the host has joined: the data packets that the router forwards and
// the reports that the host's own IGMP stack sends. Times are the kernel's receive
// timestamps.
type Capture struct {
	file *os.File
	done chan struct{}

	mu        sync.Mutex
	firstData map[netip.Addr]time.Time
	lastData  map[netip.Addr]time.Time
	joins     map[netip.Addr]time.Time // first join record the host sent per group
	leaves    map[netip.Addr]time.Time // first leave record the host sent per group
	reports   []time.Time              // every report the host sent
	readErr   error
}

// StartCapture opens the packet socket in node's namespace and reads it until Close.
func StartCapture(l *lab.Lab, node, ifname string) (*Capture, error) {
	var fd int
	err := l.InNetns(node, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		// ETH_P_ALL: only taps of all protocols see outgoing packets.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		if err == nil {
			err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
		}
		if err == nil {
			err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
		}
		if err != nil {
			unix.Close(fd)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("packet socket on %s:%s: %v", node, ifname, err)
	}
	c := &Capture{
		file:      os.NewFile(uintptr(fd), "capture"),
		done:      make(chan struct{}),
		firstData: map[netip.Addr]time.Time{},
		lastData:  map[netip.Addr]time.Time{},
		joins:     map[netip.Addr]time.Time{},
		leaves:    map[netip.Addr]time.Time{},
	}
	go c.read()
	return c, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Close stops reading and closes the socket.
func (c *Capture) Close() {
	c.file.Close()
	<-c.done
}

func (c *Capture) read() {
	defer close(c.done)
	rc, err := c.file.SyscallConn()
	if err != nil {
		c.setErr(err)
		return
	}
	buf := make([]byte, 65536)
	oob := make([]byte, 128)
	for {
		var n, oobn int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				c.setErr(err)
			}
			return
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Protocol != htons(unix.ETH_P_IP) {
			continue
		}
		c.packet(buf[:n], ll.Pkttype == unix.PACKET_OUTGOING, timestamp(oob[:oobn]))
	}
}

func (c *Capture) setErr(err error) {
	c.mu.Lock()
	c.readErr = err
	c.mu.Unlock()
}

// timestamp returns the kernel's receive time from the control messages, or now.
func timestamp(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
				return time.Unix(sec, nsec)
			}
		}
	}
	return time.Now()
}

// packet accounts for one IPv4 packet.
func (c *Capture) packet(p []byte, outgoing bool, at time.Time) {
	if len(p) < 20 || p[0]>>4 != 4 {
		return
	}
	hlen := int(p[0]&0x0f) * 4
	if hlen < 20 || len(p) < hlen {
		return
	}
	dst := netip.AddrFrom4([4]byte(p[16:20]))
	body := p[hlen:]
	c.mu.Lock()
	defer c.mu.Unlock()
	switch p[9] {
	case unix.IPPROTO_UDP:
		if outgoing || !dst.IsMulticast() {
			return
		}
		if _, seen := c.firstData[dst]; !seen {
			c.firstData[dst] = at
		}
		c.lastData[dst] = at
	case unix.IPPROTO_IGMP:
		if len(body) < 8 {
			return
		}
		switch {
		case outgoing && body[0] == igmpV2Report:
			c.reports = append(c.reports, at)
			firstOf(c.joins, netip.AddrFrom4([4]byte(body[4:8])), at)
		case outgoing && body[0] == igmpV2Leave:
			firstOf(c.leaves, netip.AddrFrom4([4]byte(body[4:8])), at)
		case outgoing && body[0] == igmpV3Report:
			c.reports = append(c.reports, at)
			c.v3Report(body, at)
		}
	}
}

// v3Report notes the joins and leaves among the group records of a report.
func (c *Capture) v3Report(body []byte, at time.Time) {
	records := int(binary.BigEndian.Uint16(body[6:8]))
	rec := body[8:]
	for range records {
		if len(rec) < 8 {
			return
		}
		kind, auxWords, sources := rec[0], int(rec[1]), int(binary.BigEndian.Uint16(rec[2:4]))
		group := netip.AddrFrom4([4]byte(rec[4:8]))
		switch {
		case kind == recordToExclude && sources == 0:
			firstOf(c.joins, group, at)
		case kind == recordToInclude && sources == 0:
			firstOf(c.leaves, group, at)
		}
		size := 8 + 4*sources + 4*auxWords
		if len(rec) < size {
			return
		}
		rec = rec[size:]
	}
}

// firstOf records at for group unless the group has a time already.
func firstOf(times map[netip.Addr]time.Time, group netip.Addr, at time.Time) {
	if _, seen := times[group]; !seen {
		times[group] = at
	}
}

// Data returns when the first and the last packet to group arrived; zero if none did.
func (c *Capture) Data(group netip.Addr) (first, last time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.firstData[group], c.lastData[group]
}

// JoinOf returns when the host first sent a join for group; zero if it has not.
func (c *Capture) JoinOf(group netip.Addr) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joins[group]
}

// LeaveOf returns when the host first sent a leave for group; zero if it has not.
func (c *Capture) LeaveOf(group netip.Addr) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leaves[group]
}

// FirstReportSince returns the first report the host sent at or after t; zero if none.
func (c *Capture) FirstReportSince(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, at := range c.reports {
		if !at.Before(t) {
			return at
		}
	}
	return time.Time{}
}

// Err returns why reading stopped early, if it did.
func (c *Capture) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

// Note says why the capture stopped early, as a note to add to a message that says
// what it did not see; "" if it is still reading.
func (c *Capture) Note() string {
	if err := c.Err(); err != nil {
		return " (capture failed: " + err.Error() + ")"
	}
	return ""
}
