package main

import (
	"context"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// notifier speaks systemd's notify protocol: datagrams to $NOTIFY_SOCKET. With no
// socket in the environment it does nothing.
type notifier struct {
	addr     *net.UnixAddr
	interval time.Duration // watchdog ping interval; 0 when no watchdog was asked for
}

func newNotifier() *notifier {
	n := &notifier{}
	if path := os.Getenv("NOTIFY_SOCKET"); path != "" {
		if path[0] == '@' {
			path = "\x00" + path[1:] // abstract socket
		}
		n.addr = &net.UnixAddr{Name: path, Net: "unixgram"}
	}
	if usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && usec > 0 {
		pid, err := strconv.Atoi(os.Getenv("WATCHDOG_PID"))
		if err != nil || pid == os.Getpid() {
			n.interval = time.Duration(usec) * time.Microsecond / 2
		}
	}
	return n
}

func (n *notifier) notify(state string) {
	if n.addr == nil {
		return
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte(state))
}

// watchdog pings systemd only while the router loop answers, so a stuck loop gets
// the daemon restarted.
func (n *notifier) watchdog(ctx context.Context, alive func(context.Context) error) {
	if n.interval == 0 || n.addr == nil {
		return
	}
	t := time.NewTicker(n.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, n.interval)
			if alive(pctx) == nil {
				n.notify("WATCHDOG=1")
			}
			cancel()
		}
	}
}

// monotonicMicros is CLOCK_MONOTONIC in microseconds, which RELOADING=1 must carry.
func monotonicMicros() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano() / 1000
}
