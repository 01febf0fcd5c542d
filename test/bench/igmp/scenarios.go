package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/test/lab"
	"github.com/mrouterd/mrouterd/test/mcast"
)

// The hosts of the topology and the traffic they exchange.
const (
	sourceNode   = "src"
	receiverNode = "rcv"
	hostIfname   = "eth1" // each host's only link
	port         = 5001
	ratePPS      = 1000
	sendTTL      = 16
)

// Timing of the scenarios.
const (
	startupTimeout = 60 * time.Second // pimd takes its static RP into use ~15 s after start
	joinLead       = time.Second      // a source sends this long before its receiver joins
	trialSpacing   = 1500 * time.Millisecond
	joinTimeout    = 20 * time.Second // the kernel drops an unresolved (S,G) after 10 s
	packetsToLeave = 200              // the receiver leaves after this many packets
	quietPeriod    = time.Second      // no packet for this long (1000 expected) means stopped
	leaveTimeout   = 60 * time.Second // pimd 2.3 ignores IGMPv3 leaves: its groups time out
	manyTimeout    = 60 * time.Second
	// Each membership is charged to its socket's option memory (net.core.optmem_max,
	// 128 KiB by default: about 2700 groups), and the topology raises the number of
	// memberships a socket may hold (net.ipv4.igmp_max_memberships) above this.
	groupsPerSocket = 1000
	reportTimeout   = 3 * time.Second // the host sends its leave when the socket closes
	pollEvery       = 5 * time.Millisecond
	stopTimeout     = 5 * time.Second
)

var (
	probeGroup  = netip.MustParseAddr("239.1.0.1")
	trialBase   = netip.MustParseAddr("239.1.1.1") // trial i uses trialBase + i
	manyPrefix  = netip.MustParsePrefix("239.2.0.0/16")
	maxManySize = 1 << (32 - manyPrefix.Bits())
)

// background is a command running in a lab node.
type background struct {
	what string // the command and its node, for messages
	cmd  *exec.Cmd
	out  bytes.Buffer // read only once done is closed
	done chan struct{}
}

func startBackground(l *lab.Lab, node string, args ...string) (*background, error) {
	b := &background{what: strings.Join(args[:2], " ") + " on " + node, cmd: l.Command(node, args...), done: make(chan struct{})}
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.out
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %v", node, err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.done)
	}()
	return b, nil
}

// exitNote says how the command ended, if it has: a failed sender or receiver
// explains why nothing was forwarded.
func (b *background) exitNote() string {
	select {
	case <-b.done:
		return fmt.Sprintf("; %s exited (%v): %s", b.what, b.cmd.ProcessState, strings.TrimSpace(b.out.String()))
	default:
		return ""
	}
}

// stop ends the command (ip netns exec runs it in place, so it gets the signal).
func (b *background) stop() {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		_ = b.cmd.Process.Signal(sig) // it may have exited already
		select {
		case <-b.done:
			return
		case <-time.After(stopTimeout):
		}
	}
}

func sendArgs(group netip.Addr) []string {
	return []string{"mcast", "send", "-group", group.String(), "-port", strconv.Itoa(port),
		"-ifname", hostIfname, "-ttl", strconv.Itoa(sendTTL), "-rate", strconv.Itoa(ratePPS), "-duration", "5m"}
}

// firstForward measures from started, when the router was started, to the first
// packet it forwards, with a receiver and a source present from the start.
func firstForward(l *lab.Lab, c *capture, started time.Time) (time.Duration, error) {
	recv, err := startBackground(l, receiverNode, "mcast", "recv", "-group", probeGroup.String(),
		"-port", strconv.Itoa(port), "-ifname", hostIfname, "-count", "1", "-duration", startupTimeout.String())
	if err != nil {
		return 0, err
	}
	defer recv.stop()
	send, err := startBackground(l, sourceNode, sendArgs(probeGroup)...)
	if err != nil {
		return 0, err
	}
	defer send.stop()
	for {
		if first, _ := c.data(probeGroup); !first.IsZero() {
			return first.Sub(started), nil
		}
		if time.Since(started) > startupTimeout {
			return 0, fmt.Errorf("nothing forwarded within %v of start%s%s%s", startupTimeout,
				send.exitNote(), recv.exitNote(), captureNote(c))
		}
		time.Sleep(pollEvery)
	}
}

func captureNote(c *capture) string {
	if err := c.err(); err != nil {
		return " (capture failed: " + err.Error() + ")"
	}
	return ""
}

// trial is one receiver's join and leave of a group its source already sends to.
type trial struct {
	join    time.Duration // from the receiver's join call, as mcast recv reports it
	report  time.Duration // from the host's join report on the wire: the router's share
	leave   time.Duration // from the host's leave report on the wire
	joinErr error
	// reportErr says why report is missing though packets came.
	reportErr error
	leaveErr  error
}

// runTrials runs n trials, each on a group of its own, starting one every
// trialSpacing so that slow routers do not stretch the run n times over.
func runTrials(l *lab.Lab, c *capture, n int) []trial {
	trials := make([]trial, n)
	done := make(chan struct{})
	start := time.Now()
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			// The schedule, not a wait for a condition: trial i starts i spacings in.
			time.Sleep(time.Until(start.Add(time.Duration(i) * trialSpacing)))
			trials[i] = runTrial(l, c, addrAdd(trialBase, i))
		}()
	}
	for range n {
		<-done
	}
	return trials
}

