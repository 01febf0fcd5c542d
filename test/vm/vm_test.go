package vm

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"
	"github.com/mrouterd/mrouterd/test/lab"
)

// fakeKernel lays out a kernel's modules directory with a modules.dep and
// modules.builtin like depmod's.
func fakeKernel(t *testing.T) Kernel {
	t.Helper()
	k := Kernel{Package: "linux-image-6.1.0-1-amd64", Release: "6.1.0-1-amd64", Root: t.TempDir()}
	files := map[string]string{
		"modules.dep": "kernel/fs/9p/9p.ko: kernel/fs/netfs/netfs.ko kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko\n" +
			"kernel/fs/netfs/netfs.ko: kernel/fs/fscache/fscache.ko\n" +
			"kernel/fs/fscache/fscache.ko:\n" +
			"kernel/net/9p/9pnet.ko:\n" +
			"kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko\n" +
			"kernel/drivers/net/dummy.ko.xz:\n",
		"modules.builtin":                "kernel/drivers/virtio/virtio_pci.ko\n",
		"kernel/fs/9p/9p.ko":             "9p",
		"kernel/fs/netfs/netfs.ko":       "netfs",
		"kernel/fs/fscache/fscache.ko":   "fscache",
		"kernel/net/9p/9pnet.ko":         "9pnet",
		"kernel/net/9p/9pnet_virtio.ko":  "9pnet_virtio",
		"kernel/drivers/net/dummy.ko.xz": "dummy",
	}
	for name, text := range files {
		path := filepath.Join(k.ModulesDir(), name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

func TestLoadOrder(t *testing.T) {
	idx, err := readModuleIndex(fakeKernel(t).ModulesDir())
	if err != nil {
		t.Fatal(err)
	}
	order, err := idx.loadOrder(BootModules)
	if err != nil {
		t.Fatal(err)
	}
	// virtio_pci is built in; every module comes after what it depends on, once.
	want := []string{"kernel/net/9p/9pnet.ko", "kernel/net/9p/9pnet_virtio.ko", "kernel/fs/fscache/fscache.ko",
		"kernel/fs/netfs/netfs.ko", "kernel/fs/9p/9p.ko"}
	if !slices.Equal(order, want) {
		t.Errorf("load order %v, want %v", order, want)
	}
	if order, err := idx.loadOrder([]string{"dummy"}); err != nil || !slices.Equal(order, []string{"kernel/drivers/net/dummy.ko.xz"}) {
		t.Errorf("compressed module: %v %v", order, err)
	}
	if _, err := idx.loadOrder([]string{"no-such"}); err == nil || !strings.Contains(err.Error(), "no_such") {
		t.Errorf("unknown module: %v", err)
	}
}

func TestModuleName(t *testing.T) {
	for path, want := range map[string]string{
		"kernel/net/9p/9pnet_virtio.ko": "9pnet_virtio",
		"kernel/net/8021q/8021q.ko.xz":  "8021q",
		"ip-gre":                        "ip_gre",
		"kernel/x/nf-tables.ko.zst":     "nf_tables",
	} {
		if got := moduleName(path); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestInitrdHoldsInitAndModules(t *testing.T) {
	k := fakeKernel(t)
	init := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(init, []byte("#!init"), 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "initrd")
	if err := writeInitrd(dst, init, k, []string{"kernel/net/9p/9pnet.ko", "kernel/fs/9p/9p.ko"}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	r := cpio.NewReader(bytes.NewReader(data))
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r)
		if h.Mode.IsRegular() {
			got[h.Name] = string(body)
		} else if !h.Mode.IsDir() {
			t.Errorf("%s: mode %v, neither file nor directory", h.Name, h.Mode)
		}
	}
	want := map[string]string{
		"init":             "#!init",
		"modules/9pnet.ko": "9pnet",
		"modules/9p.ko":    "9p",
		"modules/order":    "/modules/9pnet.ko\n/modules/9p.ko\n",
	}
	for name, text := range want {
		if got[name] != text {
			t.Errorf("%s: %q, want %q", name, got[name], text)
		}
	}
}

func TestKeptDirs(t *testing.T) {
	got := keptDirs("/tmp/ci/repo/test/e2e", []string{"/tmp/go-build1/b001/e2e.test", "-test.v",
		"-test.coverprofile=/tmp/go-build1/b001/_cover_.out", "/var/tmp/x", "/tmp", "/tmpfoo/a"})
	if want := []string{"/tmp/ci", "/tmp/go-build1"}; !slices.Equal(got, want) {
		t.Errorf("keptDirs = %v, want %v", got, want)
	}
	if got := keptDirs("/work/repo", []string{"go", "version"}); len(got) != 0 {
		t.Errorf("nothing under /tmp, yet kept %v", got)
	}
}

func TestNewerRelease(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"6.1.0-100-amd64", "6.1.0-57-amd64", true},
		{"6.1.0-57-amd64", "6.1.0-100-amd64", false},
		{"6.12.118+deb12-amd64", "6.12.9+deb12-amd64", true},
		{"6.1.0-57-amd64", "", true},
		{"6.1.0-57-amd64", "6.1.0-57-amd64", false},
	} {
		if got := newerRelease(c.a, c.b); got != c.want {
			t.Errorf("newerRelease(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func TestCachedKernel(t *testing.T) {
	cache := t.TempDir()
	for _, pkg := range []string{"linux-image-6.1.0-57-amd64", "linux-image-6.1.0-100-amd64", "linux-image-6.12.118+deb12-amd64"} {
		release := strings.TrimPrefix(pkg, "linux-image-")
		k := Kernel{Package: pkg, Release: release, Root: filepath.Join(cache, pkg)}
		for _, f := range []string{k.Vmlinuz(), filepath.Join(k.ModulesDir(), "modules.dep")} {
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// An interrupted download is not a kernel.
	if err := os.MkdirAll(filepath.Join(cache, "linux-image-6.1.0-200-amd64", "lib", "modules", "6.1.0-200-amd64"), 0o755); err != nil {
		t.Fatal(err)
	}
	if k, ok := cachedKernel(cache, seriesByName["6.1"].prefix); !ok || k.Release != "6.1.0-100-amd64" {
		t.Errorf("6.1 from the cache: %+v %v", k, ok)
	}
	if k, ok := cachedKernel(cache, seriesByName["6.12"].prefix); !ok || k.Release != "6.12.118+deb12-amd64" {
		t.Errorf("6.12 from the cache: %+v %v", k, ok)
	}
	if _, err := Fetch("5.10", cache, func(string) {}); err == nil || !strings.Contains(err.Error(), "6.1, 6.12") {
		t.Errorf("unknown series: %v", err)
	}
}

func TestQemuArgs(t *testing.T) {
	k := Kernel{Release: "6.1.0-57-amd64", Root: "/cache/k"}
	args := strings.Join(qemuArgs(Config{Kernel: k, MemMiB: 2048, CPUs: 2, Accel: "tcg"}, "/j/initrd", "/j", "/j/console.log",
		[]string{"/j/stdout.sock", "/j/stderr.sock"}), " ")
	for _, want := range []string{
		"-accel tcg,thread=multi -cpu max", "-m 2048 -smp 2", "-no-reboot",
		"-kernel /cache/k/boot/vmlinuz-6.1.0-57-amd64 -initrd /j/initrd",
		"local,id=root,path=/,", "mount_tag=root", "local,id=job,path=/j,", "mount_tag=job",
		// ttyS0, ttyS1, ttyS2 in this order: the console, the command's stdout and stderr.
		"-serial chardev:console -chardev socket,id=out0,path=/j/stdout.sock -serial chardev:out0 -chardev socket,id=out1,path=/j/stderr.sock -serial chardev:out1",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("qemu args lack %q:\n%s", want, args)
		}
	}
	if args := strings.Join(qemuArgs(Config{Kernel: k, Accel: "kvm"}, "", "", "", nil), " "); !strings.Contains(args, "-accel kvm -cpu host") {
		t.Errorf("KVM: %s", args)
	}
}

// bootKernel fetches a kernel series for a test that boots a VM; without qemu it skips,
// or fails where lab tests are required.
func bootKernel(t *testing.T, series string) Kernel {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		if lab.Required() {
			t.Fatalf("%s=required but qemu-system-x86_64 is not installed", lab.E2EEnv)
		}
		t.Skip("qemu-system-x86_64 is not installed")
	}
	k, err := Fetch(series, DefaultCacheDir(), func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var guestInit struct {
	once sync.Once
	dir  string // removed by TestMain
	path string
	err  error
}

// TestMain answers Accel's probe, which runs this binary again, and removes the init
// that staticInit built.
func TestMain(m *testing.M) {
	if IsKVMProbe() {
		KVMProbe()
	}
	code := m.Run()
	if guestInit.dir != "" {
		os.RemoveAll(guestInit.dir)
	}
	os.Exit(code)
}

// staticInit builds vmtest, whose main runs Init as PID 1, as the static binary an
// initramfs needs; a test binary links dynamically wherever cgo is on.
func staticInit(t *testing.T) string {
	t.Helper()
	guestInit.once.Do(func() {
		dir, err := os.MkdirTemp("", "vmtest-init-")
		if err != nil {
			guestInit.err = err
			return
		}
		guestInit.dir, guestInit.path = dir, filepath.Join(dir, "vmtest")
		build := exec.Command("go", "build", "-o", guestInit.path, "github.com/mrouterd/mrouterd/test/cmd/vmtest")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			guestInit.err = fmt.Errorf("build vmtest: %v: %s", err, out)
		}
	})
	if guestInit.err != nil {
		t.Fatal(guestInit.err)
	}
	return guestInit.path
}

func TestCheckStaticRefusesDynamicInit(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	dynamic := slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
	f.Close()
	if err := checkStatic(self); (err != nil) != dynamic {
		t.Errorf("checkStatic(this test binary, dynamic %v) = %v", dynamic, err)
	}
	if err := checkStatic("/dev/null"); err == nil {
		t.Error("checkStatic accepted a file that is not ELF")
	}
}

func runInVM(t *testing.T, k Kernel, timeout time.Duration, args ...string) (rc int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	rc, err := Run(context.Background(), Config{Kernel: k, Init: staticInit(t), MemMiB: 512, CPUs: 1, Accel: Accel(), Timeout: timeout,
		Args: args, Dir: t.TempDir(), Env: os.Environ(), Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	return rc, out.String(), errOut.String()
}

// TestVMRunsCommand: the command runs as root on the guest's own kernel, which routes
// multicast, and its output and exit status come back apart.
func TestVMRunsCommand(t *testing.T) {
	k := bootKernel(t, "6.12")
	rc, stdout, stderr := runInVM(t, k, time.Minute, "sh", "-c", "uname -r; id -u; cat /proc/net/ip_mr_vif; echo oops >&2; exit 3")
	if rc != 3 {
		t.Errorf("exit status %d, want 3", rc)
	}
	lines := strings.Split(stdout, "\n")
	if len(lines) < 3 || lines[0] != k.Release || lines[1] != "0" || !strings.HasPrefix(lines[2], "Interface      BytesIn") {
		t.Errorf("stdout %q: want the release, uid 0 and the VIF table's header", stdout)
	}
	if stderr != "oops\n" {
		t.Errorf("stderr %q", stderr)
	}
}

// TestVMTimeout: a command still running at the timeout is killed, with exit status 124
// and a message that says so.
func TestVMTimeout(t *testing.T) {
	k := bootKernel(t, "6.1")
	rc, _, stderr := runInVM(t, k, 2*time.Second, "sleep", "600")
	if rc != ExitTimeout || !strings.Contains(stderr, "still running after --timeout 2s: killed") {
		t.Errorf("exit status %d, stderr %q", rc, stderr)
	}
}
