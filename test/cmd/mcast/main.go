// Command mcast sends and receives numbered multicast UDP streams and reports, as JSON,
// what was sent or what arrived.
//
//	mcast send -group G [-groups N] -port P [-ifname IF] [-source ADDR] [-ttl N]
//	           [-rate PPS] [-count N | -duration D] [-size BYTES] [-stream ID]
//	mcast recv -group G -port P [-ifname IF] [-source S]... [-block S]...
//	           [-duration D] [-count N] [-idle D] [-ready FILE]
//
// Both stop early on SIGINT or SIGTERM and still print their JSON.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mrouterd/mrouterd/test/mcast"
)

const usage = `usage:
  mcast send -group G [-groups N] -port P [-ifname IF] [-source ADDR] [-ttl N]
             [-rate PPS] [-count N | -duration D] [-size BYTES] [-stream ID]
  mcast recv -group G -port P [-ifname IF] [-source S]... [-block S]...
             [-duration D] [-count N] [-idle D] [-ready FILE]`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcast: "+strings.ReplaceAll(err.Error(), "\n", " | "))
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	switch args[0] {
	case "send":
		return send(ctx, args[1:], stdout)
	case "recv":
		return recv(ctx, args[1:], stdout)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q (want send or recv; mcast -h shows usage)", args[0])
}

// addrList is a repeatable address flag.
type addrList []netip.Addr

func (l *addrList) String() string { return fmt.Sprint(*l) }

func (l *addrList) Set(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return err
	}
	*l = append(*l, a)
	return nil
}

// addrFlag is an address flag; its zero value means unset.
type addrFlag struct{ addr *netip.Addr }

func (f addrFlag) String() string {
	if f.addr == nil || !f.addr.IsValid() {
		return ""
	}
	return f.addr.String()
}

func (f addrFlag) Set(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return err
	}
	*f.addr = a
	return nil
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // Parse returns the error and main prints it once
	return fs
}

func send(ctx context.Context, args []string, stdout io.Writer) error {
	var opts mcast.SendOptions
	fs := newFlagSet("send")
	fs.Var(addrFlag{&opts.Group}, "group", "multicast group")
	fs.IntVar(&opts.Groups, "groups", 1, "send to this many consecutive groups from -group, -rate and -count each")
	fs.IntVar(&opts.Port, "port", 0, "UDP port")
	fs.StringVar(&opts.Ifname, "ifname", "", "multicast interface (default: by route)")
	fs.Var(addrFlag{&opts.Source}, "source", "local address to send from")
	fs.IntVar(&opts.TTL, "ttl", mcast.DefaultTTL, "multicast TTL")
	fs.Float64Var(&opts.Rate, "rate", 1000, "datagrams per second, 0 for as fast as possible")
	fs.Uint64Var(&opts.Count, "count", 0, "datagrams to send")
	fs.DurationVar(&opts.Duration, "duration", 0, "how long to send")
	fs.IntVar(&opts.Size, "size", mcast.DefaultSize, "UDP payload bytes")
	stream := fs.Uint("stream", 0, "stream ID")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *stream > 1<<32-1 {
		return fmt.Errorf("stream ID %d does not fit 32 bits", *stream)
	}
	opts.Stream = uint32(*stream)
	s, err := mcast.NewSender(opts)
	if err != nil {
		return err
	}
	sum, err := s.Run(ctx)
	if jerr := printJSON(stdout, sum); err == nil {
		err = jerr
	}
	return err
}

func recv(ctx context.Context, args []string, stdout io.Writer) error {
	var opts mcast.ReceiveOptions
	fs := newFlagSet("recv")
	fs.Var(addrFlag{&opts.Group}, "group", "multicast group")
	fs.IntVar(&opts.Port, "port", 0, "UDP port")
	fs.StringVar(&opts.Ifname, "ifname", "", "interface to join on (default: by route)")
	fs.Var((*addrList)(&opts.Sources), "source", "source-specific join (repeatable)")
	fs.Var((*addrList)(&opts.Blocks), "block", "any-source join, then block this source (repeatable)")
	fs.DurationVar(&opts.Duration, "duration", 0, "stop this long after joining")
	fs.Uint64Var(&opts.Count, "count", 0, "stop after this many datagrams")
	fs.DurationVar(&opts.Idle, "idle", 0, "stop after this long without datagrams, once one arrived")
	ready := fs.String("ready", "", "file to create once joined")
	if err := parse(fs, args); err != nil {
		return err
	}
	r, err := mcast.Listen(opts)
	if err != nil {
		return err
	}
	if *ready != "" {
		if err := os.WriteFile(*ready, nil, 0o644); err != nil {
			r.Close()
			return err
		}
	}
	report, err := r.Run(ctx)
	if jerr := printJSON(stdout, report); err == nil {
		err = jerr
	}
	return err
}

// parse parses flags and checks the ones every subcommand needs.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", fs.Name(), fs.Args())
	}
	for _, name := range []string{"group", "port"} {
		if f := fs.Lookup(name); f.Value.String() == "" || f.Value.String() == "0" {
			return fmt.Errorf("%s: -%s is required", fs.Name(), name)
		}
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}
