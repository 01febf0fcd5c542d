package mroute

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// receiveBuffer absorbs bursts of upcalls (one per new flow) and IGMP reports
// while the router loop is busy.
const receiveBuffer = 8 << 20

// Socket is the multicast routing socket of one kernel table: the raw IGMP
// socket that did MRT_INIT. Control methods may be called from any goroutine;
// Read from one goroutine at a time.
type Socket struct {
	table uint32
	conn  *net.IPConn // a duplicate of fd, owned by the runtime poller, for reads

	// mu keeps Close from closing fd while a control call is using it, so a
	// reused descriptor number is never mistaken for this socket.
	mu sync.RWMutex
	fd int // for setsockopt and ioctl; -1 once closed

	readMu sync.Mutex
	oob    []byte
}

// Open creates the multicast routing socket for table (0 is the kernel's
// default table) in the network namespace of the calling thread, and takes
// ownership of the table with MRT_INIT.
func Open(table uint32) (*Socket, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_IGMP)
	if err != nil {
		return nil, openError(table, "create raw IGMP socket", err)
	}
	s, err := setUp(fd, table)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return s, nil
}

// Adopt takes over the multicast routing socket of table that a process before
// this one opened and left open across exec: the table keeps every VIF and MFC
// entry, and forwarding never stops. fd is the inherited descriptor; it is closed
// when Adopt fails. The kernel cannot say which socket owns a table, so the
// caller vouches for it (it was handed over with the table's number).
func Adopt(fd int, table uint32) (*Socket, error) {
	s, err := adopt(fd, table)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mroute: table %d: adopt descriptor %d: %w", table, fd, err)
	}
	return s, nil
}

func adopt(fd int, table uint32) (*Socket, error) {
	for opt, want := range map[int]int{unix.SO_DOMAIN: unix.AF_INET, unix.SO_TYPE: unix.SOCK_RAW, unix.SO_PROTOCOL: unix.IPPROTO_IGMP} {
		if got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt); err != nil || got != want {
			return nil, errors.New("not a raw IGMP socket")
		}
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return nil, err
	}
	return wrap(fd, table)
}

// Share runs fn with the socket's descriptor, which stays the Socket's: for handing
// a copy to a file descriptor store (sendmsg with SCM_RIGHTS copies it).
func (s *Socket) Share(fn func(fd int) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return net.ErrClosed
	}
	return fn(s.fd)
}

// Detach hands the socket over to the program this process execs next, which
// adopts it (Adopt): the descriptor it returns is left open across exec, and with
// it the table. The Socket itself is closed for use, without MRT_DONE, and a
// blocked Read returns; upcalls not yet read wait in the socket for the adopter.
func (s *Socket) Detach() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd < 0 {
		return -1, net.ErrClosed
	}
	if _, err := unix.FcntlInt(uintptr(s.fd), unix.F_SETFD, 0); err != nil {
		return -1, fmt.Errorf("mroute: table %d: keep socket open across exec: %w", s.table, err)
	}
	fd := s.fd
	s.fd = -1
	s.conn.Close()
	return fd, nil
}

func setUp(fd int, table uint32) (*Socket, error) {
	if table != 0 {
		// The table must be chosen before MRT_INIT binds the socket to one.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, mrtTable, int(table)); err != nil {
			return nil, openError(table, "select table (MRT_TABLE)", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, mrtInit, 1); err != nil {
		return nil, openError(table, "MRT_INIT", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
		return nil, openError(table, "enable IP_PKTINFO", err)
	}
	// SO_RCVBUFFORCE passes net.core.rmem_max; without CAP_NET_ADMIN settle for
	// what SO_RCVBUF allows.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer); err != nil {
			return nil, openError(table, "set receive buffer", err)
		}
	}
	s, err := wrap(fd, table)
	if err != nil {
		return nil, openError(table, "wrap socket", err)
	}
	return s, nil
}

// wrap makes a Socket of a multicast routing socket set up for reading.
func wrap(fd int, table uint32) (*Socket, error) {
	// net.FilePacketConn duplicates the descriptor it is given, and an os.File
	// closes its descriptor when collected, so hand it a duplicate of its own and
	// keep fd outside the runtime's reach for control calls.
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), fmt.Sprintf("mroute-table-%d", table))
	pc, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	conn, ok := pc.(*net.IPConn)
	if !ok {
		pc.Close()
		return nil, fmt.Errorf("got %T, want *net.IPConn", pc)
	}
	return &Socket{
		table: table,
		conn:  conn,
		fd:    fd,
		oob:   ipv4.NewControlMessage(ipv4.FlagInterface | ipv4.FlagDst),
	}, nil
}

