package router

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// kernelTap is an AF_PACKET socket on every interface, in both directions, from
// the IP header on (SOCK_DGRAM), behind tapFilter.
type kernelTap struct {
	f  *os.File
	rc syscall.RawConn
}

// tapReceiveBuffer holds a burst of control messages; data packets are cut to
// snapData, so they take little of it.
const tapReceiveBuffer = 4 << 20

// openTap opens the tap. Its filter is in place before it is bound to any
// protocol, so that no packet is queued unfiltered.
func openTap() (*kernelTap, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("packet tap: %w", err)
	}
	t := &kernelTap{f: os.NewFile(uintptr(fd), "packet tap")}
	if t.rc, err = t.f.SyscallConn(); err != nil {
		t.f.Close()
		return nil, fmt.Errorf("packet tap: %w", err)
	}
	if err := t.Exclude(nil); err != nil {
		t.f.Close()
		return nil, err
	}
	var opErr error
	err = t.rc.Control(func(fd uintptr) {
		if opErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, tapReceiveBuffer); opErr != nil {
			opErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, tapReceiveBuffer)
		}
		if opErr == nil {
			opErr = unix.Bind(int(fd), &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL)})
		}
	})
	if err = errors.Join(err, opErr); err != nil {
		t.f.Close()
		return nil, fmt.Errorf("packet tap: %w", err)
	}
	return t, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Exclude replaces the filter; the kernel swaps it atomically.
func (t *kernelTap) Exclude(ifindexes []int) error {
	raw, err := tapFilter(ifindexes)
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, ins := range raw {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	var opErr error
	err = t.rc.Control(func(fd uintptr) {
		opErr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog)
	})
	if err = errors.Join(err, opErr); err != nil {
		return fmt.Errorf("packet tap filter: %w", err)
	}
	return nil
}

// Read returns the next packet the filter passed.
func (t *kernelTap) Read(buf []byte) (tapped, error) {
	var (
		n    int
		from unix.Sockaddr
		rerr error
	)
	err := t.rc.Read(func(fd uintptr) bool {
		n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if errors.Is(err, os.ErrClosed) {
		return tapped{}, net.ErrClosed
	}
	if err != nil {
		return tapped{}, err
	}
	if rerr != nil {
		return tapped{}, fmt.Errorf("packet tap: %w", rerr)
	}
	p := tapped{data: buf[:n]}
	if ll, ok := from.(*unix.SockaddrLinklayer); ok {
		p.ifindex, p.outgoing = ll.Ifindex, ll.Pkttype == packetOutgoing
	}
	return p, nil
}

func (t *kernelTap) Close() error { return t.f.Close() }
