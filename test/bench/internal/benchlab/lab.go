// Package benchlab holds what the benchmarks under test/bench share: labs that go down
// on an interrupt, commands run in the background on lab nodes, hosts that join many
// groups, a packet capture of a host's interface, the routers under comparison (their
// names, starting mrouterd, memory) and the tables the figures are printed in.
package benchlab

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/mrouterd/mrouterd/test/lab"
)

// Logf prints a progress line on stderr, after the program's name.
func Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, filepath.Base(os.Args[0])+": "+format+"\n", args...)
}

// running holds the labs that are up, so that an interrupt can tear them down.
var running struct {
	mu   sync.Mutex
	labs map[*lab.Lab]bool
}

// Up brings a lab of topo up, with the programs of bin, and keeps it in running until
// Down. An interrupt meanwhile waits for it, then takes it down too.
func Up(topo *lab.Topology, bin string) (*lab.Lab, error) {
	running.mu.Lock()
	defer running.mu.Unlock()
	l, err := lab.Up(topo, lab.Options{BinDir: bin})
	if err != nil {
		return nil, err
	}
	if running.labs == nil {
		running.labs = map[*lab.Lab]bool{}
	}
	running.labs[l] = true
	return l, nil
}

// Down tears l down and forgets it; a failure is printed, since the figures still count.
func Down(l *lab.Lab) {
	running.mu.Lock()
	defer running.mu.Unlock()
	delete(running.labs, l)
	if err := l.Down(); err != nil {
		Logf("lab down %s: %v", l.Prefix, err)
	}
}

// TearDownOnSignal tears every running lab down on SIGINT or SIGTERM and exits. Run it
// in a goroutine of its own.
func TearDownOnSignal() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	sig := <-sigs
	running.mu.Lock() // held until exit: nothing else starts
	for l := range running.labs {
		Logf("%v: tearing down lab %s", sig, l.Prefix)
		if err := l.Down(); err != nil {
			Logf("lab down %s: %v", l.Prefix, err)
		}
	}
	os.Exit(1)
}
