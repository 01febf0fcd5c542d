// Command vmtest boots one of Debian's kernels under qemu and runs a command in it as
// root, in the current directory, with the host's userland and environment:
//
//	vmtest [--kernel 6.1|6.12] [--mem MiB] [--cpus N] [--timeout DURATION]
//	       [--accel auto|kvm|tcg] [--console] -- CMD [ARG...]
//
// It prints the command's stdout and stderr and exits with its status; 124 when the
// command ran past --timeout, 125 when the VM itself failed. The guest gets a fresh
// /dev, /proc, /sys, /tmp and /run, so the command and its files must live elsewhere
// (for go test -exec, set GOTMPDIR outside /tmp). Kernels are fetched with apt and
// kept in $VMTEST_CACHE (default ~/.cache/mrouterd/vmtest). The command finds
// VMTEST_ACCEL (kvm or tcg) in its environment, to know how slow its machine is.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/mrouterd/mrouterd/test/vm"
)

func main() {
	if vm.IsGuest() {
		vm.Init()
	}
	if vm.IsKVMProbe() {
		vm.KVMProbe()
	}
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("vmtest", flag.ContinueOnError)
	kernel := fs.String("kernel", "6.1", "kernel series: "+strings.Join(vm.SeriesNames(), " or "))
	mem := fs.Int("mem", 3072, "guest memory in MiB")
	cpus := fs.Int("cpus", runtime.NumCPU(), "guest CPUs")
	timeout := fs.Duration("timeout", 0, "kill the command after this long (0: never)")
	accel := fs.String("accel", "auto", "auto (KVM when a probe shows it works, else TCG), kvm or tcg")
	console := fs.Bool("console", false, "copy the guest kernel's console to stderr")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: vmtest [flags] -- CMD [ARG...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	logf := func(s string) { fmt.Fprintln(os.Stderr, "vmtest: "+s) }
	k, err := vm.Fetch(*kernel, vm.DefaultCacheDir(), logf)
	if err != nil {
		logf(err.Error())
		return vm.ExitVMError
	}
	dir, err := os.Getwd()
	if err != nil {
		logf(err.Error())
		return vm.ExitVMError
	}
	if *accel == "auto" {
		*accel = vm.Accel()
	}
	cfg := vm.Config{
		Kernel: k, MemMiB: *mem, CPUs: *cpus, Timeout: *timeout, Accel: *accel,
		Args: fs.Args(), Dir: dir, Env: os.Environ(), Stdout: os.Stdout, Stderr: os.Stderr,
	}
	if *console {
		cfg.Console = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	rc, err := vm.Run(ctx, cfg)
	if err != nil {
		logf(fmt.Sprintf("Linux %s (%s): %v", k.Release, *accel, err))
		return rc
	}
	if rc != 0 {
		logf(fmt.Sprintf("Linux %s (%s): %s: exit status %d after %s", k.Release, *accel, fs.Arg(0), rc, time.Since(start).Round(time.Second)))
	}
	return rc
}
