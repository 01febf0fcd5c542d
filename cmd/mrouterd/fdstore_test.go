package main

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/router"
)

// TestFDStore stores a descriptor and the table's VIFs as systemd's store would
// keep them, and hands them back to a start as systemd does.
func TestFDStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("FDSTORE", "2")
	log := slog.New(slog.DiscardHandler)

	store, handedBack, err := openFDStore(newNotifier(), log)
	if err != nil || store == nil || handedBack != nil {
		t.Fatalf("openFDStore = %v, %v, %v; want a store and nothing handed back", store, handedBack, err)
	}
	store.update(&router.Handoff{Table: 7, From: "1.0"})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := store.sd.sendFDs("FDSTORE=1\nFDNAME=mrt", int(w.Fd())); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 512), make([]byte, 512)
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil || string(buf[:n]) != "FDSTORE=1\nFDNAME=mrt" {
		t.Fatalf("notification %q, %v", buf[:n], err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages %v, %v", msgs, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights %v, %v", fds, err)
	}

	// The next start: the descriptors at 3 and 4, as systemd passes them.
	for i, fd := range []int{fds[0], int(store.handoff.Fd())} {
		if err := unix.Dup2(fd, 3+i); err != nil {
			t.Fatal(err)
		}
	}
	unix.Close(fds[0])
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	t.Setenv("LISTEN_FDS", "2")
	t.Setenv("LISTEN_FDNAMES", "mrt:handoff")
	next, h, err := openFDStore(newNotifier(), log)
	if err != nil || h == nil || h.MRT != 3 || h.Table != 7 || h.From != "1.0" || !next.holds() {
		t.Fatalf("handed back %+v, %v; store holds %t", h, err, next.holds())
	}
	if v := os.Getenv("LISTEN_FDS"); v != "" {
		t.Errorf("LISTEN_FDS left in the environment: %q", v)
	}
	if _, err := unix.Write(3, []byte("x")); err != nil {
		t.Errorf("the stored pipe end, handed back: %v", err)
	}
	unix.Close(3)
	next.handoff.Close()
	store.handoff.Close()
}

func TestNoFDStore(t *testing.T) {
	t.Setenv("FDSTORE", "")
	if s, h, err := openFDStore(newNotifier(), slog.New(slog.DiscardHandler)); s != nil || h != nil || err != nil {
		t.Fatalf("without $FDSTORE: %v %v %v", s, h, err)
	}
}