func openError(table uint32, step string, err error) error {
	switch {
	case errors.Is(err, unix.EADDRINUSE):
		return fmt.Errorf("mroute: table %d: %w", table, ErrTableInUse)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("mroute: table %d: %s: %w: multicast routing needs CAP_NET_ADMIN and CAP_NET_RAW", table, step, err)
	case errors.Is(err, unix.ENOPROTOOPT) && step == "MRT_INIT":
		return fmt.Errorf("mroute: table %d: %s: %w: this kernel has no IPv4 multicast routing (CONFIG_IP_MROUTE), "+
			"as inside some containers", table, step, err)
	case errors.Is(err, unix.ENOPROTOOPT):
		return fmt.Errorf("mroute: table %d: %s: %w: this kernel has no multiple multicast routing tables "+
			"(CONFIG_IP_MROUTE_MULTIPLE_TABLES), as inside some containers; use table 0", table, step, err)
	}
	return fmt.Errorf("mroute: table %d: %s: %w", table, step, err)
}

// Table returns the table given to Open; 0 is the kernel's default table.
func (s *Socket) Table() uint32 { return s.table }

// IPConn returns the socket for sending and receiving IGMP. Closing it is the
// Socket's job.
func (s *Socket) IPConn() *net.IPConn { return s.conn }

// Close gives up the table (MRT_DONE), which makes the kernel remove the VIFs
// and MFC entries this socket installed, and closes the socket. A blocked Read
// returns an error that satisfies errors.Is(err, net.ErrClosed). Closing twice
// is harmless.
func (s *Socket) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd < 0 {
		return nil
	}
	doneErr := unix.SetsockoptInt(s.fd, unix.IPPROTO_IP, mrtDone, 1)
	closeErr := unix.Close(s.fd)
	s.fd = -1
	connErr := s.conn.Close()
	switch {
	case doneErr != nil:
		return fmt.Errorf("mroute: table %d: MRT_DONE: %w", s.table, doneErr)
	case closeErr != nil:
		return fmt.Errorf("mroute: table %d: close: %w", s.table, closeErr)
	case connErr != nil:
		return fmt.Errorf("mroute: table %d: close: %w", s.table, connErr)
	}
	return nil
}

// AddVIF installs v.
func (s *Socket) AddVIF(v VIF) error {
	b, err := encodeVIF(v)
	if err != nil {
		return fmt.Errorf("mroute: add %w", err)
	}
	if err := s.setsockopt(mrtAddVIF, unsafe.Pointer(&b), sizeofVifctl); err != nil {
		if v.Register {
			return fmt.Errorf("mroute: add register vif %d: %w%s", v.Index, err, vifHint(err))
		}
		return fmt.Errorf("mroute: add vif %d (ifindex %d): %w%s", v.Index, v.IfIndex, err, vifHint(err))
	}
	return nil
}

func vifHint(err error) string {
	switch {
	case errors.Is(err, unix.EADDRINUSE):
		return " (the VIF slot, or the single register VIF, is already in use)"
	case errors.Is(err, unix.EADDRNOTAVAIL), errors.Is(err, unix.ENODEV):
		return " (no such interface, or the interface is down or has no IPv4 configuration)"
	}
	return ""
}

// DelVIF removes the VIF in slot vif.
func (s *Socket) DelVIF(vif uint16) error {
	b, err := encodeVIFIndex(vif)
	if err != nil {
		return fmt.Errorf("mroute: delete %w", err)
	}
	if err := s.setsockopt(mrtDelVIF, unsafe.Pointer(&b), sizeofVifctl); err != nil {
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("mroute: delete vif %d: %w (no such VIF)", vif, err)
		}
		return fmt.Errorf("mroute: delete vif %d: %w", vif, err)
	}
	return nil
}

// AddMFC installs e, replacing any entry for the same (S,G).
func (s *Socket) AddMFC(e MFC) error {
	b, err := encodeMFC(&e)
	if err != nil {
		return fmt.Errorf("mroute: add %w", err)
	}
	if err := s.setsockopt(mrtAddMFC, unsafe.Pointer(&b), sizeofMfcctl); err != nil {
		return fmt.Errorf("mroute: add MFC (%s,%s) iif vif %d: %w", e.Source, e.Group, e.IIF, err)
	}
	return nil
}

// DelMFC removes the (source, group) entry. A missing entry gives an error
// that satisfies errors.Is(err, unix.ENOENT).
func (s *Socket) DelMFC(source, group netip.Addr) error {
	b, err := encodeSourceGroup(source, group)
	if err != nil {
		return fmt.Errorf("mroute: delete MFC: %w", err)
	}
	if err := s.setsockopt(mrtDelMFC, unsafe.Pointer(&b), sizeofMfcctl); err != nil {
		return fmt.Errorf("mroute: delete MFC (%s,%s): %w", source, group, err)
	}
	return nil
}

// Flush removes what f selects from the table in one call.
func (s *Socket) Flush(f FlushFlags) error {
	if err := s.setsockoptInt(mrtFlush, int(f)); err != nil {
		return fmt.Errorf("mroute: flush (flags %#x): %w", int(f), err)
	}
	return nil
}

