package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/pim"
	"github.com/mrouterd/mrouterd/router/api"
	"github.com/mrouterd/mrouterd/test/lab"
)

// The flood tests: atk, a host on r1's receiver LAN (a /16), floods r1 with IGMP
// reports, PIM Hellos or new data flows, forging what it needs to, while an
// established stream of 1,000 pps runs from src through r1 to rcv on that LAN
// (test/topologies/flood.clab.yml). r1's limits refuse the excess and count it,
// the stream loses nothing and gets nothing twice, r1 answers `show status`
// throughout, and its memory stays bounded. Rates are divided by lab.Rate where the
// lab is slower, and so is the number of new flows (TestFloodNewFlows); the
// numbers of distinct sources and addresses are not. Each test logs its figures
// on one line.

const (
	floodSource = "10.0.1.2" // src
	floodGroup  = "239.1.1.1"
)

// floodLab deploys the flood topology, r1 with config ("" for the built-in
// settings), and starts the established stream to rcv.
func floodLab(t *testing.T, config string) *lab.Lab {
	t.Helper()
	var configs map[string]string
	if config != "" {
		configs = map[string]string{"r1": config}
	}
	l := deploy(t, topology(t, "flood", configs))
	holdMembership(t, l, "rcv", floodGroup)
	startSender(t, l, "src", streamArgs(floodGroup, 1000)...)
	waitFloodStream(t, l)
	return l
}

// waitFloodStream polls until r1 has the established stream's route, and its
// kernel entry, toward rcv's LAN alone. It asks for that one entry: after a flood
// the tables are large.
func waitFloodStream(t *testing.T, l *lab.Lab) {
	t.Helper()
	lab.WaitFor(t, 10*time.Second, fmt.Sprintf("r1: (%s,%s) from eth1 to eth2", floodSource, floodGroup), func() (bool, string) {
		var rs api.Routes
		var m api.MFC
		ctl(t, l, "r1", &rs, "show", "routes", floodSource, floodGroup)
		ctl(t, l, "r1", &m, "show", "mfc", floodSource, floodGroup)
		rt, ok := findRoute(rs.Routes, floodSource, floodGroup)
		e, inKernel := findMFC(m.MFC, floodSource, floodGroup)
		return ok && inKernel && rt.IIF == "eth1" && slices.Equal(rt.OIFs, []string{"eth2"}) &&
				e.IIF == "eth1" && slices.Equal(e.OIFs, []string{"eth2"}),
			fmt.Sprintf("routes %+v, kernel %+v", rs.Routes, m.MFC)
	})
}

// floodFigures are what r1 looked like while a flood ran.
type floodFigures struct {
	took      time.Duration   // the flood's sending, from first packet to last
	idle      time.Duration   // the median show status answer before the flood
	answers   []time.Duration // of mroutectl --json show status
	apiTimes  []time.Duration // of GET /v1/status, the same answer without a client to start
	failed    []string        // show status calls that failed, and why
	rssBefore uint64          // KiB
	rssMax    uint64          // the largest VmRSS seen during the flood, KiB
	hwm       uint64          // VmHWM once the flood is over, KiB
	before    map[string]uint64
	after     api.Status
	cpu       time.Duration // the daemon's, during the flood
	lost      uint64        // the established stream's, after its first packet
	dups      uint64
	received  uint64
	maxGapMs  float64
	// Where a lost packet of the stream would have gone: rcv's socket buffer
	// (UDP RcvbufErrors) or a CPU's input backlog (softnet drops).
	rcvbufErrors, backlogDrops uint64
}

// delta is how far a counter of r1's moved during the flood.
func (f *floodFigures) delta(name string) uint64 { return f.after.Counters[name] - f.before[name] }

