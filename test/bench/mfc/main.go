// Command mfc measures how fast MFC entries can be installed and removed
// through package mroute, against a bare loop of setsockopt calls on
// pre-encoded structures: the kernel's own limit. It works in a network
// namespace of its own and needs root.
//
//	go run ./test/bench/mfc [-n 10000]
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"text/tabwriter"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/mroute"
)

const (
	rounds = 3
	// maxEntries keeps every group inside 239.0.0.0/8.
	maxEntries = 1 << 24

	// From <linux/mroute.h>; the bare loop must not depend on package mroute.
	mrtAddMFC    = 204
	mrtDelMFC    = 205
	sizeofMfcctl = 60
)

func main() {
	n := flag.Int("n", 10000, "number of (S,G) entries per round")
	flag.Parse()
	if err := run(*n); err != nil {
		fmt.Fprintln(os.Stderr, "mfc:", err)
		os.Exit(1)
	}
}

// timing is the best add and delete durations over the rounds.
type timing struct {
	add, del time.Duration
}

func (t *timing) keepBest(add, del time.Duration) {
	if t.add == 0 || add < t.add {
		t.add = add
	}
	if t.del == 0 || del < t.del {
		t.del = del
	}
}

func run(n int) error {
	if n < 1 || n > maxEntries {
		return fmt.Errorf("-n %d: want 1 to %d", n, maxEntries)
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates a network namespace, veth interfaces and a multicast routing table")
	}
	// Only this thread enters the new namespace, so everything happens on it.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("new network namespace: %w", err)
	}
	up, down, err := addVeth()
	if err != nil {
		return err
	}
	s, err := mroute.Open(0)
	if err != nil {
		return err
	}
	defer s.Close()
	for i, ifindex := range []int{up, down} {
		if err := s.AddVIF(mroute.VIF{Index: uint16(i), IfIndex: ifindex}); err != nil {
			return err
		}
	}

	entries := make([]mroute.MFC, n)
	encoded := make([][sizeofMfcctl]byte, n)
	oifs := []uint16{1}
	for i := range entries {
		entries[i] = mroute.MFC{
			Source: netip.AddrFrom4([4]byte{10, 1, 1, 2}),
			Group:  netip.AddrFrom4([4]byte{239, byte(i >> 16), byte(i >> 8), byte(i)}),
			IIF:    0,
			OIFs:   oifs,
		}
		encoded[i] = encodeMFC(entries[i])
	}

	var viaMroute, bare timing
	var addAllocs, delAllocs float64
	for range rounds {
		add, del, aa, da, err := roundMroute(s, entries)
		if err != nil {
			return err
		}
		viaMroute.keepBest(add, del)
		addAllocs, delAllocs = aa, da

		add, del, err = roundBare(s, encoded)
		if err != nil {
			return err
		}
		bare.keepBest(add, del)
	}
	report(n, viaMroute, bare, addAllocs, delAllocs)
	return nil
}

// addVeth creates an up veth pair and returns the ifindexes of its ends.
func addVeth() (int, int, error) {
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "bench0"}, PeerName: "bench1"}
	if err := netlink.LinkAdd(veth); err != nil {
		return 0, 0, fmt.Errorf("add veth: %w", err)
	}
	var ifindexes [2]int
	for i, name := range []string{"bench0", "bench1"} {
		link, err := netlink.LinkByName(name)
		if err == nil {
			err = netlink.LinkSetUp(link)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("set up %s: %w", name, err)
		}
		ifindexes[i] = link.Attrs().Index
	}
	return ifindexes[0], ifindexes[1], nil
}

// roundMroute adds and deletes every entry through package mroute, and counts
// heap allocations per call outside the timed loops' clocks.
func roundMroute(s *mroute.Socket, entries []mroute.MFC) (add, del time.Duration, addAllocs, delAllocs float64, err error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	for _, e := range entries {
		if err := s.AddMFC(e); err != nil {
			return 0, 0, 0, 0, err
		}
	}
	add = time.Since(start)
	runtime.ReadMemStats(&after)
	addAllocs = float64(after.Mallocs-before.Mallocs) / float64(len(entries))

	runtime.ReadMemStats(&before)
	start = time.Now()
	for _, e := range entries {
		if err := s.DelMFC(e.Source, e.Group); err != nil {
			return 0, 0, 0, 0, err
		}
	}
	del = time.Since(start)
	runtime.ReadMemStats(&after)
	delAllocs = float64(after.Mallocs-before.Mallocs) / float64(len(entries))
	return add, del, addAllocs, delAllocs, nil
}

// roundBare adds and deletes every entry with raw setsockopt calls on the same
// socket.
func roundBare(s *mroute.Socket, encoded [][sizeofMfcctl]byte) (add, del time.Duration, err error) {
	rc, err := s.IPConn().SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var loopErr error
	err = rc.Control(func(fd uintptr) {
		for _, opt := range []struct {
			name int
			took *time.Duration
		}{{mrtAddMFC, &add}, {mrtDelMFC, &del}} {
			start := time.Now()
			for i := range encoded {
				_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, fd, unix.IPPROTO_IP, uintptr(opt.name),
					uintptr(unsafe.Pointer(&encoded[i])), sizeofMfcctl, 0)
				if errno != 0 {
					loopErr = fmt.Errorf("bare setsockopt %d: %w", opt.name, errno)
					return
				}
			}
			*opt.took = time.Since(start)
		}
	})
	if err == nil {
		err = loopErr
	}
	return add, del, err
}

// encodeMFC lays out struct mfcctl: origin, group, parent vifi_t, 32 TTLs,
// two bytes of padding and four output-only ints.
func encodeMFC(e mroute.MFC) [sizeofMfcctl]byte {
	var b [sizeofMfcctl]byte
	s, g := e.Source.As4(), e.Group.As4()
	copy(b[0:], s[:])
	copy(b[4:], g[:])
	binary.NativeEndian.PutUint16(b[8:], e.IIF)
	for _, oif := range e.OIFs {
		b[10+int(oif)] = 1
	}
	return b
}

func report(n int, viaMroute, bare timing, addAllocs, delAllocs float64) {
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	var uts unix.Utsname
	kernel := "unknown"
	if unix.Uname(&uts) == nil {
		kernel = unix.ByteSliceToString(uts.Release[:])
	}
	fmt.Printf("MFC install and removal: %d (S,G) entries, best of %d rounds, Linux %s\n\n", n, rounds, kernel)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "method\tadd entries/s\tdelete entries/s\t")
	fmt.Fprintf(w, "mroute\t%.0f\t%.0f\t\n", rate(viaMroute.add), rate(viaMroute.del))
	fmt.Fprintf(w, "bare setsockopt\t%.0f\t%.0f\t\n", rate(bare.add), rate(bare.del))
	fmt.Fprintf(w, "mroute/bare\t%.2f\t%.2f\t\n", rate(viaMroute.add)/rate(bare.add), rate(viaMroute.del)/rate(bare.del))
	w.Flush()
	fmt.Printf("\nmroute allocations: %.2f per AddMFC, %.2f per DelMFC\n", addAllocs, delAllocs)
}