func runTrial(l *lab.Lab, c *capture, group netip.Addr) trial {
	var t trial
	send, err := startBackground(l, sourceNode, sendArgs(group)...)
	if err != nil {
		t.joinErr = err
		return t
	}
	defer send.stop()
	// The source must be sending before the join: that is the case being measured.
	time.Sleep(joinLead)
	out, err := l.Command(receiverNode, "mcast", "recv", "-group", group.String(), "-port", strconv.Itoa(port),
		"-ifname", hostIfname, "-count", strconv.Itoa(packetsToLeave), "-duration", joinTimeout.String()).Output()
	if err != nil {
		t.joinErr = fmt.Errorf("mcast recv: %v", err)
		return t
	}
	report, err := mcast.ParseReport(out)
	if err != nil {
		t.joinErr = fmt.Errorf("mcast recv: %v", err)
		return t
	}
	if report.Received == 0 {
		t.joinErr = fmt.Errorf("no packet within %v", joinTimeout)
		return t
	}
	t.join = time.Duration(report.FirstPacketMs * float64(time.Millisecond))
	first, _ := c.data(group)
	if joined := c.joinOf(group); !joined.IsZero() && !first.IsZero() {
		t.report = first.Sub(joined)
	} else {
		t.reportErr = errors.New("saw no join report or no packet on the wire" + captureNote(c))
	}
	t.leave, t.leaveErr = leaveToLastPacket(c, group)
	return t
}

// leaveToLastPacket waits for the host's leave of group, then for its packets to stop,
// and returns the time from the leave to the last packet.
func leaveToLastPacket(c *capture, group netip.Addr) (time.Duration, error) {
	deadline := time.Now().Add(reportTimeout)
	var left time.Time
	for left = c.leaveOf(group); left.IsZero(); left = c.leaveOf(group) {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("saw no leave from the host%s", captureNote(c))
		}
		time.Sleep(pollEvery)
	}
	for {
		_, last := c.data(group)
		if time.Since(last) >= quietPeriod && time.Since(left) >= quietPeriod {
			return max(last.Sub(left), 0), nil
		}
		if time.Since(left) > leaveTimeout {
			return 0, fmt.Errorf("still forwarding %v after the leave", leaveTimeout)
		}
		time.Sleep(pollEvery)
	}
}

func addrAdd(a netip.Addr, n int) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// many is the outcome of joining many groups at once.
type many struct {
	// The router held all the groups after lower and by upper, both counted from the
	// host's first report: state is read from time to time, and the first read that
	// finds them all bounds it from above, the read before from below.
	lower, upper   time.Duration
	slowestRead    time.Duration // a long read widens the bounds
	held           int           // groups the router held at the last read
	before, after  []processMemory
	err, memoryErr error
}

// joinMany makes the receiver host join n groups at once, which its own IGMP stack
// announces in reports of many records each, and measures how long the router takes
// to hold them all and how much its memory grows.
func joinMany(l *lab.Lab, c *capture, r router, n int) many {
	var m many
	m.before, m.memoryErr = r.memory(l)
	var fds []int
	defer func() {
		// Leaving them all at once is the router's problem after the measurement.
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	var start time.Time
	err := l.InNetns(receiverNode, func() error {
		ifi, err := net.InterfaceByName(hostIfname)
		if err != nil {
			return err
		}
		start = time.Now()
		for i := range n {
			if i%groupsPerSocket == 0 {
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					return err
				}
				fds = append(fds, fd)
			}
			mreq := &unix.IPMreqn{Multiaddr: addrAdd(manyPrefix.Addr(), i).As4(), Ifindex: int32(ifi.Index)}
			if err := unix.SetsockoptIPMreqn(fds[len(fds)-1], unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq); err != nil {
				return fmt.Errorf("join group %d of %d: %v", i+1, n, err)
			}
		}
		return nil
	})
	if err != nil {
		m.err = err
		return m
	}
	// A first read soon, since pimd may be read only every few seconds.
	time.Sleep(min(r.stateInterval(), time.Second))
	deadline := time.Now().Add(manyTimeout)
	short := start // when the last read that found fewer began
	var full time.Time
	for {
		began := time.Now()
		held, err := r.groupsHeld(l, manyPrefix)
		if err != nil {
			m.err = err
			return m
		}
		m.held = held
		m.slowestRead = max(m.slowestRead, time.Since(began))
		if held >= n {
			full = time.Now()
			break
		}
		short = began
		if time.Now().After(deadline) {
			m.err = fmt.Errorf("holds %d of %d groups after %v", held, n, manyTimeout)
			return m
		}
		time.Sleep(r.stateInterval())
	}
	first := c.firstReportSince(start)
	if first.IsZero() {
		m.err = errors.New("saw no report from the host" + captureNote(c))
		return m
	}
	m.lower, m.upper = max(short.Sub(first), 0), full.Sub(first)
	if m.memoryErr == nil {
		m.after, m.memoryErr = r.memory(l)
	}
	return m
}