// percentile is the p-th percentile (0 < p <= 100) of times.
func percentile(times []time.Duration, p float64) time.Duration {
	if len(times) == 0 {
		return 0
	}
	s := slices.Clone(times)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// summary is the figures of r1 and the stream on one line.
func (f *floodFigures) summary() string {
	return fmt.Sprintf("show status p50 %v, p99 %v, max %v (%d calls, %d failed; %v before the flood), of which the API's answer p50 %v, p99 %v; RSS %.1f MiB before, %.1f MiB at most during, peak (VmHWM) %.1f MiB; CPU %v; %d routes; stream %d packets, %d lost, %d duplicates, largest gap %.0f ms (rcv socket buffer overflows %d, backlog drops %d)",
		percentile(f.answers, 50).Round(time.Millisecond), percentile(f.answers, 99).Round(time.Millisecond), percentile(f.answers, 100).Round(time.Millisecond),
		len(f.answers), len(f.failed), f.idle.Round(time.Millisecond),
		percentile(f.apiTimes, 50).Round(time.Millisecond), percentile(f.apiTimes, 99).Round(time.Millisecond), mib(f.rssBefore), mib(f.rssMax), mib(f.hwm), f.cpu, f.after.Routes,
		f.received, f.lost, f.dups, f.maxGapMs, f.rcvbufErrors, f.backlogDrops)
}

func mib(kib uint64) float64 { return float64(kib) / 1024 }

// underFlood runs flood, which sends its packets and returns how long that took,
// while rcv counts the established stream and r1's `show status` is timed every
// 100 ms and its memory read. It fails t if the stream lost or doubled a packet,
// a status call failed, the daemon died or the stream's route changed.
func underFlood(t *testing.T, l *lab.Lab, flood func() time.Duration) *floodFigures {
	t.Helper()
	pid, ok := l.DaemonPID("r1")
	if !ok {
		t.Fatal("r1: mrouterd is not running")
	}
	f := &floodFigures{}
	var st api.Status
	ctl(t, l, "r1", &st, "show", "status")
	f.before = st.Counters
	var err error
	if f.rssBefore, _, err = daemonMemory(pid); err != nil {
		t.Fatal(err)
	}
	f.idle = idleAnswer(t, l, "r1")
	_, cpu := daemonUsage(t, l, "r1")
	rcvbufErrors, backlogDrops := udpStat(t, l, "rcv", "RcvbufErrors"), softnetDrops(t)
	rep := countThrough(t, l, floodGroup, func() {
		stop, polled := pollStatus(l, "r1", pid, f)
		f.took = flood()
		close(stop)
		<-polled
	})
	f.received, f.lost, f.dups, f.maxGapMs = rep.Unique, lostAfterFirst(rep), rep.Duplicates, rep.MaxGapMs
	f.rcvbufErrors = udpStat(t, l, "rcv", "RcvbufErrors") - rcvbufErrors
	f.backlogDrops = softnetDrops(t) - backlogDrops
	checkDaemonsUp(t, l, "r1")
	_, f.cpu = daemonUsage(t, l, "r1")
	f.cpu -= cpu
	if _, f.hwm, err = daemonMemory(pid); err != nil {
		t.Fatal(err)
	}
	ctl(t, l, "r1", &f.after, "show", "status")
	if f.lost != 0 || f.dups != 0 {
		t.Errorf("the established stream under the flood: %+v; want none lost after the first, no duplicates", rep.Stats)
	}
	if len(f.failed) > 0 {
		t.Errorf("%d of %d show status calls failed during the flood: %s", len(f.failed), len(f.answers)+len(f.failed), strings.Join(f.failed, "; "))
	}
	if f.hwm > maxFloodHWM {
		t.Errorf("r1's memory peaked at %.0f MiB (VmHWM); want under %.0f MiB", mib(f.hwm), mib(maxFloodHWM))
	}
	waitFloodStream(t, l)
	return f
}

// maxFloodHWM bounds the daemon's resident memory through a flood, in KiB: every
// table a flood grows has a limit, and what they hold at their limits fits well
// under it.
const maxFloodHWM = 256 << 10

// idleAnswer is the median time of a few statusCalls.
func idleAnswer(t *testing.T, l *lab.Lab, node string) time.Duration {
	t.Helper()
	var took []time.Duration
	for range 5 {
		d, err := statusCall(l, node)
		if err != nil {
			t.Fatalf("%s: show status: %v", node, err)
		}
		took = append(took, d)
	}
	slices.Sort(took)
	return took[len(took)/2]
}

// statusCall runs `mroutectl --json show status` against node's daemon and
// returns how long it took to answer, client start included.
func statusCall(l *lab.Lab, node string) (time.Duration, error) {
	start := time.Now()
	out, err := exec.Command(filepath.Join(binDir, "mroutectl"), "-s", l.Socket(node), "--json", "show", "status").Output()
	took := time.Since(start)
	if err == nil {
		var st api.Status
		err = json.Unmarshal(out, &st)
	}
	return took, err
}

// pollStatus times node's `mroutectl --json show status` every 100 ms, and the
// control API's answer to the same question, and reads the daemon's VmRSS, into
// f until stop is closed; polled is closed once it has stopped.
func pollStatus(l *lab.Lab, node string, pid int, f *floodFigures) (stop, polled chan struct{}) {
	stop, polled = make(chan struct{}), make(chan struct{})
	client := api.NewClient(l.Socket(node))
	go func() {
		defer close(polled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			took, err := statusCall(l, node)
			if err != nil {
				f.failed = append(f.failed, fmt.Sprintf("after %v: %v", took.Round(time.Millisecond), err))
			} else {
				f.answers = append(f.answers, took)
			}
			start := time.Now()
			var st api.Status
			if err := client.Get(context.Background(), "/v1/status", &st); err != nil {
				f.failed = append(f.failed, fmt.Sprintf("GET /v1/status: %v", err))
			} else {
				f.apiTimes = append(f.apiTimes, time.Since(start))
			}
			if rss, _, err := daemonMemory(pid); err == nil {
				f.rssMax = max(f.rssMax, rss)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return stop, polled
}

// daemonMemory reads a process's resident set and its peak (VmRSS, VmHWM) in KiB.
func daemonMemory(pid int) (rss, hwm uint64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		key, value, _ := strings.Cut(line, ":")
		n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		switch key {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm, nil
}

// softnetDrops counts the packets the machine's CPUs dropped for a full input
// backlog (the second column of /proc/net/softnet_stat, in hex, one line a CPU).
// It is the machine's, not a namespace's.
func softnetDrops(t *testing.T) uint64 {
	t.Helper()
	text, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, line := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		if fields := strings.Fields(line); len(fields) > 1 {
			d, err := strconv.ParseUint(fields[1], 16, 64)
			if err != nil {
				t.Fatalf("/proc/net/softnet_stat: %v", err)
			}
			n += d
		}
	}
	return n
}

// flooder sends forged IPv4 packets, headers and all, out of an interface of a
// node: the socket is made in the node's namespace and stays there.
type flooder struct {
	fd int
}

func newFlooder(t *testing.T, l *lab.Lab, node, ifname string) *flooder {
	t.Helper()
	f := &flooder{fd: -1}
	err := l.InNetns(node, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		// IPPROTO_RAW: the packets carry their own IP header (IP_HDRINCL).
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		f.fd = fd
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)}); err != nil {
			return err
		}
		return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0)
	})
	if f.fd >= 0 {
		t.Cleanup(func() { unix.Close(f.fd) })
	}
	if err != nil {
		t.Fatalf("%s: raw socket on %s: %v", node, ifname, err)
	}
	return f
}

