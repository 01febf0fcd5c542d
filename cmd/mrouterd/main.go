// Command mrouterd is the multicast router daemon: it runs in the foreground, reloads
// its config on SIGHUP (and, with --watch-config, when the file changes) and removes
// everything it installed on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mrouterd/mrouterd/conf"
	"github.com/mrouterd/mrouterd/router"
	"github.com/mrouterd/mrouterd/router/api"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type options struct {
	config, socket      string
	configGiven         bool
	lastGood            string
	check, showVersion  bool
	watchConfig         bool
	logLevel, logFormat string
}

// defaultLastGood is where the last good config is kept by default: in the state
// directory systemd gives the daemon (StateDirectory=, as $STATE_DIRECTORY), else
// nowhere, so that daemons sharing a host outside systemd never share a copy.
func defaultLastGood() string {
	dir, _, _ := strings.Cut(os.Getenv("STATE_DIRECTORY"), ":")
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, "last-good.toml")
}

func parseFlags(args []string) (options, error) {
	var o options
	fset := flag.NewFlagSet("mrouterd", flag.ContinueOnError)
	fset.SetOutput(os.Stderr)
	for _, name := range []string{"c", "config"} {
		fset.StringVar(&o.config, name, conf.DefaultPath, "config `file` (embedded defaults when the default file is absent)")
	}
	for _, name := range []string{"s", "socket"} {
		fset.StringVar(&o.socket, name, "", "control socket `path` (default "+api.DefaultSocket+", or control.socket from the config)")
	}
	fset.StringVar(&o.lastGood, "last-good", defaultLastGood(),
		"`file` where the last config that ran is kept, and run when the config file is bad; empty for none (default $STATE_DIRECTORY/last-good.toml)")
	fset.BoolVar(&o.check, "check", false, "validate the config, print the effective config and exit")
	fset.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fset.BoolVar(&o.watchConfig, "watch-config", false,
		"reload when the config file's contents change, as on SIGHUP (for a file a ConfigMap mounts)")
	fset.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fset.StringVar(&o.logFormat, "log-format", "text", "text or json")
	if err := fset.Parse(args); err != nil {
		return o, err
	}
	if fset.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fset.Arg(0))
	}
	fset.Visit(func(f *flag.Flag) {
		if f.Name == "c" || f.Name == "config" {
			o.configGiven = true
		}
	})
	return o, nil
}

// loadConfig reads the config file. The default path may be absent (the embedded
// defaults apply then); a path given on the command line must exist.
func (o options) loadConfig() (*conf.Config, error) {
	cfg, err := conf.Load(o.config)
	if err != nil && !o.configGiven && errors.Is(err, fs.ErrNotExist) {
		return conf.Default(), nil
	}
	return cfg, err
}

// startConfig is the config the daemon starts with: the file's, or when the file
// exists but is bad, the last good one if one was saved. The file's errors are
// printed as they would be without a saved copy.
func (o options) startConfig(stderr io.Writer, log *slog.Logger) (cfg *conf.Config, fallback bool, err error) {
	cfg, err = o.loadConfig()
	if err == nil || o.lastGood == "" || errors.Is(err, fs.ErrNotExist) {
		return cfg, false, err
	}
	good, goodErr := conf.Load(o.lastGood)
	if goodErr != nil {
		if !errors.Is(goodErr, fs.ErrNotExist) {
			log.Error("the last good config cannot be used either", "file", o.lastGood, "err", goodErr)
		}
		return nil, false, err
	}
	fmt.Fprintln(stderr, "mrouterd:", err)
	log.Error("config file rejected; running the last good config until a reload succeeds",
		"config", o.config, "last_good", o.lastGood)
	return good, true, nil
}

