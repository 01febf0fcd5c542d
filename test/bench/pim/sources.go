package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/mrouterd/mrouterd/test/bench/internal/benchlab"
	"github.com/mrouterd/mrouterd/test/lab"
	"github.com/mrouterd/mrouterd/test/mcast"
)

// Timing of the source starts.
const (
	// Each new source streams this long, at ratePPS: long enough for the RP's switch
	// from Registers to the source's tree, the last-hop router's switch, and an
	// assert on the LAN.
	sourceStream = 6 * time.Second
	// The receiver stays this long after the stream, for packets still on their way.
	sourceDrain = 300 * time.Millisecond
	// Which routers forward onto the receiver's router's LAN is read from their
	// counters over this last stretch of each stream.
	forwardWindow = 200 * time.Millisecond
	// The RP must hold the receiver's (*,G) join within this long of the probe's
	// first packet.
	sharedTreeWait = 5 * time.Second
	// A source starts this long after the shared tree is up, for the routers that
	// cannot be asked whether their join has arrived.
	sharedTreeSettle = 100 * time.Millisecond
	// Each source start's probe group is this many groups above its own.
	probeOffset = 256
)

// registerIf is the register VIF's device, where an RP's kernel hands up what it took
// out of Registers: every implementation's is named so.
const registerIf = "pimreg"

// sourceRun is one fresh source streaming to a group that the receiver joined before.
type sourceRun struct {
	stream     mcast.Stats       // the receiver's account of the source's stream
	sent       mcast.SendSummary // the source's
	joined     time.Time         // when the receiver joined
	onLink     time.Time         // when the first datagram reached rcv's link, whatever its checksum
	csumErrors uint64            // datagrams rcv's kernel dropped for a bad UDP checksum
	registered uint64            // datagrams the RP's kernel took out of Registers
	forwarding []string          // the routers forwarding onto the LAN at the stream's end
	err        error
}

// firstPacket is the time from the source's first datagram to the receiver's first.
func (r sourceRun) firstPacket() time.Duration {
	return r.joined.Add(msDuration(r.stream.FirstPacketMs)).Sub(r.sent.FirstSent)
}

// firstOnLink is the time from the source's first datagram to the first that reached
// the receiver's link; zero if none did.
func (r sourceRun) firstOnLink() time.Duration {
	if r.onLink.IsZero() {
		return 0
	}
	return r.onLink.Sub(r.sent.FirstSent)
}

// lost counts the datagrams sent that never arrived, from the first on.
func (r sourceRun) lost() uint64 {
	if r.sent.Sent < r.stream.Unique {
		return 0
	}
	return r.sent.Sent - r.stream.Unique
}

// duplicatesStop is the time from the source's first datagram to the receiver's last
// duplicate; zero when none came.
func (r sourceRun) duplicatesStop() time.Duration {
	if r.stream.Duplicates == 0 {
		return 0
	}
	return r.joined.Add(msDuration(r.stream.LastDuplicateMs)).Sub(r.sent.FirstSent)
}

