package peers

import (
	"testing"

	"github.com/mrouterd/mrouterd/test/lab"
)

// RequireFRR skips t when FRR is not installed, or fails it when lab tests are
// required (MROUTERD_E2E=required), naming the way to install it either way.
func RequireFRR(t testing.TB) {
	t.Helper()
	lab.Require(t, CheckFRR())
}

// RequirePimd is RequireFRR for troglobit's pimd.
func RequirePimd(t testing.TB) {
	t.Helper()
	lab.Require(t, CheckPimd())
}

// RequirePromtool is RequireFRR for Prometheus's promtool.
func RequirePromtool(t testing.TB) {
	t.Helper()
	lab.Require(t, CheckPromtool())
}
