package install

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/test/lab"
)

const root = "../.."

const conffile = "/etc/mrouterd/mrouterd.toml"

// packaged are the files of the .deb and, for those that are copies of the
// repository's, where they come from.
var packaged = map[string]string{
	"/usr/sbin/mrouterd":                               "",
	"/usr/sbin/mroutectl":                              "",
	"/usr/lib/systemd/system/mrouterd.service":         "deploy/mrouterd.service",
	"/usr/lib/sysusers.d/mrouterd.conf":                "deploy/package/sysusers.conf",
	conffile:                                           "deploy/mrouterd.toml",
	"/usr/share/man/man8/mrouterd.8.gz":                "",
	"/usr/share/man/man8/mroutectl.8.gz":               "",
	"/usr/share/man/man5/mrouterd.toml.5.gz":           "",
	"/usr/share/bash-completion/completions/mroutectl": "",
	"/usr/share/zsh/vendor-completions/_mroutectl":     "",
	"/usr/share/doc/mrouterd/copyright":                "LICENSE",
}

// The .deb from `make package`, installed with dpkg, used as a user would (man
// pages, completion, the daemon's config check), then removed and purged, in a
// private root (privateRoot) where no systemd runs: the package's scripts do not
// start the daemon there. Then again as if systemd ran, with a systemctl that
// only notes its calls.
func TestDebianPackage(t *testing.T) {
	lab.RequireRoot(t)
	for _, tool := range []string{"make", "dpkg", "dpkg-deb", "man", "whatis", "bash", "zsh"} {
		if _, err := exec.LookPath(tool); err != nil {
			lab.Require(t, fmt.Errorf("%s is not installed (.ci/run installs what this test needs)", tool))
		}
	}
	start := time.Now()
	deb := makePackage(t)
	t.Logf("make package: %v", time.Since(start).Round(time.Millisecond))
	controlFields(t, deb)
	standIns := t.TempDir()
	igmpproxy, smcroute := standIn(t, standIns, "igmpproxy"), standIn(t, standIns, "smcroute")

	privateRoot(t)
	s := newSystem(t)
	// Debian's container images keep man pages out of every package (path-exclude
	// in dpkg.cfg.d); here dpkg installs all that the package holds, as it does on
	// a stock system.
	if err := os.WriteFile("/etc/dpkg/dpkg.cfg.d/zz-include-everything", []byte("path-include=*\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	parents := map[string]bool{} // the packaged files' directories that were there before
	for f := range packaged {
		for d := filepath.Dir(f); d != "/"; d = filepath.Dir(d) {
			parents[d] = exists(d)
		}
	}
	_, groupErr := s.run("getent", "group", "mrouterd")
	hadGroup := groupErr == nil

	// Only one daemon may own the kernel's multicast routing table: dpkg refuses
	// mrouterd beside igmpproxy and takes smcroute, which mrouterd replaces, away
	// (pimd would do as well, but FRR, which the interop tests install, conflicts
	// with it).
	s.must("dpkg", "-i", igmpproxy)
	if out, err := s.run("dpkg", "-i", deb); err == nil || !strings.Contains(out, "mrouterd conflicts with igmpproxy") {
		t.Errorf("dpkg -i mrouterd beside igmpproxy: %v, want refused for the conflict:\n%s", err, out)
	}
	s.must("dpkg", "-P", "igmpproxy", "mrouterd")
	s.must("dpkg", "-i", smcroute)

	installStart := time.Now()
	out := s.must("dpkg", "-i", deb)
	t.Logf("dpkg -i: %v\n%s", time.Since(installStart).Round(time.Millisecond), out)
	if status := s.status("smcroute"); status != "deinstall ok config-files" && status != "" {
		t.Errorf("smcroute's status beside mrouterd is %q, want it removed", status)
	}
	if calls := s.systemctlCalls(); len(calls) > 0 {
		t.Errorf("without systemd, the package called systemctl: %q", calls)
	}
	if status := s.status("mrouterd"); status != "install ok installed" {
		t.Fatalf("mrouterd's status is %q after dpkg -i", status)
	}
	checkInstalled(t, s)
	checkManPages(t, s)
	checkBashCompletion(t, s)
	checkZshCompletion(t, s)

	removeStart := time.Now()
	s.must("dpkg", "-r", "mrouterd")
	t.Logf("dpkg -r: %v", time.Since(removeStart).Round(time.Millisecond))
	if status := s.status("mrouterd"); status != "deinstall ok config-files" {
		t.Errorf("mrouterd's status is %q after dpkg -r, want only the conffile left", status)
	}
	for f := range packaged {
		if exists(f) != (f == conffile) {
			t.Errorf("after dpkg -r: %s there: %v", f, exists(f))
		}
	}
	for d, before := range parents {
		if !before && exists(d) && d != filepath.Dir(conffile) {
			t.Errorf("after dpkg -r: the package's directory %s is left", d)
		}
	}
	if out, err := s.run("man", "-w", "mrouterd"); err == nil {
		t.Errorf("man -w mrouterd after dpkg -r: %s", out)
	}
	s.must("dpkg", "-P", "mrouterd")
	if status := s.status("mrouterd"); status != "" {
		t.Errorf("mrouterd's status is %q after dpkg -P", status)
	}
	if exists(filepath.Dir(conffile)) {
		t.Errorf("after dpkg -P: %s is left", filepath.Dir(conffile))
	}
	if _, err := s.run("getent", "group", "mrouterd"); err == nil && !hadGroup {
		t.Errorf("after dpkg -P: the group mrouterd is left")
	}
	if calls := s.systemctlCalls(); len(calls) > 0 {
		t.Errorf("without systemd, removing the package called systemctl: %q", calls)
	}

	// With systemd: the unit enabled, and started only where the kernel routes
	// multicast; on removal stopped and disabled.
	if err := os.MkdirAll("/run/systemd/system", 0o755); err != nil {
		t.Fatal(err)
	}
	out = s.must("dpkg", "-i", deb)
	want := []string{"daemon-reload", "enable mrouterd.service"}
	if exists("/proc/net/ip_mr_vif") {
		want = append(want, "is-active --quiet mrouterd.service", "start mrouterd.service")
	} else if !strings.Contains(out, "not started: this kernel does not route IPv4 multicast") {
		t.Errorf("dpkg -i with systemd, on a kernel without multicast routing, does not say why the daemon is not started:\n%s", out)
	}
	if calls := s.systemctlCalls(); !slices.Equal(calls, want) {
		t.Errorf("with systemd, dpkg -i called systemctl %q, want %q", calls, want)
	}
	s.must("dpkg", "-P", "mrouterd")
	want = []string{"stop mrouterd.service", "disable mrouterd.service", "daemon-reload", "daemon-reload"}
	if calls := s.systemctlCalls(); !slices.Equal(calls, want) {
		t.Errorf("with systemd, dpkg -P called systemctl %q, want %q", calls, want)
	}
	t.Logf("whole test: %v", time.Since(start).Round(time.Millisecond))
}

// makePackage runs `make package` and returns the .deb it built.
func makePackage(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("make", "package")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make package: %v\n%s", err, out)
	}
	debs, err := filepath.Glob(filepath.Join(root, "bin/pkg/mrouterd_*.deb"))
	if err != nil || len(debs) != 1 {
		t.Fatalf("make package built %q (%v), want one .deb", debs, err)
	}
	deb, err := filepath.Abs(debs[0])
	if err != nil {
		t.Fatal(err)
	}
	return deb
}

func controlFields(t *testing.T, deb string) {
	t.Helper()
	for field, want := range map[string]string{
		"Package":   "mrouterd",
		"Conflicts": "pimd, smcroute, mrouted, igmpproxy",
		"Replaces":  "pimd, smcroute",
	} {
		out, err := exec.Command("dpkg-deb", "-f", deb, field).Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("%s: %q (%v), want %q", field, got, err, want)
		}
	}
}

