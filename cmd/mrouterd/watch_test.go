package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// configMapDir lays out a directory as the kubelet does for a ConfigMap volume:
// the file is a symlink through "..data", itself a symlink to a timestamped
// directory holding the real file. update writes a new such directory and swaps
// "..data" to it in one rename, as the kubelet does; the old file is left as it was.
type configMapDir struct {
	t   *testing.T
	dir string
	gen int
}

func newConfigMapDir(t *testing.T, content string) *configMapDir {
	d := &configMapDir{t: t, dir: t.TempDir()}
	d.update(content)
	if err := os.Symlink(filepath.Join("..data", "mrouterd.toml"), d.path()); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *configMapDir) path() string { return filepath.Join(d.dir, "mrouterd.toml") }

func (d *configMapDir) update(content string) {
	d.gen++
	gen := filepath.Join(d.dir, "..gen"+strconv.Itoa(d.gen))
	if err := os.Mkdir(gen, 0o755); err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gen, "mrouterd.toml"), []byte(content), 0o644); err != nil {
		d.t.Fatal(err)
	}
	tmp := filepath.Join(d.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
		d.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.dir, "..data")); err != nil {
		d.t.Fatal(err)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A poll reports a change exactly when the contents the path leads to differ from
// the last read, whatever happened to the symlinks on the way.
func TestConfigWatchPoll(t *testing.T) {
	d := newConfigMapDir(t, "[igmp]\nversion = 3\n")
	w := newConfigWatch(d.path(), quietLogger())
	if w.poll() {
		t.Fatal("change reported with nothing changed")
	}
	d.update("[igmp]\nversion = 3\n")
	if w.poll() {
		t.Fatal("change reported for a new ConfigMap generation with the same contents")
	}
	d.update("[igmp]\nversion = 2\n")
	if !w.poll() {
		t.Fatal("ConfigMap update not noticed")
	}
	if w.poll() {
		t.Fatal("one change reported twice")
	}
	if err := os.Remove(d.path()); err != nil {
		t.Fatal(err)
	}
	if !w.poll() {
		t.Fatal("removed file not noticed")
	}
	if err := os.WriteFile(d.path(), []byte("[igmp]\nversion = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !w.poll() {
		t.Fatal("file that appeared again not noticed")
	}
}

// A file that is not there at the start (the default path, with the embedded
// defaults running) is noticed when it appears.
func TestConfigWatchAppears(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mrouterd.toml")
	w := newConfigWatch(path, quietLogger())
	if w.poll() {
		t.Fatal("change reported for a file that is still missing")
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if !w.poll() {
		t.Fatal("an empty file that appeared is a change")
	}
}

// The running watch calls back once per change, at its own interval.
func TestConfigWatchRun(t *testing.T) {
	d := newConfigMapDir(t, "[igmp]\nversion = 3\n")
	w := newConfigWatch(d.path(), quietLogger())
	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan struct{}, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx, 5*time.Millisecond, func() { changed <- struct{}{} })
	}()
	wait := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no reload within 10s", what)
		}
	}
	d.update("[igmp]\nversion = 2\n")
	wait("first update")
	d.update("[igmp]\nversion = 3\n")
	wait("second update")
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not stop with its context")
	}
	if n := len(changed); n != 0 {
		t.Fatalf("%d reloads more than changes", n)
	}
}

func TestWatchConfigFlag(t *testing.T) {
	o, err := parseFlags([]string{"--watch-config", "-c", "/etc/mrouterd/mrouterd.toml"})
	if err != nil || !o.watchConfig {
		t.Fatalf("%+v %v", o, err)
	}
	if o, _ := parseFlags(nil); o.watchConfig {
		t.Fatal("the watch is on by default")
	}
}
