package install

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/mrouterd/mrouterd/test/lab"
	"golang.org/x/sys/unix"
)

// overlaid are the directories dpkg, the package's scripts, groupadd and mandb
// write to.
var overlaid = []string{"/etc", "/usr", "/var"}

// privateRoot moves the test's goroutine, for good, onto an OS thread in a mount
// namespace of its own, where each of overlaid is an overlay on a tmpfs and /run is
// an empty tmpfs (so no systemd runs there). Files the test opens and commands it
// starts see that namespace; what they write lands in the tmpfs and goes with the
// thread, which ends with the goroutine: the host's files never change. The test's
// own goroutine goes there, as no other could follow it later: setns(2) into a
// mount namespace refuses a thread that shares its filesystem context, as Go's
// threads do.
func privateRoot(t *testing.T) {
	t.Helper()
	runtime.LockOSThread() // never unlocked: the thread dies with the namespace
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		lab.Require(t, fmt.Errorf("no mount namespace of its own: %v", err))
	}
	// Nothing mounted from here on reaches the host's namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("mount --make-rprivate /: %v", err)
	}
	scratch := t.TempDir()
	mount(t, "tmpfs", scratch, "tmpfs", "mode=0700")
	for _, dir := range overlaid {
		upper, work := filepath.Join(scratch, dir, "upper"), filepath.Join(scratch, dir, "work")
		for _, d := range []string{upper, work} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		// The overlay's root takes the upper directory's owner and mode: those of
		// the directory it covers, so that users such as man, which runs mandb,
		// still get in.
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(upper, int(st.Uid), int(st.Gid)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(upper, os.FileMode(st.Mode&0o7777)); err != nil {
			t.Fatal(err)
		}
		mount(t, "overlay", dir, "overlay", fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", dir, upper, work))
	}
	mount(t, "tmpfs", "/run", "tmpfs", "mode=0755")
}

// mount mounts, and unmounts when the test ends: scratch must be free of its tmpfs
// before t.TempDir's cleanup removes it.
func mount(t *testing.T, source, target, fstype, data string) {
	t.Helper()
	if err := unix.Mount(source, target, fstype, 0, data); err != nil {
		lab.Require(t, fmt.Errorf("mount %s on %s: %v", fstype, target, err))
	}
	t.Cleanup(func() {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			t.Errorf("umount %s: %v", target, err)
		}
	})
}