// OnlyUpcalls has the socket keep the kernel's upcalls and drop the IGMP packets
// the kernel also delivers to it as a raw IGMP socket, before they queue: for a
// router that hears IGMP some other way.
func (s *Socket) OnlyUpcalls() error {
	// An upcall's struct igmpmsg has im_mbz, always 0, where an IP header has its
	// protocol, which is 2 for IGMP.
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: igmpmsgMbz, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 1},
		bpf.RetConstant{Val: 1 << 18}, // all of it: a whole-packet upcall carries a packet
		bpf.RetConstant{Val: 0},
	})
	if err == nil {
		err = ipv4.NewPacketConn(s.conn).SetBPF(prog)
	}
	if err != nil {
		return fmt.Errorf("mroute: table %d: upcall filter: %w", s.table, err)
	}
	return nil
}

// SetPIM turns PIM register handling on or off (MRT_PIM).
func (s *Socket) SetPIM(on bool) error {
	if err := s.setsockoptInt(mrtPIM, boolInt(on)); err != nil {
		return fmt.Errorf("mroute: MRT_PIM %t: %w", on, err)
	}
	return nil
}

// SetAssert turns WrongVIF upcalls on or off (MRT_ASSERT).
func (s *Socket) SetAssert(on bool) error {
	if err := s.setsockoptInt(mrtAssert, boolInt(on)); err != nil {
		return fmt.Errorf("mroute: MRT_ASSERT %t: %w", on, err)
	}
	return nil
}

// SGCount reads the counters of the (source, group) entry. A missing entry
// gives an error that satisfies errors.Is(err, unix.EADDRNOTAVAIL).
func (s *Socket) SGCount(source, group netip.Addr) (SGCount, error) {
	b, err := encodeSGReq(source, group)
	if err != nil {
		return SGCount{}, fmt.Errorf("mroute: MFC counters: %w", err)
	}
	if err := s.ioctl(siocGetSGCnt, unsafe.Pointer(&b)); err != nil {
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			return SGCount{}, fmt.Errorf("mroute: MFC counters (%s,%s): %w (no such entry)", source, group, err)
		}
		return SGCount{}, fmt.Errorf("mroute: MFC counters (%s,%s): %w", source, group, err)
	}
	return decodeSGReq(&b), nil
}

// VIFCount reads the counters of a VIF.
func (s *Socket) VIFCount(vif uint16) (VIFCount, error) {
	b, err := encodeVIFReq(vif)
	if err != nil {
		return VIFCount{}, fmt.Errorf("mroute: counters of %w", err)
	}
	if err := s.ioctl(siocGetVIFCnt, unsafe.Pointer(&b)); err != nil {
		if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.EINVAL) {
			return VIFCount{}, fmt.Errorf("mroute: counters of vif %d: %w (no such VIF)", vif, err)
		}
		return VIFCount{}, fmt.Errorf("mroute: counters of vif %d: %w", vif, err)
	}
	return decodeVIFReq(&b), nil
}

// Message is one thing read from the socket: an upcall, or an IP packet.
type Message struct {
	Upcall  *Upcall // set for a kernel upcall
	Packet  []byte  // otherwise the IP packet, header included; aliases the read buffer
	IfIndex int     // interface the packet (or the upcall's packet) arrived on, from IP_PKTINFO; 0 if unknown
}

// Read waits for the next upcall or IGMP packet. A message longer than buf
// gives an error wrapping ErrTruncated; an upcall that does not parse gives the
// parse error; such errors concern one message, and the next Read goes on.
// After Close it returns an error satisfying errors.Is(err, net.ErrClosed).
func (s *Socket) Read(buf []byte) (Message, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	n, oobn, flags, _, err := s.conn.ReadMsgIP(buf, s.oob)
	if err != nil {
		return Message{}, fmt.Errorf("mroute: table %d: read: %w", s.table, err)
	}
	if flags&unix.MSG_TRUNC != 0 {
		return Message{}, fmt.Errorf("mroute: table %d: read: %w to the %d-byte buffer", s.table, ErrTruncated, len(buf))
	}
	var msg Message
	var cm ipv4.ControlMessage
	if flags&unix.MSG_CTRUNC == 0 && cm.Parse(s.oob[:oobn]) == nil {
		msg.IfIndex = cm.IfIndex
	}
	b := buf[:n]
	if n >= minIPv4Header && b[igmpmsgMbz] == 0 {
		u, err := ParseUpcall(b)
		if err != nil {
			return Message{}, fmt.Errorf("mroute: table %d: read: %w", s.table, err)
		}
		msg.Upcall = &u
		return msg, nil
	}
	msg.Packet = b
	return msg, nil
}

func (s *Socket) setsockopt(opt int, p unsafe.Pointer, size uintptr) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return net.ErrClosed
	}
	_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(s.fd), unix.IPPROTO_IP, uintptr(opt), uintptr(p), size, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func (s *Socket) setsockoptInt(opt, v int) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return net.ErrClosed
	}
	return unix.SetsockoptInt(s.fd, unix.IPPROTO_IP, opt, v)
}

func (s *Socket) ioctl(req uintptr, p unsafe.Pointer) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return net.ErrClosed
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(s.fd), req, uintptr(p))
	if errno != 0 {
		return errno
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
