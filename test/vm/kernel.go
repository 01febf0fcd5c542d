package vm

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// series is a kernel series the VM boots: the Debian bookworm meta-package that
// tracks its newest build, and the prefix of the packages it installs.
type series struct{ meta, prefix string }

var seriesByName = map[string]series{
	"6.1":  {meta: "linux-image-amd64", prefix: "linux-image-6.1.0-"},
	"6.12": {meta: "linux-image-6.12-amd64", prefix: "linux-image-6.12."},
}

// SeriesNames lists the kernel series in order, for usage text.
func SeriesNames() []string {
	names := make([]string, 0, len(seriesByName))
	for name := range seriesByName {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Kernel is one unpacked Debian kernel package.
type Kernel struct {
	Package string // e.g. linux-image-6.1.0-57-amd64
	Release string // uname -r, e.g. 6.1.0-57-amd64
	Root    string // where the package is unpacked: boot/ and lib/modules/RELEASE/
}

// Vmlinuz is the kernel image.
func (k Kernel) Vmlinuz() string { return filepath.Join(k.Root, "boot", "vmlinuz-"+k.Release) }

// ModulesDir holds the kernel's modules and the modules.dep that depmod made for them.
func (k Kernel) ModulesDir() string { return filepath.Join(k.Root, "lib", "modules", k.Release) }

// DefaultCacheDir is where kernels are kept between runs: $VMTEST_CACHE, or
// mrouterd/vmtest in the user's cache directory.
func DefaultCacheDir() string {
	if dir := os.Getenv("VMTEST_CACHE"); dir != "" {
		return dir
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = "/var/cache"
	}
	return filepath.Join(dir, "mrouterd", "vmtest")
}

// Fetch returns the newest Debian kernel of series, downloading and unpacking it
// into cacheDir unless it is there already. It uses apt (apt-cache, apt-get download),
// dpkg-deb and depmod; when apt's lists are missing it updates them once, and when
// apt cannot answer at all it falls back to the newest kernel of the series in the
// cache.
func Fetch(name, cacheDir string, log func(string)) (Kernel, error) {
	s, ok := seriesByName[name]
	if !ok {
		return Kernel{}, fmt.Errorf("unknown kernel series %q (have %s)", name, strings.Join(SeriesNames(), ", "))
	}
	meta := s.meta
	pkg, err := resolvePackage(meta)
	if err != nil {
		log("apt does not know " + meta + "; running apt-get update")
		if out, uerr := exec.Command("apt-get", "update", "-q").CombinedOutput(); uerr != nil {
			err = fmt.Errorf("%v; apt-get update: %v: %s", err, uerr, lastLine(out))
		} else {
			pkg, err = resolvePackage(meta)
		}
	}
	if err != nil {
		if k, ok := cachedKernel(cacheDir, s.prefix); ok {
			log("using the cached " + k.Package + ": " + err.Error())
			return k, nil
		}
		return Kernel{}, err
	}
	root := filepath.Join(cacheDir, pkg)
	if k, err := unpackedKernel(pkg, root); err == nil {
		return k, nil
	}
	log("fetching " + pkg + " into " + cacheDir)
	if err := download(pkg, root); err != nil {
		return Kernel{}, err
	}
	return unpackedKernel(pkg, root)
}

// resolvePackage names the kernel package that a meta-package depends on.
func resolvePackage(meta string) (string, error) {
	out, err := exec.Command("apt-cache", "depends", "--important", meta).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends %s: %v", meta, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		dep, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Depends: ")
		if ok && strings.HasPrefix(dep, "linux-image-") {
			return dep, nil
		}
	}
	return "", fmt.Errorf("apt-cache depends %s names no linux-image package", meta)
}

// download fetches pkg with apt and unpacks it into root, with a modules.dep made by
// depmod. It works in a scratch directory beside root and renames it into place last,
// so an interrupted download leaves nothing that looks complete.
func download(pkg, root string) error {
	parent := filepath.Dir(root)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(parent, ".fetch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// APT::Sandbox::User=root: the _apt user cannot write into a cache under /root.
	get := exec.Command("apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", pkg)
	get.Dir = work
	if out, err := get.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download %s: %v: %s", pkg, err, lastLine(out))
	}
	debs, _ := filepath.Glob(filepath.Join(work, "*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s left %d packages", pkg, len(debs))
	}
	tree := filepath.Join(work, "tree")
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], tree).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %v: %s", debs[0], err, lastLine(out))
	}
	release, err := onlyRelease(tree)
	if err != nil {
		return err
	}
	if out, err := exec.Command("depmod", "-b", tree, release).CombinedOutput(); err != nil {
		return fmt.Errorf("depmod %s: %v: %s", release, err, lastLine(out))
	}
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	return os.Rename(tree, root)
}

// unpackedKernel checks that root holds a complete unpacked kernel.
func unpackedKernel(pkg, root string) (Kernel, error) {
	release, err := onlyRelease(root)
	if err != nil {
		return Kernel{}, err
	}
	k := Kernel{Package: pkg, Release: release, Root: root}
	for _, f := range []string{k.Vmlinuz(), filepath.Join(k.ModulesDir(), "modules.dep")} {
		if _, err := os.Stat(f); err != nil {
			return Kernel{}, err
		}
	}
	return k, nil
}

// onlyRelease is the one kernel release under root's lib/modules.
func onlyRelease(root string) (string, error) {
	entries, err := os.ReadDir(filepath.Join(root, "lib", "modules"))
	if err != nil {
		return "", err
	}
	if len(entries) != 1 {
		return "", fmt.Errorf("%s: %d kernel releases under lib/modules, want 1", root, len(entries))
	}
	return entries[0].Name(), nil
}

// cachedKernel is the newest complete kernel in the cache whose package name starts
// with prefix, for when apt cannot be asked.
func cachedKernel(cacheDir, prefix string) (Kernel, bool) {
	entries, _ := os.ReadDir(cacheDir)
	var best Kernel
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if k, err := unpackedKernel(e.Name(), filepath.Join(cacheDir, e.Name())); err == nil && newerRelease(k.Release, best.Release) {
			best = k
		}
	}
	return best, best.Root != ""
}

// newerRelease compares kernel releases by their numbers, so that 6.1.0-100 is newer
// than 6.1.0-57.
func newerRelease(a, b string) bool {
	if b == "" {
		return true
	}
	num := func(s string) []int {
		var ns []int
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
			n := 0
			fmt.Sscan(f, &n)
			ns = append(ns, n)
		}
		return ns
	}
	return slices.Compare(num(a), num(b)) > 0
}

func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}
