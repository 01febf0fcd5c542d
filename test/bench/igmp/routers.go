package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/mrouterd/mrouterd/test/bench/internal/benchlab"
	"github.com/mrouterd/mrouterd/test/lab"
	"github.com/mrouterd/mrouterd/test/peers"
)

// The router node and its interfaces, as in the topology file.
const (
	routerNode    = "r1"
	sourceIfname  = "eth1"
	receiverIface = "eth2"
	rpAddress     = "10.0.1.1" // r1's own address towards the source: FRR and pimd route ASM only through an RP
)

// router is one implementation under test, run on the router node of a fresh lab.
type router interface {
	// name heads its column: the implementation and its version.
	name() string
	// timers says how its IGMP querier is set up.
	timers() string
	start(l *lab.Lab) error
	// groupsHeld counts the groups in prefix it holds on the receiver interface.
	groupsHeld(l *lab.Lab, prefix netip.Prefix) (int, error)
	// stateInterval is how often groupsHeld may be asked.
	stateInterval() time.Duration
	// memory returns the resident set size of each of its processes.
	memory(l *lab.Lab) ([]benchlab.ProcessMemory, error)
	stop(l *lab.Lab) error
}

// mrouterd is the daemon under test, with the same leave timing as the peers get.
type mrouterd struct {
	binDir string
}

// mrouterdConfig sets what the benchmark compares; every other key keeps its default.
const mrouterdConfig = `[igmp]
last-member-query-interval = "1s"
robustness = 2
max-groups = 20000
`

// pathIGMPGroups is the control API's view of IGMP memberships (DESIGN.md section 3).
const pathIGMPGroups = "/v1/igmp/groups"

func (m *mrouterd) name() string { return benchlab.MrouterdName(m.binDir) }

func (m *mrouterd) timers() string { return "query 125s, LMQI 1s, robustness 2" }

func (m *mrouterd) start(l *lab.Lab) error {
	if err := benchlab.StartMrouterd(l, routerNode, mrouterdConfig); err != nil {
		return err
	}
	if _, err := l.APIGet(routerNode, pathIGMPGroups); err != nil {
		return fmt.Errorf("no IGMP in this build: %v", err)
	}
	return nil
}

func (m *mrouterd) groupsHeld(l *lab.Lab, prefix netip.Prefix) (int, error) {
	body, err := l.APIGet(routerNode, pathIGMPGroups)
	if err != nil {
		return 0, err
	}
	var reply struct {
		Groups []struct {
			Interface string `json:"interface"`
			Group     string `json:"group"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(body, &reply); err != nil {
		return 0, fmt.Errorf("GET %s: %v", pathIGMPGroups, err)
	}
	n := 0
	for _, g := range reply.Groups {
		if g.Interface == receiverIface && inPrefix(prefix, g.Group) {
			n++
		}
	}
	return n, nil
}

func (m *mrouterd) stateInterval() time.Duration { return 50 * time.Millisecond }

func (m *mrouterd) memory(l *lab.Lab) ([]benchlab.ProcessMemory, error) {
	return benchlab.MrouterdMemory(l, routerNode)
}

func (m *mrouterd) stop(l *lab.Lab) error { return l.StopDaemon(routerNode, syscall.SIGTERM) }

func inPrefix(prefix netip.Prefix, group string) bool {
	a, err := netip.ParseAddr(group)
	return err == nil && prefix.Contains(a)
}

// frr is FRR's pimd with zebra. Its IGMP robustness variable is fixed at 2.
type frr struct {
	proc *peers.Process
}

const frrConfig = `ip pim rp ` + rpAddress + ` 224.0.0.0/4
!
interface ` + sourceIfname + `
 ip pim
!
interface ` + receiverIface + `
 ip pim
 ip igmp
 ip igmp version 3
 ip igmp query-interval 125
 ip igmp last-member-query-interval 10
 ip igmp last-member-query-count 2
!
`

func (f *frr) name() string { return benchlab.FRRName() }

func (f *frr) timers() string { return "query 125s, LMQI 1s, LMQC 2, robustness 2 (fixed)" }

func (f *frr) start(l *lab.Lab) error {
	p, err := peers.StartFRR(l, routerNode, frrConfig)
	f.proc = p
	return err
}

func (f *frr) groupsHeld(l *lab.Lab, prefix netip.Prefix) (int, error) {
	out, err := peers.FRRVtysh(l, routerNode, "show ip igmp groups json")
	if err != nil {
		return 0, err
	}
	// {"totalGroups":N, "eth2":{"groups":[{"group":"239.1.1.1",...}]}, ...}
	var reply map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &reply); err != nil {
		return 0, fmt.Errorf("show ip igmp groups json: %v", err)
	}
	var iface struct {
		Groups []struct {
			Group string `json:"group"`
		} `json:"groups"`
	}
	if raw, ok := reply[receiverIface]; ok {
		if err := json.Unmarshal(raw, &iface); err != nil {
			return 0, fmt.Errorf("show ip igmp groups json: %s: %v", receiverIface, err)
		}
	}
	n := 0
	for _, g := range iface.Groups {
		if inPrefix(prefix, g.Group) {
			n++
		}
	}
	return n, nil
}

func (f *frr) stateInterval() time.Duration { return 250 * time.Millisecond }

func (f *frr) memory(*lab.Lab) ([]benchlab.ProcessMemory, error) {
	return benchlab.PeerMemory(f.proc, "pimd", "zebra")
}

func (f *frr) stop(*lab.Lab) error { return f.proc.Stop() }

// pimd is troglobit's pimd. Its last-member query interval (1 s) and count (its
// robustness, 3) are compiled in. Its query interval keeps its default, 12 s: pimd
// takes a static RP into use only ~15 s after start and makes the (*,G) of a member
// only at the member's next report, so a longer interval delays its first forwarding
// by as much.
type pimd struct {
	proc *peers.Process
}

const pimdConfig = `phyint ` + sourceIfname + ` enable
phyint ` + receiverIface + ` enable
rp-address ` + rpAddress + ` 224.0.0.0/4
`

func (p *pimd) name() string { return benchlab.PimdName() }

func (p *pimd) timers() string { return "query 12s, LMQI 1s, LMQC 3 (compiled in)" }

func (p *pimd) start(l *lab.Lab) error {
	proc, err := peers.StartPimd(l, routerNode, pimdConfig)
	p.proc = proc
	return err
}

// groupsHeld counts the (*,G) entries of pimd's routing table: pimd 2.3 lists no IGMP
// memberships for any-source groups, but makes a (*,G) for each.
func (p *pimd) groupsHeld(l *lab.Lab, prefix netip.Prefix) (int, error) {
	dump, err := peers.PimdDump(l, routerNode)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(dump, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "INADDR_ANY" && inPrefix(prefix, f[1]) {
			n++
		}
	}
	return n, nil
}

func (p *pimd) stateInterval() time.Duration { return peers.PimdDumpInterval }

func (p *pimd) memory(*lab.Lab) ([]benchlab.ProcessMemory, error) {
	return benchlab.PeerMemory(p.proc, "pimd")
}

func (p *pimd) stop(*lab.Lab) error { return p.proc.Stop() }
