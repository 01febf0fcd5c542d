package lab

import (
	"errors"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// E2EEnv names the variable that makes lab tests mandatory: with
// MROUTERD_E2E=required a test that cannot run fails instead of skipping.
const E2EEnv = "MROUTERD_E2E"

// Required reports whether lab tests must run rather than skip.
func Required() bool { return os.Getenv(E2EEnv) == "required" }

// RequireRoot skips t when not running as root, or fails it when lab tests are required.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Require(t, errors.New("not running as root"))
	}
}

// Require skips t for want of what err names, or fails it when lab tests are
// required; it does nothing when err is nil.
func Require(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if Required() {
		t.Fatalf("%s=required: %v", E2EEnv, err)
	}
	t.Skip(err)
}

// InNewNetns runs fn on a goroutine locked to an OS thread that has been moved into a
// fresh network namespace. The thread is never unlocked, so it exits with the
// goroutine and the namespace goes away with everything fn created in it.
func InNewNetns(t testing.TB, fn func()) {
	t.Helper()
	RequireRoot(t)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		defer func() { done <- nil }()
		fn()
	}()
	if err := <-done; err != nil {
		t.Fatalf("unshare network namespace: %v", err)
	}
}
