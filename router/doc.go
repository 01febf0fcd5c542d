// Package router is mrouterd's event loop and its I/O. One goroutine, the loop,
// owns all routing state; socket readers, the netlink watcher and the control API
// hand it work through channels. Every event takes the same way through it:
//
//	upcall (MRT socket)  ─┐
//	IGMP, PIM packet     ─┤
//	netlink (netwatch)   ─┼─▶ loop ─▶ RIB changes (mrib: routes, membership,
//	timer (one deadline) ─┤            │           PIM Tree, register state)
//	control API, reload  ─┘            ▼
//	                       Refresh: each changed group's routes recomputed (iif, oifs)
//	                                   │
//	                                   ├─▶ desired MFC entries ─▶ reconciled with the
//	                                   │   kernel (only what changed; a dump to resync)
//	                                   └─▶ PIM sends (Join/Prune batched, Register,
//	                                       Register-Stop, Assert) and IGMP queries
//
// A packet from the network is believed only once it is shown to come from the
// link it arrived on (pimaccept.go for PIM, igmp.CheckAddresses for IGMP); what is
// refused is counted with its reason and goes no further.
//
// The RIB (router/mrib) and the protocol cores (igmp, pim) do no I/O and read no
// clock; the loop gives them the time from its one clock and carries out what they
// return. The kernel sits behind small interfaces (mrtTable, fib, netState), so the
// whole loop runs on fakes in tests.
package router
