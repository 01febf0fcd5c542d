package vm

import (
	"bufio"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/cavaliergopher/cpio"
)

// Inside the initramfs: the modules that mount the root, and the order to load them in.
const (
	initrdModules   = "/modules"
	initrdLoadOrder = "/modules/order"
	initrdJobDir    = "/job"
)

// writeInitrd writes an initramfs (an uncompressed newc cpio) holding init, as /init,
// and the files of modules, which are relative to the kernel's modules directory.
func writeInitrd(dst, init string, k Kernel, modules []string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	w := cpio.NewWriter(bw)
	dirs := []string{"/dev", "/proc", "/sys", "/newroot", initrdJobDir, initrdModules}
	for _, d := range dirs {
		if err := w.WriteHeader(&cpio.Header{Name: strings.TrimPrefix(d, "/"), Mode: cpio.TypeDir | 0o755}); err != nil {
			return err
		}
	}
	if err := addFile(w, "init", init, 0o755); err != nil {
		return err
	}
	var order []string
	for _, m := range modules {
		name := path.Join(initrdModules, path.Base(m))
		if err := addFile(w, strings.TrimPrefix(name, "/"), filepath.Join(k.ModulesDir(), m), 0o644); err != nil {
			return err
		}
		order = append(order, name)
	}
	list := strings.Join(order, "\n") + "\n"
	if err := w.WriteHeader(&cpio.Header{Name: strings.TrimPrefix(initrdLoadOrder, "/"), Mode: cpio.TypeReg | 0o644, Size: int64(len(list))}); err != nil {
		return err
	}
	if _, err := io.WriteString(w, list); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func addFile(w *cpio.Writer, name, src string, mode cpio.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := w.WriteHeader(&cpio.Header{Name: name, Mode: cpio.TypeReg | mode, Size: int64(len(data))}); err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}
