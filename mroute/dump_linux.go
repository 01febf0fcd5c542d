package mroute

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// dumpAttempts bounds the retries of a dump that the kernel reports as
// interrupted by a concurrent change.
const dumpAttempts = 3

// Dump reads the MFC of table (0 is the kernel's default table) from the
// kernel, in the network namespace of the calling thread, unresolved entries
// included. Entries are ordered by group, then source.
func Dump(table uint32) ([]KernelEntry, error) {
	want := table
	if want == 0 {
		want = rtTableDefault
	}
	var err error
	for range dumpAttempts {
		var entries []KernelEntry
		entries, err = dumpOnce(want)
		if errors.Is(err, nl.ErrDumpInterrupted) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("mroute: dump MFC of table %d: %w", table, err)
		}
		slices.SortFunc(entries, func(a, b KernelEntry) int {
			return cmp.Or(a.Group.Compare(b.Group), a.Source.Compare(b.Source))
		})
		return entries, nil
	}
	return nil, fmt.Errorf("mroute: dump MFC of table %d: interrupted by changes %d times in a row: %w", table, dumpAttempts, err)
}

func dumpOnce(table uint32) ([]KernelEntry, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETROUTE, unix.NLM_F_DUMP)
	var rtm [sizeofRtmsg]byte
	rtm[rtmsgFamily] = rtnlFamilyIPMR
	req.AddRawData(rtm[:])

	// The kernel dumps every table; without strict checking it ignores a table
	// filter in the request, so filter here.
	var entries []KernelEntry
	var parseErr error
	err := req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWROUTE, func(msg []byte) bool {
		// A kernel without IPMR answers with every family's routes instead.
		if len(msg) > rtmsgFamily && msg[rtmsgFamily] != rtnlFamilyIPMR {
			return true
		}
		e, t, err := parseRouteMessage(msg)
		if err != nil {
			parseErr = err
			return false
		}
		if t == table {
			entries = append(entries, e)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if parseErr != nil {
		return nil, parseErr
	}
	return entries, nil
}
