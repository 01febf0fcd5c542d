package vm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The guest's serial ports: the kernel console, then the command's stdout and stderr.
const (
	guestStdout = "/dev/ttyS1"
	guestStderr = "/dev/ttyS2"
)

// IsGuest reports whether this process is the VM's init.
func IsGuest() bool { return os.Getpid() == 1 }

// Init is the guest's init: it mounts the host's root, runs the job and powers the VM
// off. It never returns. What goes wrong before the job runs is said on the console.
func Init() {
	rc, err := initGuest()
	report := strconv.Itoa(rc) + "\n"
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest init:", err)
		report += err.Error() + "\n"
	}
	// The job directory is where init got to with it: moved into the new root, or not.
	for _, dir := range []string{guestJobDir, "/newroot" + guestJobDir, initrdJobDir} {
		if os.WriteFile(filepath.Join(dir, rcFile), []byte(report), 0o644) == nil {
			break
		}
	}
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	// qemu runs with -no-reboot, so a reboot stops it too.
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	select {}
}

func initGuest() (int, error) {
	for _, m := range []struct{ src, dst, fstype, data string }{
		{"dev", "/dev", "devtmpfs", ""},
		{"proc", "/proc", "proc", ""},
		{"sys", "/sys", "sysfs", ""},
	} {
		if err := unix.Mount(m.src, m.dst, m.fstype, 0, m.data); err != nil {
			return ExitVMError, fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	order, err := os.ReadFile(initrdLoadOrder)
	if err != nil {
		return ExitVMError, err
	}
	if err := loadModules(strings.Fields(string(order))); err != nil {
		return ExitVMError, err
	}
	if err := unix.Mount(jobTag, initrdJobDir, "9p", 0, "trans=virtio,version=9p2000.L,cache=none"); err != nil {
		return ExitVMError, fmt.Errorf("mount the job directory: %w", err)
	}
	j, err := readJob(initrdJobDir)
	if err != nil {
		return ExitVMError, fmt.Errorf("read the job: %w", err)
	}
	if err := mountRoot("/newroot", j); err != nil {
		return ExitVMError, err
	}
	if err := unix.Chroot("/newroot"); err != nil {
		return ExitVMError, fmt.Errorf("chroot: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return ExitVMError, err
	}
	// ip_gre would otherwise put gre0, gretap0 and erspan0 in every new namespace,
	// which a lab node on a host without ip_gre loaded does not have.
	if err := os.WriteFile("/proc/sys/net/core/fb_tunnels_only_for_init_net", []byte("2"), 0o644); err != nil {
		return ExitVMError, err
	}
	if err := loadModules(j.Modules); err != nil {
		return ExitVMError, err
	}
	_ = unix.Sethostname([]byte("vmtest"))
	if err := linkUp("lo"); err != nil {
		return ExitVMError, err
	}
	return runJob(j)
}

// mountRoot mounts the host's root at dir with a fresh /dev, /proc, /sys, /tmp and
// /run, the job directory under /run, the host's directories under /tmp that the
// job keeps.
func mountRoot(dir string, j job) error {
	// cache=loose: the host's files do not change under a test run, and executables
	// and libraries read again from the page cache start several times faster under
	// TCG. It maps files too: without that (cache=none) the Go linker fails on 9p.
	opts := "trans=virtio,version=9p2000.L,cache=loose,msize=262144"
	mounts := []struct {
		src, dst, fstype, data string
		flags                  uintptr
	}{
		{rootTag, "", "9p", opts, 0},
		{"/dev", "/dev", "", "", unix.MS_MOVE},
		{"/proc", "/proc", "", "", unix.MS_MOVE},
		{"/sys", "/sys", "", "", unix.MS_MOVE},
		{"devpts", "/dev/pts", "devpts", "newinstance,ptmxmode=0666", 0},
		{"shm", "/dev/shm", "tmpfs", "mode=1777", 0},
		{"tmp", "/tmp", "tmpfs", "mode=1777", 0},
		{"run", "/run", "tmpfs", "mode=0755", 0},
		{initrdJobDir, guestJobDir, "", "", unix.MS_MOVE},
	}
	var kept []*os.File
	for _, m := range mounts {
		dst := filepath.Join(dir, m.dst)
		if m.dst == "/tmp" {
			// Hold on to the host's directories the job names before the fresh /tmp
			// hides them; they are bound back below.
			for _, k := range j.Keep {
				f, err := os.OpenFile(filepath.Join(dir, k), unix.O_PATH|unix.O_DIRECTORY, 0)
				if err != nil {
					return err
				}
				defer f.Close()
				kept = append(kept, f)
			}
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, dst, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.src, dst, err)
		}
	}
	for i, f := range kept {
		dst := filepath.Join(dir, j.Keep[i])
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(filepath.Join(dir, "proc/self/fd", strconv.Itoa(int(f.Fd()))), dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind the host's %s: %w", j.Keep[i], err)
		}
	}
	// The kernel runs kernel.modprobe with no environment; this one finds the guest
	// kernel's modules in the host's cache, where the host has none of its own.
	modprobe := filepath.Join(guestJobDir, "..", "vmtest-modprobe")
	script := "#!/bin/sh\nexec /sbin/modprobe -d '" + j.KernelRoot + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, modprobe), []byte(script), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "proc/sys/kernel/modprobe"), []byte(modprobe), 0o644); err != nil {
		return fmt.Errorf("set kernel.modprobe: %w", err)
	}
	// bash's process substitution and many scripts use these.
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"} {
		link := filepath.Join(dir, "dev", name)
		_ = os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			return err
		}
	}
	return os.MkdirAll(filepath.Join(dir, "run", "lock"), 0o1777)
}

