package vm

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config is one run of a command in a VM.
type Config struct {
	Kernel  Kernel
	MemMiB  int
	CPUs    int
	Timeout time.Duration // 0: none
	Accel   string        // "kvm" or "tcg"
	Args    []string
	Dir     string
	Env     []string
	Stdout  io.Writer
	Stderr  io.Writer
	// Init is the guest's init: a static binary that calls Init when it runs as PID 1.
	// Empty: this program.
	Init string
	// Console, when set, gets the guest kernel's console as it boots and runs.
	Console io.Writer
}

// bootAllowance is how long the guest may take, beyond the command's timeout, to
// boot and to power off before the host kills it. TCG boots Debian's kernels in
// about 7 s on two cores.
const bootAllowance = 2 * time.Minute

// Run runs cfg's command in a VM and returns its exit status. An error means the VM
// itself failed: the console's last lines are in it.
func Run(ctx context.Context, cfg Config) (int, error) {
	dir, err := os.MkdirTemp("", "vmtest-")
	if err != nil {
		return ExitVMError, err
	}
	defer os.RemoveAll(dir)
	idx, err := readModuleIndex(cfg.Kernel.ModulesDir())
	if err != nil {
		return ExitVMError, err
	}
	boot, err := idx.loadOrder(BootModules)
	if err != nil {
		return ExitVMError, err
	}
	lab, err := idx.loadOrder(LabModules)
	if err != nil {
		return ExitVMError, err
	}
	for i, m := range lab {
		lab[i] = filepath.Join(cfg.Kernel.ModulesDir(), m)
	}
	if err := writeJob(dir, job{Args: cfg.Args, Env: append(slices.Clip(cfg.Env), "VMTEST_ACCEL="+cfg.Accel), Dir: cfg.Dir, Timeout: cfg.Timeout, KernelRoot: cfg.Kernel.Root, Modules: lab, Keep: keptDirs(cfg.Dir, cfg.Args)}); err != nil {
		return ExitVMError, err
	}
	init := cfg.Init
	if init == "" {
		if init, err = os.Executable(); err != nil {
			return ExitVMError, err
		}
	}
	if err := checkStatic(init); err != nil {
		return ExitVMError, err
	}
	initrd := filepath.Join(dir, "initrd")
	if err := writeInitrd(initrd, init, cfg.Kernel, boot); err != nil {
		return ExitVMError, fmt.Errorf("initramfs: %w", err)
	}

	// The command's output comes over two serial ports that qemu connects to these
	// sockets as it starts, before the guest can write anything.
	var outputs sync.WaitGroup
	var sockets []string
	var listeners []net.Listener
	for _, o := range []struct {
		name string
		w    io.Writer
	}{{"stdout", cfg.Stdout}, {"stderr", cfg.Stderr}} {
		path := filepath.Join(dir, o.name+".sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			return ExitVMError, err
		}
		defer ln.Close()
		sockets, listeners = append(sockets, path), append(listeners, ln)
		outputs.Go(func() {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = io.Copy(o.w, conn)
		})
	}

	consoleLog := filepath.Join(dir, "console.log")
	args := qemuArgs(cfg, initrd, dir, consoleLog, sockets)
	limit := time.Duration(0)
	if cfg.Timeout > 0 {
		limit = cfg.Timeout + bootAllowance
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	qemu := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	var qemuErr strings.Builder
	qemu.Stderr = &qemuErr
	stopConsole := followConsole(consoleLog, cfg.Console)
	err = qemu.Run()
	stopConsole()
	if err != nil && ctx.Err() == nil {
		return ExitVMError, fmt.Errorf("qemu: %v: %s", err, strings.TrimSpace(qemuErr.String()))
	}
	// qemu has exited; whatever did not connect never will, and closing its listener
	// ends the wait for it. An accepted connection copies on to its end.
	for _, ln := range listeners {
		ln.Close()
	}
	outputs.Wait()
	// The guest's report: the exit status, then why the VM could not run the command.
	data, rerr := os.ReadFile(filepath.Join(dir, rcFile))
	status, why, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	rc, perr := strconv.Atoi(status)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return ExitTimeout, fmt.Errorf("the VM did not finish within --timeout %s and %s to boot: killed%s", cfg.Timeout, bootAllowance, consoleTail(consoleLog))
	case ctx.Err() != nil:
		return ExitVMError, ctx.Err()
	case rerr != nil || perr != nil:
		return ExitVMError, fmt.Errorf("the VM stopped without the command's exit status%s", consoleTail(consoleLog))
	case why != "":
		return rc, fmt.Errorf("the VM could not run the command: %s", why)
	}
	return rc, nil
}

func qemuArgs(cfg Config, initrd, jobDir, consoleLog string, sockets []string) []string {
	accel := []string{"-accel", "tcg,thread=multi", "-cpu", "max"}
	if cfg.Accel == "kvm" {
		accel = []string{"-accel", "kvm", "-cpu", "host"}
	}
	// quiet keeps the console short; panic=-1 turns a guest panic into a reboot, which
	// -no-reboot turns into qemu's exit.
	cmdline := "console=ttyS0 quiet panic=-1 rdinit=/init"
	args := append(accel,
		"-m", strconv.Itoa(cfg.MemMiB), "-smp", strconv.Itoa(cfg.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", cfg.Kernel.Vmlinuz(), "-initrd", initrd, "-append", cmdline,
		"-fsdev", "local,id=root,path=/,security_model=none,multidevs=remap",
		"-device", "virtio-9p-pci,fsdev=root,mount_tag="+rootTag,
		"-fsdev", "local,id=job,path="+jobDir+",security_model=none",
		"-device", "virtio-9p-pci,fsdev=job,mount_tag="+jobTag,
		"-chardev", "file,id=console,path="+consoleLog, "-serial", "chardev:console",
	)
	for i, s := range sockets {
		id := "out" + strconv.Itoa(i)
		args = append(args, "-chardev", "socket,id="+id+",path="+s, "-serial", "chardev:"+id)
	}
	return args
}

// followConsole copies the console log to w as it grows, until stop is called.
func followConsole(path string, w io.Writer) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var off int64
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if f, err := os.Open(path); err == nil {
				n, _ := io.Copy(w, io.NewSectionReader(f, off, 1<<40))
				off += n
				f.Close()
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// consoleTail is the end of the guest's console, to say why a VM failed.
func consoleTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return " (the console is empty)"
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "; console:\n  " + strings.Join(lines, "\n  ")
}

// checkStatic refuses an init that needs a dynamic loader, which the initramfs does not
// have: the kernel would only say "Failed to execute /init (error -2)".
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("init %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("init %s is dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}