// standIn builds an empty package named as another daemon, to be installed
// beside mrouterd.
func standIn(t *testing.T, dir, name string) string {
	t.Helper()
	tree := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Join(tree, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	control := fmt.Sprintf("Package: %s\nVersion: 1.0\nArchitecture: all\nMaintainer: test <test@mrouterd.invalid>\nDescription: stands in for %[1]s\n", name)
	if err := os.WriteFile(filepath.Join(tree, "DEBIAN/control"), []byte(control), 0o644); err != nil {
		t.Fatal(err)
	}
	deb := tree + ".deb"
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", tree, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build %s: %v\n%s", name, err, out)
	}
	return deb
}

func checkInstalled(t *testing.T, s *system) {
	t.Helper()
	var files []string
	for _, f := range strings.Fields(s.must("dpkg", "-L", "mrouterd")) {
		if fi, err := os.Stat(f); err != nil {
			t.Errorf("dpkg -L lists %s: %v", f, err)
		} else if !fi.IsDir() {
			files = append(files, f)
		}
	}
	var want []string
	for f, src := range packaged {
		want = append(want, f)
		if src == "" {
			continue
		}
		got, err := os.ReadFile(f)
		if err != nil {
			t.Error(err)
			continue
		}
		if orig, err := os.ReadFile(filepath.Join(root, src)); err != nil || !bytes.Equal(got, orig) {
			t.Errorf("%s is not %s (%v)", f, src, err)
		}
	}
	slices.Sort(files)
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Errorf("installed files %q, want %q", files, want)
	}
	for _, bin := range []string{"/usr/sbin/mrouterd", "/usr/sbin/mroutectl"} {
		if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v, %v; want mode 0755", bin, fi.Mode(), err)
		}
	}
	// Kept across upgrades, never overwritten: a conffile, with its checksum.
	data, err := os.ReadFile(conffile)
	if err != nil {
		t.Fatal(err)
	}
	wantConf := fmt.Sprintf(" %s %x", conffile, md5.Sum(data))
	if got := strings.TrimSpace(s.must("dpkg-query", "-W", "-f=${Conffiles}", "mrouterd")); got != strings.TrimSpace(wantConf) {
		t.Errorf("conffiles %q, want %q", got, wantConf)
	}
	// The unit's group, which owns the control socket.
	s.must("getent", "group", "mrouterd")
	s.must("/usr/sbin/mrouterd", "--check", "-c", conffile)
	if out := s.must("mrouterd", "--version"); !strings.HasPrefix(out, "mrouterd ") {
		t.Errorf("mrouterd --version: %q", out)
	}
}