// run sends count packets at rate a second, packet(i) making the i-th, and
// returns how long it took. A full socket buffer is waited out, not skipped.
func (f *flooder) run(t *testing.T, rate, count int, packet func(i int) []byte) time.Duration {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for i := 0; i < count; {
		due := min(count, int(time.Since(start).Seconds()*float64(rate))+1)
		for ; i < due; i++ {
			pkt := packet(i)
			dst := unix.SockaddrInet4{Addr: [4]byte(pkt[16:20])}
			for {
				err := unix.Sendto(f.fd, pkt, 0, &dst)
				if err == nil {
					break
				}
				if !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EAGAIN) {
					t.Fatalf("flood packet %d: %v", i, err)
				}
				<-tick.C
			}
		}
		if i < count {
			<-tick.C
		}
	}
	return time.Since(start)
}

// ipPacket builds an IPv4 packet around payload; the kernel fills in the ID, the
// total length and the header checksum.
func ipPacket(proto, ttl, tos uint8, src, dst netip.Addr, options, payload []byte) []byte {
	hlen := 20 + len(options)
	b := make([]byte, hlen, hlen+len(payload))
	b[0] = 0x40 | uint8(hlen/4)
	b[1] = tos
	binary.BigEndian.PutUint16(b[2:4], uint16(hlen+len(payload)))
	b[8], b[9] = ttl, proto
	copy(b[12:16], src.AsSlice())
	copy(b[16:20], dst.AsSlice())
	copy(b[20:], options)
	return append(b, payload...)
}

