package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"time"
)

// watchInterval is how often --watch-config reads the config file. A ConfigMap
// change takes the kubelet up to a minute or two to reach the node; a few seconds
// more are nothing next to that.
const watchInterval = 5 * time.Second

// configWatch notices that the config file's contents changed. It reads the file
// by its path each time and compares bytes, so it sees a change however it was
// made: written in place, renamed over, or, as the kubelet updates a ConfigMap
// volume, by swapping the symlink the path resolves through, which leaves the
// old file untouched and so is invisible to a watch on the file itself.
type configWatch struct {
	path    string
	log     *slog.Logger
	content []byte // as last read
	exists  bool   // whether the file existed then
}

// newConfigWatch reads the file as it is now; later changes are measured from this.
func newConfigWatch(path string, log *slog.Logger) *configWatch {
	w := &configWatch{path: path, log: log}
	w.content, w.exists, _ = w.read()
	return w
}

// read returns the file's contents; exists is false when there is no file. An
// error is any other failure to read it, which is no news about its contents.
func (w *configWatch) read() (content []byte, exists bool, err error) {
	content, err = os.ReadFile(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return content, true, nil
}

// poll reads the file once and reports whether it differs from the last read:
// other contents, or a file that appeared or went away.
func (w *configWatch) poll() bool {
	content, exists, err := w.read()
	if err != nil {
		w.log.Warn("watch the config file", "file", w.path, "err", err)
		return false
	}
	if exists == w.exists && bytes.Equal(content, w.content) {
		return false
	}
	w.content, w.exists = content, exists
	return true
}

// run polls every interval until ctx ends and calls changed after each change.
func (w *configWatch) run(ctx context.Context, interval time.Duration, changed func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if w.poll() {
				w.log.Info("config file changed; reloading", "file", w.path)
				changed()
			}
		}
	}
}