func msDuration(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

// sourceStarts starts n sources one after the other, each a fresh stream of m's
// source to a fresh group that the receiver joined before, once the RP's shared tree
// of the group reaches the receiver.
func (d *deployment) sourceStarts(m mode, n int) []sourceRun {
	if err := d.notReady(m); err != nil {
		return []sourceRun{{err: err}}
	}
	return repeat(n, "sources", func(i int) (sourceRun, error) {
		r := d.sourceStart(m, benchlab.AddrAdd(m.sources, i))
		return r, r.err
	}, func(err error) sourceRun { return sourceRun{err: err} })
}

// sourceStart measures one source start to group. The receiver joins group, then a
// probe group; the source sends to the probe group until its packets arrive, which
// they do once the routers built its shared tree and sent it the source's Registers:
// the join of group, made just before, went up with it. With the RP holding that join
// (where the router can tell), the source starts a new stream to group.
func (d *deployment) sourceStart(m mode, group netip.Addr) sourceRun {
	ready := filepath.Join(d.lab.StateDir, "source-ready")
	if err := os.Remove(ready); err != nil && !errors.Is(err, os.ErrNotExist) {
		return sourceRun{err: err}
	}
	recv, err := benchlab.StartBackground(d.lab, receiverNode, append([]string{"mcast", "recv", "-duration", "2m", "-ready", ready}, m.join(group)...)...)
	if err != nil {
		return sourceRun{err: err}
	}
	defer recv.Stop()
	for deadline := time.Now().Add(readyWait); !exists(ready); time.Sleep(pollEvery) {
		if time.Now().After(deadline) {
			return sourceRun{err: fmt.Errorf("receiver not joined within %v%s", readyWait, recv.ExitNote())}
		}
	}
	probe := benchlab.AddrAdd(group, probeOffset)
	if err := d.waitSharedTree(m, group, probe); err != nil {
		return sourceRun{err: err}
	}

	var run sourceRun
	before, err := udpInCsumErrors(d.lab, receiverNode)
	if err != nil {
		return sourceRun{err: err}
	}
	regBefore, err := d.linkStats(d.net.rpNode, registerIf)
	if err != nil {
		return sourceRun{err: err}
	}
	send, err := d.sender(m, group, 1, ratePPS)
	if err != nil {
		return sourceRun{err: err}
	}
	time.Sleep(sourceStream - forwardWindow)
	run.forwarding, err = d.forwarders()
	out := send.Output()
	if err != nil {
		return sourceRun{err: err}
	}
	if run.sent, err = sendSummary(out); err != nil {
		return sourceRun{err: fmt.Errorf("mcast send: %v: %s", err, strings.TrimSpace(string(out)))}
	}
	time.Sleep(sourceDrain)
	report, err := mcast.ParseReport(recv.Output())
	if err != nil {
		return sourceRun{err: fmt.Errorf("mcast recv: %v", err)}
	}
	after, err := udpInCsumErrors(d.lab, receiverNode)
	if err != nil {
		return sourceRun{err: err}
	}
	run.csumErrors = after - before
	regAfter, err := d.linkStats(d.net.rpNode, registerIf)
	if err != nil {
		return sourceRun{err: err}
	}
	run.registered = regAfter.RxPackets - regBefore.RxPackets
	run.joined = report.Joined
	run.onLink, _ = d.capture.Data(group)
	// The source's own stream: numbered 0 like every sender's, and the only one.
	run.stream = report.Streams["0"]
	if run.stream.Received == 0 {
		run.err = fmt.Errorf("none of %d datagrams arrived", run.sent.Sent)
		if run.csumErrors > 0 {
			run.err = fmt.Errorf("none of %d datagrams arrived; rcv's kernel dropped %d for a bad UDP checksum", run.sent.Sent, run.csumErrors)
		}
	}
	return run
}

// waitSharedTree makes the receiver join probe too, streams to it from m's source
// until it arrives, and waits for the RP to hold the receiver's join of group.
func (d *deployment) waitSharedTree(m mode, group, probe netip.Addr) error {
	member, err := benchlab.StartBackground(d.lab, receiverNode, append([]string{"mcast", "recv", "-duration", "2m"}, m.join(probe)...)...)
	if err != nil {
		return err
	}
	defer member.Stop()
	send, err := d.sender(m, probe, 1, ratePPS)
	if err != nil {
		return err
	}
	defer send.Stop()
	for deadline := time.Now().Add(joinTimeout); ; time.Sleep(pollEvery) {
		if first, _ := d.capture.Data(probe); !first.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("probe %v: nothing forwarded within %v of the join%s%s%s", probe, joinTimeout, send.ExitNote(), member.ExitNote(), d.capture.Note())
		}
	}
	send.Stop()
	for deadline := time.Now().Add(sharedTreeWait); ; time.Sleep(10 * pollEvery) {
		held, err := d.router.holdsJoin(d.lab, d.net.rpNode, d.net.rpDown, group)
		if held {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s holds no (*,%v) join on %s %v after the probe's first packet: %v", d.net.rpNode, group, d.net.rpDown, sharedTreeWait, err)
		}
	}
	time.Sleep(sharedTreeSettle)
	return nil
}