// nthAddr is the address n after base.
func nthAddr(base netip.Addr, n int) netip.Addr {
	b := base.As4()
	return netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, binary.BigEndian.Uint32(b[:])+uint32(n))))
}

// TestFloodIGMPReports: atk sends 10,000 IGMPv3 reports a second for 10 s from its
// own address, each allowing 10 new sources into one group, 100,000 distinct
// sources in all: far more than the 1,024 (igmp.max-sources) the group can hold,
// so the rest are refused and counted. Reports that come faster than r1 takes
// them are dropped at its input, and counted too (tap_queue_full).
func TestFloodIGMPReports(t *testing.T) {
	l := floodLab(t, "")
	const groups, perReport, distinct = 1, 10, 100_000
	rate := lab.Rate(10_000)
	count := 10 * rate
	atk, firstSource := netip.MustParseAddr("10.2.0.3"), netip.MustParseAddr("10.100.0.0")
	fl := newFlooder(t, l, "atk", "eth1")
	f := underFlood(t, l, func() time.Duration {
		return fl.run(t, rate, count, func(i int) []byte {
			rec := igmp.Record{Type: igmp.AllowNewSources, Group: nthAddr(netip.MustParseAddr("239.200.0.0"), i%groups)}
			for j := range perReport {
				rec.Sources = append(rec.Sources, nthAddr(firstSource, (i*perReport+j)%distinct))
			}
			report, err := (&igmp.Report{Version: 3, Records: []igmp.Record{rec}}).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			return ipPacket(unix.IPPROTO_IGMP, 1, 0xc0, atk, igmp.AllV3Routers, igmp.RouterAlert(), report)
		})
	})
	t.Logf("IGMP flood: %d reports of %d sources (%d distinct, to %d group) in %v (%.0f/s); r1 took %d, dropped %d at its input (tap_queue_full); igmp_sources_refused %d, igmp_groups_refused %d; %s",
		count, perReport, min(distinct, count*perReport), groups, f.took.Round(time.Millisecond), float64(count)/f.took.Seconds(),
		f.delta("igmp_received"), f.delta("tap_queue_full"), f.delta("igmp_sources_refused"), f.delta("igmp_groups_refused"), f.summary())
	if f.delta("igmp_sources_refused") == 0 {
		t.Errorf("r1 refused no source of %d distinct to a group of at most 1,024", distinct)
	}
}

