package router

import (
	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/pim"
)

// This file is what the RIB asks for in PIM asserts (RFC 7761 4.6): our claim to
// forward (S,G) onto a LAN, from our unicast route to the source or the RP.

// assertMetric is our claim on an interface for (S,G): the preference and metric of
// our route to the source, and our address there. A source on a connected subnet
// is as good as it gets.
func (r *Router) assertMetric(key sgKey, ifc *iface, shared bool) pim.AssertMetric {
	m := pim.AssertMetric{Address: ifc.pimSelf}
	addr := key.Source
	if shared {
		m.RPT = true
		rp, _ := r.rpOf(key.Group)
		addr = rp
	}
	if r.rpf(addr).Connected() {
		return m
	}
	e, ok := r.fibEntry(addr)
	if !ok {
		m.Preference, m.Metric = 0x7fffffff, 0xffffffff // no route: anyone beats us
		return m
	}
	m.Preference, m.Metric = e.preference(), e.priority
	return m
}

// preference stands in for the administrative distance the kernel's routes do not
// carry: routes installed by hand or at boot count as static (1), the rest as
// learned from a routing protocol (110, as OSPF).
func (e fibEntry) preference() uint32 {
	switch e.protocol {
	case unix.RTPROT_BOOT, unix.RTPROT_STATIC, unix.RTPROT_KERNEL:
		return 1
	}
	return 110
}