// forwarders returns, over forwardWindow, the routers that forward the stream onto
// the network's LAN: at least half of what the source sends leaves by their
// interface there. Without a LAN it only waits.
func (d *deployment) forwarders() ([]string, error) {
	count := func() ([]uint64, error) {
		var tx []uint64
		for _, e := range d.net.lan {
			st, err := d.linkStats(e.Node, e.Iface)
			if err != nil {
				return nil, err
			}
			tx = append(tx, st.TxPackets)
		}
		return tx, nil
	}
	before, err := count()
	if err != nil {
		return nil, err
	}
	time.Sleep(forwardWindow)
	after, err := count()
	if err != nil {
		return nil, err
	}
	var forwarding []string
	for i, e := range d.net.lan {
		if after[i]-before[i] >= uint64(ratePPS*forwardWindow/time.Second)/2 {
			forwarding = append(forwarding, e.Node)
		}
	}
	return forwarding, nil
}

// linkStats reads the counters of node's interface ifname.
func (d *deployment) linkStats(node, ifname string) (netlink.LinkStatistics, error) {
	var st netlink.LinkStatistics
	err := d.lab.InNetns(node, func() error {
		link, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("%s: %s: %v", node, ifname, err)
		}
		if s := link.Attrs().Statistics; s != nil {
			st = *s
		}
		return nil
	})
	return st, err
}

// sendSummary reads the summary mcast send prints last.
func sendSummary(out []byte) (mcast.SendSummary, error) {
	var sum mcast.SendSummary
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	err := json.Unmarshal(lines[len(lines)-1], &sum)
	return sum, err
}

// udpInCsumErrors reads how many UDP datagrams node's kernel dropped for a bad
// checksum.
func udpInCsumErrors(l *lab.Lab, node string) (uint64, error) {
	out, err := l.Exec(node, "cat", "/proc/net/snmp")
	if err != nil {
		return 0, err
	}
	n, ok := snmpCounters(out)["Udp"]["InCsumErrors"]
	if !ok {
		return 0, fmt.Errorf("%s: no Udp InCsumErrors in /proc/net/snmp", node)
	}
	return n, nil
}

// snmpCounters parses /proc/net/snmp: per protocol a line of counter names, then one
// of their values.
func snmpCounters(text string) map[string]map[string]uint64 {
	counters := map[string]map[string]uint64{}
	names := map[string][]string{}
	for _, line := range strings.Split(text, "\n") {
		proto, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if names[proto] == nil {
			names[proto] = fields
			continue
		}
		counters[proto] = map[string]uint64{}
		for i, v := range fields {
			if n, err := strconv.ParseUint(v, 10, 64); err == nil && i < len(names[proto]) {
				counters[proto][names[proto][i]] = n
			}
		}
	}
	return counters
}

// assertStates asks the router on each of the network's LAN interfaces what it holds
// of the asserts of the first n source starts' groups, and sums it up per router.
func (d *deployment) assertStates(m mode, n int) map[string]assertState {
	groups, err := mcast.GroupRange(m.sources, n)
	states := map[string]assertState{}
	for _, e := range d.net.lan {
		var st assertState
		if st.err = err; err == nil {
			var per map[netip.Addr]string
			if per, st.err = d.router.asserts(d.lab, e.Node, e.Iface, m.source, groups); st.err == nil {
				var words []string
				for _, g := range groups {
					words = append(words, per[g])
				}
				st.summary = countWords(words)
			}
		}
		states[e.Node] = st
	}
	return states
}

// assertState is what one router holds of the asserts of the source starts.
type assertState struct {
	summary string
	err     error
}

// countWords renders words, each distinct one once with how often it came:
// "lost to 10.0.9.2 (3)".
func countWords(words []string) string {
	count := map[string]int{}
	var order []string
	for _, s := range words {
		if count[s] == 0 {
			order = append(order, s)
		}
		count[s]++
	}
	var parts []string
	for _, s := range order {
		parts = append(parts, fmt.Sprintf("%s (%d)", s, count[s]))
	}
	return strings.Join(parts, ", ")
}
