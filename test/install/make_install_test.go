package install

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// `make install` puts everything under PREFIX, and the unit it installs runs the
// binaries from there. A config already in place is kept.
func TestMakeInstallPrefix(t *testing.T) {
	dest := t.TempDir()
	install := func() string {
		t.Helper()
		cmd := exec.Command("make", "install", "PREFIX=/usr/local", "DESTDIR="+dest)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
		return string(out)
	}
	install()
	var files []string
	err := filepath.WalkDir(dest, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, strings.TrimPrefix(path, dest))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/etc/mrouterd/mrouterd.toml",
		"/lib/systemd/system/mrouterd.service",
		"/usr/local/lib/sysusers.d/mrouterd.conf",
		"/usr/local/sbin/mroutectl",
		"/usr/local/sbin/mrouterd",
		"/usr/local/share/bash-completion/completions/mroutectl",
		"/usr/local/share/man/man5/mrouterd.toml.5",
		"/usr/local/share/man/man8/mroutectl.8",
		"/usr/local/share/man/man8/mrouterd.8",
		"/usr/local/share/zsh/site-functions/_mroutectl",
	}
	if !slices.Equal(files, want) {
		t.Errorf("make install wrote %q, want %q", files, want)
	}

	unit, err := os.ReadFile(filepath.Join(dest, "lib/systemd/system/mrouterd.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"ExecStart=/usr/local/sbin/mrouterd --config /etc/mrouterd/mrouterd.toml",
		"ExecReload=/usr/local/sbin/mroutectl reload",
	} {
		if !slices.Contains(strings.Split(string(unit), "\n"), line) {
			t.Errorf("the installed unit has no line %q:\n%s", line, unit)
		}
	}
	if strings.Contains(string(unit), "/usr/sbin/") {
		t.Errorf("the installed unit still names /usr/sbin/:\n%s", unit)
	}

	config := filepath.Join(dest, "etc/mrouterd/mrouterd.toml")
	edited := []byte("# edited\n")
	if err := os.WriteFile(config, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := install(); !strings.Contains(out, "keeping existing") {
		t.Errorf("make install over an edited config does not say it keeps it:\n%s", out)
	}
	if data, err := os.ReadFile(config); err != nil || string(data) != string(edited) {
		t.Errorf("make install replaced an edited config: %q, %v", data, err)
	}
}
