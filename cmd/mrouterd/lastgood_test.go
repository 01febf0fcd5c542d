package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mrouterd/mrouterd/conf"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestDefaultLastGood(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/mrouterd:/var/lib/other")
	if got := defaultLastGood(); got != "/var/lib/mrouterd/last-good.toml" {
		t.Errorf("under systemd: %q", got)
	}
	o, err := parseFlags(nil)
	if err != nil || o.lastGood != "/var/lib/mrouterd/last-good.toml" {
		t.Errorf("flag default: %q %v", o.lastGood, err)
	}
	t.Setenv("STATE_DIRECTORY", "")
	if got := defaultLastGood(); got != "" {
		t.Errorf("outside systemd: %q", got)
	}
}

// A good file that ran is kept; when the file goes bad, a start says why and runs
// the copy; without a copy, or with the file missing, it fails as before.
func TestStartWithLastGood(t *testing.T) {
	dir := t.TempDir()
	o := options{config: filepath.Join(dir, "mrouterd.toml"), configGiven: true, lastGood: filepath.Join(dir, "state", "last-good.toml")}
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(o.config, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := func() (*conf.Config, bool, string, error) {
		var stderr bytes.Buffer
		cfg, fallback, err := o.startConfig(&stderr, discard)
		return cfg, fallback, stderr.String(), err
	}

	write("[igmp]\nversion = 7\n")
	if _, _, _, err := start(); err == nil || !strings.Contains(err.Error(), "mrouterd.toml:2") {
		t.Fatalf("bad file and no copy: %v", err)
	}

	write("[igmp]\nversion = 2\n")
	good, fallback, _, err := start()
	if err != nil || fallback {
		t.Fatalf("good file: %v %v", err, fallback)
	}
	o.keepLastGood(good, discard)

	write("[igmp]\nversion = 7\n")
	cfg, fallback, stderr, err := start()
	if err != nil || !fallback || cfg.IGMP.Version != 2 || cfg.File != o.lastGood {
		t.Fatalf("bad file with a copy: %v %v %+v", err, fallback, cfg)
	}
	if !strings.Contains(stderr, "mrouterd.toml:2") || !strings.Contains(stderr, "igmp.version") {
		t.Errorf("the file's errors are not shown: %q", stderr)
	}
	// The copy that runs is not saved over itself.
	before, _ := os.Stat(o.lastGood)
	o.keepLastGood(cfg, discard)
	if after, _ := os.Stat(o.lastGood); !after.ModTime().Equal(before.ModTime()) {
		t.Error("the copy was saved again")
	}

	if _, _, err := (options{config: o.config, configGiven: true}).startConfig(io.Discard, discard); err == nil {
		t.Error("no last good file configured, yet a bad file started")
	}
	os.Remove(o.config)
	if _, _, _, err := start(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// The embedded defaults are never saved: there is no file to fall back from.
func TestDefaultsNotKept(t *testing.T) {
	o := options{lastGood: filepath.Join(t.TempDir(), "last-good.toml")}
	o.keepLastGood(conf.Default(), discard)
	if _, err := os.Stat(o.lastGood); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("defaults saved: %v", err)
	}
}
