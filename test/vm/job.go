package vm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The job directory is shared with the guest as 9p tag "job", mounted at initrdJobDir
// and then moved to guestJobDir. The host writes jobFile; the guest writes rcFile last.
const (
	jobTag      = "job"
	guestJobDir = "/run/vmtest"
	jobFile     = "job.json"
	rcFile      = "rc"
	rootTag     = "root"
)

// job is what the guest runs.
type job struct {
	Args    []string      `json:"args"`
	Env     []string      `json:"env"`
	Dir     string        `json:"dir"`
	Timeout time.Duration `json:"timeout"` // 0: none
	// KernelRoot is where the kernel's package is unpacked in the host's cache. The
	// guest's kernel loads modules on demand (NETLINK_XFRM, nf_tables, ...) through
	// a modprobe that looks there.
	KernelRoot string `json:"kernel_root"`
	// Modules are absolute paths, in load order, of the modules loaded after the root
	// is mounted.
	Modules []string `json:"modules"`
	// Keep are the host's directories under /tmp that the guest's fresh /tmp keeps.
	Keep []string `json:"keep"`
}

// keptDirs are the directories under /tmp that the job names in its working directory
// and arguments (go test -exec runs a test binary from /tmp/go-build*): the top
// directory under /tmp of each, so that a checkout or build under /tmp stays visible.
func keptDirs(dir string, args []string) []string {
	var keep []string
	for _, p := range append([]string{dir}, args...) {
		if i := strings.LastIndexByte(p, '='); i >= 0 {
			p = p[i+1:] // -test.coverprofile=/tmp/...
		}
		rest, ok := strings.CutPrefix(filepath.Clean(p), "/tmp/")
		if !ok || rest == "" {
			continue
		}
		top, _, _ := strings.Cut(rest, "/")
		if k := "/tmp/" + top; !slices.Contains(keep, k) {
			keep = append(keep, k)
		}
	}
	return keep
}

// Exit statuses of vmtest's own, beside the command's.
const (
	ExitTimeout = 124 // the command ran past --timeout and was killed
	ExitVMError = 125 // the VM could not run the command
)

func writeJob(dir string, j job) error {
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, jobFile), data, 0o644)
}

func readJob(dir string) (job, error) {
	var j job
	data, err := os.ReadFile(filepath.Join(dir, jobFile))
	if err == nil {
		err = json.Unmarshal(data, &j)
	}
	return j, err
}