func checkManPages(t *testing.T, s *system) {
	t.Helper()
	for _, c := range []struct{ section, page string }{{"8", "mrouterd"}, {"8", "mroutectl"}, {"5", "mrouterd.toml"}} {
		path := fmt.Sprintf("/usr/share/man/man%s/%s.%[1]s.gz", c.section, c.page)
		if got := strings.TrimSpace(s.must("man", "-w", c.page)); got != path {
			t.Errorf("man -w %s: %q, want %s", c.page, got, path)
		}
		// Rendered without a word from groff or man on stderr.
		cmd := s.command("man", "-P", "cat", c.section, c.page)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man %s %s: %v\n%s", c.section, c.page, err, stderr.String())
		}
		head := fmt.Sprintf("%s(%s)", strings.ToUpper(c.page), c.section)
		name := regexp.MustCompile(`\nNAME\n +` + regexp.QuoteMeta(c.page) + ` +- +\S`)
		if text := stdout.String(); !strings.HasPrefix(text, head) || !name.MatchString(text) {
			t.Errorf("man %s %s begins %q, want %s and a NAME line", c.section, c.page, text[:min(len(text), 300)], head)
		}
	}
	// mandb, which dpkg's trigger ran, has indexed the pages.
	if out := s.must("whatis", "mroutectl"); !strings.HasPrefix(out, "mroutectl (8)") {
		t.Errorf("whatis mroutectl: %q", out)
	}
}

const bashCompletions = "/usr/share/bash-completion/completions/mroutectl"

// completeBash completes the words after the program as bash does when Tab is
// pressed at the end of them, with the function that `complete -p mroutectl`
// names once bash-completion has loaded it on demand (as it does on a user's
// first Tab), or, where bash-completion is not installed, once the script is
// sourced.
const completeBash = `
if [[ -r /usr/share/bash-completion/bash_completion ]]; then
	source /usr/share/bash-completion/bash_completion
	_completion_loader mroutectl
else
	source ` + bashCompletions + `
fi
spec=$(complete -p mroutectl) || exit 1
[[ $spec =~ -F\ ([^ ]+) ]] || { echo "no completion function: $spec"; exit 1; }
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
"${BASH_REMATCH[1]}" mroutectl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '
`