// TestFloodPIMHellos: atk sends 20,000 PIM Hellos from 20,000 addresses of the
// LAN's /16 (TTL 1, to 224.0.0.13, as a router on the link would), each with DR
// priority 0 so that r1 stays the LAN's DR: r1 takes pim.max-neighbors (64) of
// them and refuses and counts the rest.
func TestFloodPIMHellos(t *testing.T) {
	l := floodLab(t, "")
	const count, maxNeighbors = 20_000, 64
	rate := lab.Rate(10_000)
	firstNeighbor, allPIMRouters := netip.MustParseAddr("10.2.1.0"), netip.MustParseAddr("224.0.0.13")
	fl := newFlooder(t, l, "atk", "eth1")
	holdtime, priority := uint16(105), uint32(0)
	f := underFlood(t, l, func() time.Duration {
		return fl.run(t, rate, count, func(i int) []byte {
			gen := uint32(i)
			hello, err := (&pim.Hello{Holdtime: &holdtime, DRPriority: &priority, GenerationID: &gen}).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			return ipPacket(unix.IPPROTO_PIM, 1, 0xc0, nthAddr(firstNeighbor, i), allPIMRouters, nil, hello)
		})
	})
	neighbors := pimNeighbors(t, l, "r1")
	t.Logf("PIM Hello flood: %d Hellos from %d addresses in %v (%.0f/s); r1 took %d, dropped %d at its input (tap_queue_full, pim_queue_full); %d neighbours, pim_neighbors_refused %d; %s",
		count, count, f.took.Round(time.Millisecond), float64(count)/f.took.Seconds(),
		f.delta("pim_hellos_received"), f.delta("tap_queue_full")+f.delta("pim_queue_full"), len(neighbors), f.delta("pim_neighbors_refused"), f.summary())
	if len(neighbors) != maxNeighbors || f.delta("pim_neighbors_refused") == 0 {
		t.Errorf("r1 holds %d neighbours and refused %d; want %d, and the rest refused", len(neighbors), f.delta("pim_neighbors_refused"), maxNeighbors)
	}
	if dr := pimDR(t, l, "r1", "eth2"); dr != "10.2.0.1" {
		t.Errorf("r1's DR on the LAN is %s; the forged neighbours have priority 0", dr)
	}
}

// TestFloodNewFlows: atk sends one datagram each of 100,000 new (S,G) flows, from
// 1,000 sources of the LAN's /16 to groups nobody joined, 5,000 a second. r1
// learns each flow its kernel asks about, up to router.max-learned-routes (a
// tenth of them here), and refuses and counts the rest. Where the lab is slower
// the flows are fewer too, as the rate: 100,000 would take minutes there. (Each
// flow r1 refuses stays in its kernel's unresolved queue for 10 s, which the
// kernel searches for every new flow's packet: at twice the rate, the VM's one
// CPU falls behind and drops packets from its input backlog, the stream's too.)
func TestFloodNewFlows(t *testing.T) {
	const sources = 1_000
	count := int(100_000 / lab.TimeScale())
	maxLearned := count / 10
	l := floodLab(t, fmt.Sprintf("[router]\nmax-learned-routes = %d\n", maxLearned))
	rate := lab.Rate(5_000)
	firstSource, firstGroup := netip.MustParseAddr("10.2.100.0"), netip.MustParseAddr("239.3.0.0")
	fl := newFlooder(t, l, "atk", "eth1")
	udp := make([]byte, 8+16)
	binary.BigEndian.PutUint16(udp[0:2], 5999)
	binary.BigEndian.PutUint16(udp[2:4], 5999)
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp))) // checksum 0: none
	f := underFlood(t, l, func() time.Duration {
		return fl.run(t, rate, count, func(i int) []byte {
			return ipPacket(unix.IPPROTO_UDP, 16, 0, nthAddr(firstSource, i%sources), nthAddr(firstGroup, i/sources), nil, udp)
		})
	})
	t.Logf("new flow flood: %d flows (%d sources x %d groups) in %v (%.0f/s); r1: %d upcalls (%d dropped at its input, mrt_queue_full), %d routes learned, routes_learned_refused %d (max-learned-routes %d); %s",
		count, sources, count/sources, f.took.Round(time.Millisecond), float64(count)/f.took.Seconds(),
		f.delta("upcall_nocache"), f.delta("mrt_queue_full"), f.delta("routes_learned"), f.delta("routes_learned_refused"), maxLearned, f.summary())
	if f.delta("routes_learned_refused") == 0 {
		t.Errorf("r1 refused none of %d new flows with room for %d", count, maxLearned)
	}
}
