package mroute

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOpenErrors(t *testing.T) {
	for _, c := range []struct {
		step  string
		errno unix.Errno
		want  []string
	}{
		{"MRT_INIT", unix.EADDRINUSE, []string{"table 7:", "pimd", "FRR", "smcroute", "igmpproxy", "mrouted"}},
		{"create raw IGMP socket", unix.EPERM, []string{"CAP_NET_ADMIN", "operation not permitted"}},
		{"MRT_INIT", unix.EACCES, []string{"CAP_NET_ADMIN"}},
		{"MRT_INIT", unix.ENOPROTOOPT, []string{"CONFIG_IP_MROUTE)", "containers"}},
		{"select table (MRT_TABLE)", unix.ENOPROTOOPT, []string{"CONFIG_IP_MROUTE_MULTIPLE_TABLES", "use table 0"}},
		{"select table (MRT_TABLE)", unix.EINVAL, []string{"table 7: select table (MRT_TABLE): invalid argument"}},
	} {
		err := openError(7, c.step, c.errno)
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("openError(%s, %v) = %q, want it to mention %q", c.step, c.errno, err, w)
			}
		}
		if c.errno == unix.EADDRINUSE {
			if !errors.Is(err, ErrTableInUse) {
				t.Errorf("openError(EADDRINUSE) = %v, want ErrTableInUse", err)
			}
		} else if !errors.Is(err, c.errno) {
			t.Errorf("openError(%v) = %v, does not wrap the errno", c.errno, err)
		}
	}
}