// loadModules loads module files in order; one that is loaded already is fine.
func loadModules(files []string) error {
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		flags := 0
		if strings.HasSuffix(file, ".xz") || strings.HasSuffix(file, ".zst") {
			flags = unix.MODULE_INIT_COMPRESSED_FILE
		}
		err = unix.FinitModule(int(f.Fd()), "", flags)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("load module %s: %w", file, err)
		}
	}
	return nil
}

func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	req, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, req); err != nil {
		return fmt.Errorf("%s flags: %w", name, err)
	}
	req.SetUint16(req.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, req); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// runJob runs the command with its output on the serial ports and returns its exit
// status. As init it also reaps every orphan, and at the timeout it kills every
// process there is.
func runJob(j job) (int, error) {
	stdout, err := openSerial(guestStdout)
	if err != nil {
		return ExitVMError, err
	}
	defer drain(stdout)
	stderr, err := openSerial(guestStderr)
	if err != nil {
		return ExitVMError, err
	}
	defer drain(stderr)
	// The command is looked up on the job's PATH, so init takes the job's environment.
	os.Clearenv()
	for _, kv := range j.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			os.Setenv(k, v)
		}
	}
	cmd := exec.Command(j.Args[0], j.Args[1:]...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = j.Dir, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "vmtest:", err)
		return 127, nil
	}
	exited := make(chan unix.WaitStatus, 1)
	go func() {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, 0, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil || pid == cmd.Process.Pid {
				exited <- ws
				return
			}
		}
	}()
	var timeout <-chan time.Time
	if j.Timeout > 0 {
		timeout = time.After(j.Timeout)
	}
	select {
	case ws := <-exited:
		switch {
		case ws.Exited():
			return ws.ExitStatus(), nil
		case ws.Signaled():
			return 128 + int(ws.Signal()), nil
		}
		return ExitVMError, fmt.Errorf("command ended with wait status %#x", ws)
	case <-timeout:
		_ = unix.Kill(-1, unix.SIGKILL)
		fmt.Fprintf(stderr, "vmtest: %s still running after --timeout %s: killed\n", strings.Join(j.Args, " "), j.Timeout)
		return ExitTimeout, nil
	}
}

// openSerial opens a serial port in raw mode, so that output passes unchanged ("\n"
// stays "\n").
func openSerial(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag = t.Cflag&^(unix.CSIZE|unix.PARENB|unix.CBAUD) | unix.CS8 | unix.B115200
	if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// drain waits until the port has sent everything, which closing alone does not.
func drain(f *os.File) {
	_ = unix.IoctlSetInt(int(f.Fd()), unix.TCSBRK, 1)
	f.Close()
}
