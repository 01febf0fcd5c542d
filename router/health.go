package router

import (
	"fmt"
	"os"
	"strings"
)

// warnings names the usual reasons multicast silently fails to cross a router, so an
// operator sees them in the log at start and in `mroutectl show status`.
func (r *Router) warnings() []string {
	var out []string
	for _, ifc := range r.sortedInterfaces() {
		if !ifc.hasVIF() {
			continue
		}
		// Strict reverse-path filtering drops multicast from sources the unicast
		// routes do not reach through the incoming interface.
		if max(sysctlInt("all", "rp_filter"), sysctlInt(ifc.name, "rp_filter")) == 1 {
			out = append(out, fmt.Sprintf("%s: strict rp_filter drops multicast from sources not routed via this interface (set net.ipv4.conf.%s.rp_filter=2 or 0)", ifc.name, ifc.name))
		}
	}
	var waiting []string
	for _, ifc := range r.sortedInterfaces() {
		if ifc.vifRefused {
			waiting = append(waiting, ifc.name)
		}
	}
	if len(waiting) > 0 {
		out = append(out, fmt.Sprintf("no VIF for %s: all %d of the kernel's VIFs are in use", strings.Join(waiting, ", "), r.vifs.Used()))
	}
	for _, key := range r.unroutableKeys(r.now()) {
		out = append(out, unroutableWarning(key, r.unroutable[key]))
	}
	if r.fabricOn() && r.fab.link.StrictRPFilter {
		out = append(out, fmt.Sprintf("%s: strict rp_filter drops what the other nodes send over the fabric (set net.ipv4.conf.all.rp_filter=2 or 0, and net.ipv4.conf.%s.rp_filter=0)", r.cfg.Fabric.Interface, r.cfg.Fabric.Interface))
	}
	if r.vifs.Used() > 0 && sysctlInt("all", "mc_forwarding") == 0 {
		out = append(out, "net.ipv4.conf.all.mc_forwarding is 0: the kernel is not forwarding multicast")
	}
	return out
}

func (r *Router) warnMisconfigurations() {
	for _, w := range r.warnings() {
		r.log.Warn(w)
	}
}

// sysctlInt reads /proc/sys/net/ipv4/conf/<scope>/<key>; -1 when unreadable.
func sysctlInt(scope, key string) int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + scope + "/" + key)
	if err != nil {
		return -1
	}
	var v int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &v); err != nil {
		return -1
	}
	return v
}