// keepLastGood saves a config that runs as the last good one. The copy itself is
// not saved again, nor are the embedded defaults, which need no copy.
func (o options) keepLastGood(c *conf.Config, log *slog.Logger) {
	if o.lastGood == "" || c.File == "" || c.File == o.lastGood {
		return
	}
	if err := conf.SaveLastGood(o.lastGood, c); err != nil {
		log.Warn("save the last good config", "file", o.lastGood, "err", err)
	}
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, hopts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "mrouterd:", err)
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if o.showVersion {
		fmt.Println("mrouterd", version)
		return nil
	}
	if o.check {
		cfg, err := o.loadConfig()
		if err != nil {
			return err
		}
		fmt.Print(cfg.TOML())
		return nil
	}
	log, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	// The watch starts from the file as it is before the daemon reads it, so that a
	// change made while it starts is reloaded, not missed.
	var watch *configWatch
	if o.watchConfig {
		watch = newConfigWatch(o.config, log)
	}
	cfg, fallback, err := o.startConfig(os.Stderr, log)
	if err != nil {
		return err
	}
	// The table the program before this one handed over, in a restart in place, or
	// the one systemd's file descriptor store kept across a stop or a crash.
	sd := newNotifier()
	store, stored, err := openFDStore(sd, log)
	if err != nil {
		return err
	}
	handoff, err := router.Inherit()
	if err != nil {
		return err
	}
	if handoff == nil {
		handoff = stored
	}
	var checkRestart func(context.Context) (string, error)
	var replaced func() bool
	if exe, err := os.Executable(); err == nil {
		checkRestart, replaced = o.restartCheck(exe), replacedOnDisk(exe)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	for {
		opts := router.Options{
			Config: cfg, Socket: o.socket, Version: version, Logger: log, Load: o.loadConfig,
			Applied: func(c *conf.Config) { o.keepLastGood(c, log) },
			Adopt:   handoff, CheckRestart: checkRestart, Replaced: replaced,
		}
		if store != nil {
			opts.Handoffs, opts.KeepTable = store.update, store.holds
		}
		r, err := router.New(opts)
		if err != nil {
			return err
		}
		err = serve(ctx, r, sd, store, watch, log, fallback, o.config)
		if !errors.Is(err, router.ErrRestart) {
			sd.notify("STOPPING=1")
			return err
		}
		handoff = r.Handoff()
		store.forget() // the next program stores the table anew
		sd.notify(fmt.Sprintf("RELOADING=1\nSTATUS=restarting in place\nMONOTONIC_USEC=%d", monotonicMicros()))
		err = reexec(handoff)
		// The exec failed, and this program is still the one running: it takes the
		// table back, as the next would have.
		log.Error("restart in place: exec failed; serving on", "err", err)
		if cfg, err = o.loadConfig(); err != nil {
			return err
		}
	}
}

// serve runs the router until it stops or hands over, reloading it on SIGHUP (and
// config changes, with --watch-config) and restarting it in place on SIGUSR2.
func serve(ctx context.Context, r *router.Router, sd *notifier, store *fdStore, watch *configWatch, log *slog.Logger, fallback bool, config string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload(ctx, r, sd, log)
			case <-usr2:
				if _, err := r.Restart(ctx); err != nil {
					log.Error("SIGUSR2", "err", err)
				}
			}
		}
	}()
	go sd.watchdog(ctx, r.Ping)
	if watch != nil {
		// A change is a SIGHUP: the same reload, and one already pending takes it in.
		go watch.run(ctx, watchInterval, func() {
			select {
			case hup <- syscall.SIGHUP:
			default:
			}
		})
	}

	status := "STATUS=forwarding"
	if fallback {
		status = "STATUS=forwarding with the last good config: " + config + " is bad"
	}
	return r.Run(ctx, func() {
		if store != nil {
			store.keep(r)
		}
		sd.notify("READY=1\n" + status)
	})
}

// restartCheck vets a restart in place before anything is handed over: the program
// on disk must run, and accept the config file. It returns the program's version.
func (o options) restartCheck(exe string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		out, err := exec.CommandContext(ctx, exe, "--version").Output()
		if err != nil {
			return "", fmt.Errorf("%s --version: %w", exe, err)
		}
		next := strings.TrimPrefix(strings.TrimSpace(string(out)), "mrouterd ")
		args := []string{"--check"}
		if o.configGiven {
			args = append(args, "--config", o.config)
		}
		if out, err := exec.CommandContext(ctx, exe, args...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("%s --check: %w: %s", exe, err, strings.TrimSpace(string(out)))
		}
		return next, nil
	}
}

// replacedOnDisk reports whether exe is no longer the program running, as after an
// upgrade. The running program's file is read through /proc, which reaches it
// even when the upgrade deleted it.
func replacedOnDisk(exe string) func() bool {
	return func() bool {
		running, err := os.Stat("/proc/self/exe")
		if err != nil {
			return false
		}
		onDisk, err := os.Stat(exe)
		return err == nil && !os.SameFile(running, onDisk)
	}
}

// reexec replaces this program with the one on disk, with the same arguments,
// handing it the table; it returns only when the exec fails.
func reexec(h *router.Handoff) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return syscall.Exec(exe, os.Args, append(os.Environ(), h.Env()))
}

// reload reloads the config, or restarts in place when an upgrade replaced the
// program; the new program then tells systemd it is ready.
func reload(ctx context.Context, r *router.Router, sd *notifier, log *slog.Logger) {
	sd.notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicMicros()))
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rl, err := r.ReloadOrRestart(ctx)
	switch {
	case err != nil:
		log.Error("reload failed; keeping the running config", "err", err)
	case rl.Restart != nil:
		log.Info("the program on disk is new: restarting in place", "from", rl.Restart.From, "to", rl.Restart.To)
		return
	default:
		log.Info("reloaded", "changes", len(rl.Summary))
	}
	sd.notify("READY=1")
}
