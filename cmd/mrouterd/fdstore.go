package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/router"
)

// systemd's file descriptor store keeps descriptors a service hands it
// (FDSTORE=1) across the service's restarts, and hands them back to the next start
// (LISTEN_FDS). mrouterd stores the socket of its multicast routing table, which
// keeps the kernel's table, and forwarding, alive while it is open, and a memfd with
// the table's VIFs, which the kernel cannot list. A stop and start, a crash, or a
// kill -9 and systemd's restart then lose no packet: the next start adopts the
// table as a restart in place does. systemd 254 says the store is there in
// $FDSTORE; FileDescriptorStorePreserve= keeps it across a systemctl restart.
//
// While the store holds the table, a stop leaves the table forwarding: when systemd
// drops the store (the unit is stopped for good), the kernel removes the table.

// The names of the stored descriptors (FDNAME).
const (
	storedTable   = "mrt"
	storedHandoff = "handoff"
)

// fdStore is the service's file descriptor store.
type fdStore struct {
	sd      *notifier
	handoff *os.File // the memfd the table's Handoff is kept in
	stored  bool     // the store holds the table and the memfd
	log     *slog.Logger
}

// openFDStore returns the store when systemd offers one, nil when it does not, and
// the table it handed back, if it did.
func openFDStore(sd *notifier, log *slog.Logger) (*fdStore, *router.Handoff, error) {
	if n, err := strconv.Atoi(os.Getenv("FDSTORE")); err != nil || n < 2 || sd.addr == nil {
		return nil, nil, nil
	}
	s := &fdStore{sd: sd, log: log}
	fds := listenFDs()
	if fd, ok := fds[storedHandoff]; ok {
		s.handoff = os.NewFile(uintptr(fd), storedHandoff)
	}
	mrt, haveTable := fds[storedTable]
	if haveTable && s.handoff != nil {
		h, err := readHandoff(s.handoff)
		if err != nil {
			return nil, nil, fmt.Errorf("the table handed back by the file descriptor store: %w", err)
		}
		h.MRT, s.stored = mrt, true
		return s, h, nil
	}
	if haveTable {
		unix.Close(mrt) // a table without its VIFs cannot be adopted
	}
	if s.handoff == nil {
		fd, err := unix.MemfdCreate(storedHandoff, unix.MFD_CLOEXEC)
		if err != nil {
			return nil, nil, fmt.Errorf("file descriptor store: %w", err)
		}
		s.handoff = os.NewFile(uintptr(fd), storedHandoff)
	}
	return s, nil, nil
}

// listenFDs takes the descriptors systemd passed this process (sd_listen_fds), by
// name, and clears the variables that passed them.
func listenFDs() map[string]int {
	defer func() {
		for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
			os.Unsetenv(v)
		}
	}()
	if pid, err := strconv.Atoi(os.Getenv("LISTEN_PID")); err != nil || pid != os.Getpid() {
		return nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	out := make(map[string]int, n)
	for i := range n {
		fd := 3 + i // SD_LISTEN_FDS_START
		unix.CloseOnExec(fd)
		if i < len(names) {
			if _, dup := out[names[i]]; !dup {
				out[names[i]] = fd
				continue
			}
		}
		unix.Close(fd)
	}
	return out
}

// readHandoff reads a Handoff from the start of f.
func readHandoff(f *os.File) (*router.Handoff, error) {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	if err != nil {
		return nil, err
	}
	var h router.Handoff
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// update keeps the table's Handoff in the memfd current: the store hands the
// memfd itself back, as it is when the next start comes. It runs on the router's
// loop.
func (s *fdStore) update(h *router.Handoff) {
	b, _ := json.Marshal(h) // plain fields: cannot fail
	err := s.handoff.Truncate(0)
	if err == nil {
		_, err = s.handoff.WriteAt(b, 0)
	}
	if err != nil {
		s.log.Warn("file descriptor store: the table's VIFs", "err", err)
	}
}

// keep hands the store the table's socket and the memfd, once.
func (s *fdStore) keep(r *router.Router) {
	if s.stored {
		return
	}
	err := r.ShareTable(func(fd int) error {
		return s.sd.sendFDs("FDSTORE=1\nFDNAME="+storedTable, fd)
	})
	if err == nil {
		err = s.sd.sendFDs("FDSTORE=1\nFDNAME="+storedHandoff, int(s.handoff.Fd()))
	}
	if err != nil {
		s.log.Warn("file descriptor store: the table is not kept across restarts", "err", err)
		return
	}
	s.stored = true
	s.log.Info("file descriptor store: the table is kept across restarts")
}

// holds says whether the store holds the table.
func (s *fdStore) holds() bool { return s != nil && s.stored }

// forget takes the table out of the store, before a restart in place whose next
// program stores it anew.
func (s *fdStore) forget() {
	if !s.holds() {
		return
	}
	for _, name := range []string{storedTable, storedHandoff} {
		s.sd.notify("FDSTOREREMOVE=1\nFDNAME=" + name)
	}
	s.stored = false
}

// sendFDs sends a notification with descriptors attached (SCM_RIGHTS).
func (n *notifier) sendFDs(state string, fds ...int) error {
	if n.addr == nil {
		return errors.New("no $NOTIFY_SOCKET")
	}
	// net refuses ancillary data on a connected datagram socket: an unconnected one.
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	return unix.Sendmsg(s, []byte(state), unix.UnixRights(fds...), &unix.SockaddrUnix{Name: n.addr.Name}, 0)
}