func checkBashCompletion(t *testing.T, s *system) {
	t.Helper()
	if !exists("/usr/share/bash-completion/bash_completion") {
		if lab.Required() {
			t.Errorf("%s=required: bash-completion is not installed", lab.E2EEnv)
		}
		t.Logf("bash-completion is not installed: %s sourced by hand", bashCompletions)
	}
	for line, want := range map[string]string{
		"mroutectl sh":       "show",
		"mroutectl show p":   "pim",
		"mroutectl s p ":     "joins neighbors rp",
		"mroutectl --js":     "--json",
		"mroutectl s igmp g": "groups",
	} {
		args := append([]string{"--norc", "-c", completeBash, "bash"}, strings.Split(line, " ")...)
		if got := strings.TrimSpace(s.must("bash", args...)); got != want {
			t.Errorf("bash completes %q to %q, want %q", line, got, want)
		}
	}
}

// checkZshCompletion types lines and a Tab into an interactive zsh whose
// compinit finds _mroutectl on its default fpath (testdata/complete.zsh).
func checkZshCompletion(t *testing.T, s *system) {
	t.Helper()
	script, err := filepath.Abs("testdata/complete.zsh")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ line, want string }{
		{"mroutectl sh", "mroutectl show "},
		{"mroutectl show p", "mroutectl show pim "},
		{"mroutectl s p ne", "mroutectl s p neighbors "},
		{"mroutectl comp", "mroutectl completion "},
		{"mroutectl s m", "mroutectl s m"}, // metrics or mfc: nothing to insert
	}
	args := []string{"-f", script}
	for _, c := range cases {
		args = append(args, c.line)
	}
	got := strings.Split(strings.TrimSuffix(s.must("zsh", args...), "\n"), "\n")
	if len(got) != len(cases) {
		t.Fatalf("zsh completed %q for %d lines", got, len(cases))
	}
	for i, c := range cases {
		if got[i] != c.want {
			t.Errorf("zsh completes %q to %q, want %q", c.line, got[i], c.want)
		}
	}
}

// system runs commands in the private root as a root shell would, but with a
// systemctl first on PATH that only notes how it was called: the package's
// scripts find systemd running when /run/systemd/system is there.
type system struct {
	t   *testing.T
	env []string
	log string // systemctl's notes
}

const fakeSystemctl = `#!/bin/sh
# Notes its arguments; no unit is ever active.
echo "$*" >> %s
[ "$1" != is-active ] || exit 3
`

func newSystem(t *testing.T) *system {
	dir := t.TempDir()
	s := &system{t: t, log: filepath.Join(dir, "systemctl.log")}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), fmt.Appendf(nil, fakeSystemctl, s.log), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); !slices.Contains([]string{"PATH", "HOME", "LANG", "LC_ALL", "MANPAGER", "PAGER", "MANWIDTH", "TERM"}, name) {
			s.env = append(s.env, kv)
		}
	}
	s.env = append(s.env, "PATH="+bin+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME="+dir, "LC_ALL=C", "MANWIDTH=80", "TERM=dumb")
	return s
}

func (s *system) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = s.env
	return cmd
}

// run returns a command's stdout and stderr together.
func (s *system) run(name string, args ...string) (string, error) {
	out, err := s.command(name, args...).CombinedOutput()
	return string(out), err
}

// must runs a command and fails the test when it fails.
func (s *system) must(name string, args ...string) string {
	s.t.Helper()
	out, err := s.run(name, args...)
	if err != nil {
		s.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// status is a package's dpkg status, "" when it is not installed at all.
func (s *system) status(pkg string) string {
	s.t.Helper()
	out, err := s.command("dpkg-query", "-W", "-f=${Status}", pkg).Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return ""
	}
	if err != nil {
		s.t.Fatalf("dpkg-query %s: %v", pkg, err)
	}
	if strings.HasSuffix(string(out), " not-installed") {
		return ""
	}
	return string(out)
}

// systemctlCalls returns the calls to systemctl since the last time it was asked.
func (s *system) systemctlCalls() []string {
	s.t.Helper()
	data, err := os.ReadFile(s.log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = os.Remove(s.log)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
