package benchlab

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mrouterd/mrouterd/test/lab"
	"github.com/mrouterd/mrouterd/test/peers"
)

// MrouterdName heads mrouterd's column: its name and version.
func MrouterdName(bin string) string {
	return "mrouterd " + lastWord(version(filepath.Join(bin, "mrouterd"), "--version"))
}

// FRRName heads FRR's column: its name and version.
func FRRName() string {
	return "FRR " + lastWord(version(filepath.Join(peers.FRRDir, "pimd"), "--version"))
}

// PimdName heads troglobit's pimd's column: its name and version.
func PimdName() string { return "pimd " + lastWord(version(peers.PimdPath, "-v")) }

// version runs a program's version option and returns the first line of its output.
func version(args ...string) string {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// lastWord returns the last word of s, where version commands put the version.
func lastWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return "?"
	}
	return f[len(f)-1]
}

// CheckMrouterd says why mrouterd cannot run from bin, if it cannot.
func CheckMrouterd(bin string) error {
	if _, err := os.Stat(filepath.Join(bin, "mrouterd")); err != nil {
		return fmt.Errorf("no mrouterd in %s: run make build", bin)
	}
	return nil
}

// StartMrouterd writes config to node's folder of the lab's state and starts mrouterd
// on node with it.
func StartMrouterd(l *lab.Lab, node, config string) error {
	path := filepath.Join(l.StateDir, node, "bench.toml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		return err
	}
	return l.StartDaemon(node, "-c", path)
}

// ProcessMemory is the resident set size of one process of a router.
type ProcessMemory struct {
	Process string
	RSSKB   int64
}

// MrouterdMemory returns the memory of node's mrouterd.
func MrouterdMemory(l *lab.Lab, node string) ([]ProcessMemory, error) {
	pid, ok := l.DaemonPID(node)
	if !ok {
		return nil, fmt.Errorf("mrouterd on %s is not running", node)
	}
	kb, err := rss(pid)
	return []ProcessMemory{{"mrouterd", kb}}, err
}

// PeerMemory returns the memory of the named daemons of a reference router, in order.
func PeerMemory(p *peers.Process, daemons ...string) ([]ProcessMemory, error) {
	var mem []ProcessMemory
	pids := p.PIDs()
	for _, name := range daemons {
		kb, err := rss(pids[name])
		if err != nil {
			return nil, fmt.Errorf("%s on %s: %v", name, p.Node, err)
		}
		mem = append(mem, ProcessMemory{name, kb})
	}
	return mem, nil
}

// rss reads VmRSS from /proc/pid/status.
func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("pid %d: no VmRSS in /proc/%d/status", pid, pid)
}

// MemoryCell renders a router's processes as "pimd 5.1 MB + zebra 7.0 MB".
func MemoryCell(mem []ProcessMemory) string {
	var parts []string
	for _, p := range mem {
		parts = append(parts, fmt.Sprintf("%s %s", p.Process, Megabytes(p.RSSKB)))
	}
	return strings.Join(parts, " + ")
}
