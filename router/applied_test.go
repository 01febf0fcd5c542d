package router

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/mrouterd/mrouterd/conf"
)

// Only configs a reload applied are handed on, and of racing reloads the one the
// loop applied last is handed on last.
func TestAppliedConfigs(t *testing.T) {
	l := newLab(t, staticSG)
	var mu sync.Mutex
	var handed []*conf.Config
	l.r.applied = func(c *conf.Config) {
		mu.Lock()
		defer mu.Unlock()
		handed = append(handed, c)
	}
	l.runLoop()
	ctx := context.Background()

	l.r.load = func() (*conf.Config, error) { return nil, errors.New("test.toml:1: bad") }
	if _, err := l.r.Reload(ctx); err == nil {
		t.Fatal("bad config reloaded")
	}
	l.r.load = func() (*conf.Config, error) {
		c, err := conf.Parse("test.toml", []byte(staticSG))
		if err == nil {
			c.Router.Table = 7 // cannot change while running
		}
		return c, err
	}
	if _, err := l.r.Reload(ctx); err == nil {
		t.Fatal("table change applied")
	}
	if len(handed) != 0 {
		t.Fatalf("configs that were not applied handed on: %d", len(handed))
	}

	l.r.load = func() (*conf.Config, error) { return conf.Parse("test.toml", []byte(twoRoutes)) }
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := l.r.Reload(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var running *conf.Config
	if err := l.r.call(ctx, func() { running = l.r.cfg }); err != nil {
		t.Fatal(err)
	}
	if len(handed) == 0 || handed[len(handed)-1] != running {
		t.Fatalf("%d configs handed on; the last is not the one running", len(handed))
	}
}

// The config the router started with is handed on once it runs.
func TestAppliedAtStart(t *testing.T) {
	l := newLab(t, staticSG)
	handed := make(chan *conf.Config, 1)
	l.r.applied = func(c *conf.Config) { handed <- c }
	start := l.r.cfg
	runOnFakes(t, l)
	if c := <-handed; c != start {
		t.Fatalf("handed on %p, started with %p", c, start)
	}
}
