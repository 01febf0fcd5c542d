package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/mrouterd/mrouterd/test/bench/internal/benchlab"
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
	reportTimeout  = 3 * time.Second // the host sends its leave when the socket closes
	pollEvery      = 5 * time.Millisecond
)

var (
	probeGroup  = netip.MustParseAddr("239.1.0.1")
	trialBase   = netip.MustParseAddr("239.1.1.1") // trial i uses trialBase + i
	manyPrefix  = netip.MustParsePrefix("239.2.0.0/16")
	maxManySize = 1 << (32 - manyPrefix.Bits())
)

func sendArgs(group netip.Addr) []string {
	return []string{"mcast", "send", "-group", group.String(), "-port", strconv.Itoa(port),
		"-ifname", hostIfname, "-ttl", strconv.Itoa(sendTTL), "-rate", strconv.Itoa(ratePPS), "-duration", "5m"}
}

// firstForward measures from started, when the router was started, to the first
// packet it forwards, with a receiver and a source present from the start.
func firstForward(l *lab.Lab, c *benchlab.Capture, started time.Time) (time.Duration, error) {
	recv, err := benchlab.StartBackground(l, receiverNode, "mcast", "recv", "-group", probeGroup.String(),
		"-port", strconv.Itoa(port), "-ifname", hostIfname, "-count", "1", "-duration", startupTimeout.String())
	if err != nil {
		return 0, err
	}
	defer recv.Stop()
	send, err := benchlab.StartBackground(l, sourceNode, sendArgs(probeGroup)...)
	if err != nil {
		return 0, err
	}
	defer send.Stop()
	for {
		if first, _ := c.Data(probeGroup); !first.IsZero() {
			return first.Sub(started), nil
		}
		if time.Since(started) > startupTimeout {
			return 0, fmt.Errorf("nothing forwarded within %v of start%s%s%s", startupTimeout,
				send.ExitNote(), recv.ExitNote(), c.Note())
		}
		time.Sleep(pollEvery)
	}
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
func runTrials(l *lab.Lab, c *benchlab.Capture, n int) []trial {
	trials := make([]trial, n)
	done := make(chan struct{})
	start := time.Now()
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			// The schedule, not a wait for a condition: trial i starts i spacings in.
			time.Sleep(time.Until(start.Add(time.Duration(i) * trialSpacing)))
			trials[i] = runTrial(l, c, benchlab.AddrAdd(trialBase, i))
		}()
	}
	for range n {
		<-done
	}
	return trials
}

func runTrial(l *lab.Lab, c *benchlab.Capture, group netip.Addr) trial {
	var t trial
	send, err := benchlab.StartBackground(l, sourceNode, sendArgs(group)...)
	if err != nil {
		t.joinErr = err
		return t
	}
	defer send.Stop()
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
	first, _ := c.Data(group)
	if joined := c.JoinOf(group); !joined.IsZero() && !first.IsZero() {
		t.report = first.Sub(joined)
	} else {
		t.reportErr = errors.New("saw no join report or no packet on the wire" + c.Note())
	}
	t.leave, t.leaveErr = leaveToLastPacket(c, group)
	return t
}

// leaveToLastPacket waits for the host's leave of group, then for its packets to stop,
// and returns the time from the leave to the last packet.
func leaveToLastPacket(c *benchlab.Capture, group netip.Addr) (time.Duration, error) {
	deadline := time.Now().Add(reportTimeout)
	var left time.Time
	for left = c.LeaveOf(group); left.IsZero(); left = c.LeaveOf(group) {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("saw no leave from the host%s", c.Note())
		}
		time.Sleep(pollEvery)
	}
	for {
		_, last := c.Data(group)
		if time.Since(last) >= quietPeriod && time.Since(left) >= quietPeriod {
			return max(last.Sub(left), 0), nil
		}
		if time.Since(left) > leaveTimeout {
			return 0, fmt.Errorf("still forwarding %v after the leave", leaveTimeout)
		}
		time.Sleep(pollEvery)
	}
}

// many is the outcome of joining many groups at once.
type many struct {
	// The router held all the groups after lower and by upper, both counted from the
	// host's first report: state is read from time to time, and the first read that
	// finds them all bounds it from above, the read before from below.
	lower, upper   time.Duration
	slowestRead    time.Duration // a long read widens the bounds
	held           int           // groups the router held at the last read
	before, after  []benchlab.ProcessMemory
	err, memoryErr error
}

// joinMany makes the receiver host join n groups at once, which its own IGMP stack
// announces in reports of many records each, and measures how long the router takes
// to hold them all and how much its memory grows.
func joinMany(l *lab.Lab, c *benchlab.Capture, r router, n int) many {
	var m many
	m.before, m.memoryErr = r.memory(l)
	groups, err := mcast.GroupRange(manyPrefix.Addr(), n)
	if err != nil {
		m.err = err
		return m
	}
	joined, err := benchlab.JoinMany(l, receiverNode, hostIfname, groups, netip.Addr{})
	// Leaving them all at once is the router's problem after the measurement.
	defer joined.Leave()
	if err != nil {
		m.err = err
		return m
	}
	start := joined.Start
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
	first := c.FirstReportSince(start)
	if first.IsZero() {
		m.err = errors.New("saw no report from the host" + c.Note())
		return m
	}
	m.lower, m.upper = max(short.Sub(first), 0), full.Sub(first)
	if m.memoryErr == nil {
		m.after, m.memoryErr = r.memory(l)
	}
	return m
}
