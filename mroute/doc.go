// Package mroute is the kernel's IPv4 multicast routing API and nothing else:
// the MRT_* socket options, VIFs, MFC entries, upcalls, counters and the
// netlink dump of the multicast forwarding cache (MFC).
//
// One socket per table owns it (MRT_INIT); the kernel removes the VIFs and MFC
// entries that socket installed when it closes. Everything here acts in the
// network namespace of the calling thread.
package mroute
