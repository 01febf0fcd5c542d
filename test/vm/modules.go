package vm

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// BootModules are what the guest needs to mount its root: virtio PCI and 9p over it.
// Debian's 6.1 builds them as modules, its 6.12 some of them in.
var BootModules = []string{"virtio_pci", "9pnet_virtio", "9p"}

// LabModules are the modules the lab topologies use.
var LabModules = []string{"veth", "bridge", "vxlan", "8021q", "dummy", "ip_gre"}

// moduleIndex is a kernel's modules.dep and modules.builtin: module name to file
// (relative to the modules directory) and dependencies.
type moduleIndex struct {
	files   map[string]string
	deps    map[string][]string
	builtin map[string]bool
}

// moduleName is the name the kernel knows a module file by: no directory, no .ko
// suffix or compression, dashes as underscores.
func moduleName(path string) string {
	base := filepath.Base(path)
	base, _, _ = strings.Cut(base, ".ko")
	return strings.ReplaceAll(base, "-", "_")
}

func readModuleIndex(dir string) (*moduleIndex, error) {
	idx := &moduleIndex{files: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
	err := eachLine(filepath.Join(dir, "modules.dep"), func(line string) {
		file, deps, ok := strings.Cut(line, ":")
		if !ok {
			return
		}
		name := moduleName(file)
		idx.files[name] = file
		for _, d := range strings.Fields(deps) {
			idx.deps[name] = append(idx.deps[name], moduleName(d))
		}
	})
	if err != nil {
		return nil, err
	}
	err = eachLine(filepath.Join(dir, "modules.builtin"), func(line string) { idx.builtin[moduleName(line)] = true })
	return idx, err
}

func eachLine(path string, fn func(string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			fn(line)
		}
	}
	return sc.Err()
}

// loadOrder lists the module files (relative to the modules directory) that loading
// names needs, every module after the ones it depends on. Built-in modules need no
// file.
func (idx *moduleIndex) loadOrder(names []string) ([]string, error) {
	var order []string
	seen := map[string]bool{}
	var visit func(name string) error
	visit = func(name string) error {
		name = moduleName(name)
		if seen[name] || idx.builtin[name] {
			return nil
		}
		seen[name] = true
		file, ok := idx.files[name]
		if !ok {
			return fmt.Errorf("module %s: neither in modules.dep nor built in", name)
		}
		for _, d := range idx.deps[name] {
			if err := visit(d); err != nil {
				return err
			}
		}
		order = append(order, file)
		return nil
	}
	for _, name := range names {
		if err := visit(name); err != nil {
			return nil, err
		}
	}
	return order, nil
}
