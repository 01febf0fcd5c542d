package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// KVM ioctls and the exit reason the probe expects (linux/kvm.h).
const (
	kvmCreateVM            = 0xae01
	kvmGetVCPUMmapSize     = 0xae04
	kvmCreateVCPU          = 0xae41
	kvmSetUserMemoryRegion = 0x4020ae46
	kvmRun                 = 0xae80
	kvmExitHLT             = 5
)

const kvmProbeEnv = "VMTEST_KVM_PROBE"

// kvmProbeTimeout bounds the probe: a working KVM answers in milliseconds, a nested
// one that hangs never does.
const kvmProbeTimeout = 3 * time.Second

// Accel is "kvm" when /dev/kvm runs a guest to its first instruction and back, and
// "tcg" otherwise. The probe runs in a child process, so that a KVM_RUN that never
// returns costs kvmProbeTimeout and nothing more.
func Accel() string {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return "tcg"
	}
	self, err := os.Executable()
	if err != nil {
		return "tcg"
	}
	ctx, cancel := context.WithTimeout(context.Background(), kvmProbeTimeout)
	defer cancel()
	probe := exec.CommandContext(ctx, self)
	probe.Env = append(os.Environ(), kvmProbeEnv+"=1")
	probe.WaitDelay = time.Second
	if probe.Run() != nil {
		return "tcg"
	}
	return "kvm"
}

// IsKVMProbe reports whether this process is Accel's probe.
func IsKVMProbe() bool { return os.Getenv(kvmProbeEnv) == "1" }

// KVMProbe runs a one-instruction guest (HLT at the reset vector) and exits 0 when
// KVM hands the HLT back.
func KVMProbe() {
	if err := runHLT(); err != nil {
		fmt.Fprintln(os.Stderr, "kvm probe:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runHLT() error {
	kvm, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	vmfd, err := ioctl(kvm, kvmCreateVM, 0)
	if err != nil {
		return fmt.Errorf("create VM: %w", err)
	}
	// One page at the top of the 32-bit space, where a reset CPU fetches its first
	// instruction (0xfffffff0).
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	mem[0xff0] = 0xf4 // HLT
	region := struct {
		slot, flags             uint32
		guestPhys, size, uspace uint64
	}{guestPhys: 0xfffff000, size: 4096, uspace: uint64(uintptr(unsafe.Pointer(&mem[0])))}
	if _, err := ioctl(vmfd, kvmSetUserMemoryRegion, uintptr(unsafe.Pointer(&region))); err != nil {
		return fmt.Errorf("set memory: %w", err)
	}
	vcpu, err := ioctl(vmfd, kvmCreateVCPU, 0)
	if err != nil {
		return fmt.Errorf("create vCPU: %w", err)
	}
	size, err := ioctl(kvm, kvmGetVCPUMmapSize, 0)
	if err != nil {
		return err
	}
	run, err := unix.Mmap(vcpu, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	if _, err := ioctl(vcpu, kvmRun, 0); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if reason := *(*uint32)(unsafe.Pointer(&run[8])); reason != kvmExitHLT {
		return fmt.Errorf("exit reason %d, want HLT", reason)
	}
	return nil
}

func ioctl(fd int, req, arg uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
