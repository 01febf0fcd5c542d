package benchlab

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/mrouterd/mrouterd/test/lab"
)

// stopTimeout is how long a background command gets to end after each signal.
const stopTimeout = 5 * time.Second

// Background is a command running in a lab node.
type Background struct {
	what string // the command and its node, for messages
	cmd  *exec.Cmd
	out  bytes.Buffer // read only once done is closed
	done chan struct{}
}

// StartBackground starts args in node's namespace, its output kept for Output.
func StartBackground(l *lab.Lab, node string, args ...string) (*Background, error) {
	b := &Background{what: strings.Join(args[:min(2, len(args))], " ") + " on " + node, cmd: l.Command(node, args...), done: make(chan struct{})}
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.out
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %v", node, err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.done)
	}()
	return b, nil
}

// ExitNote says how the command ended, if it has: a failed sender or receiver
// explains why nothing was forwarded.
func (b *Background) ExitNote() string {
	select {
	case <-b.done:
		return fmt.Sprintf("; %s exited (%v): %s", b.what, b.cmd.ProcessState, strings.TrimSpace(b.out.String()))
	default:
		return ""
	}
}

// Stop ends the command (ip netns exec runs it in place, so it gets the signal):
// SIGTERM, then SIGKILL if it lingers. Calling it again does nothing.
func (b *Background) Stop() {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		_ = b.cmd.Process.Signal(sig) // it may have exited already
		select {
		case <-b.done:
			return
		case <-time.After(stopTimeout):
		}
	}
}

// Output stops the command and returns what it printed; nothing if it would not end.
func (b *Background) Output() []byte {
	b.Stop()
	select {
	case <-b.done:
		return b.out.Bytes()
	default:
		return nil
	}
}
