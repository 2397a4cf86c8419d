// Command discodns is a DNS server for service discovery: it mirrors service
// registries into memory and answers SRV, A, AAAA and TXT for their services.
//
//	discodns [serve] -config FILE   serve with a configuration file
//	discodns -dev                   serve with an embedded etcd and a demo service
//	discodns register -source ...   keep one instance registered (see -h)
//	discodns layouts -etcd ADDR ...  find the registry layouts a registry holds
//	discodns version                print the version
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/discodns/discodns/config"
	"github.com/discodns/discodns/daemon"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the exit, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, "discodns", version())
			return 0
		case "serve":
			args = args[1:]
		case "register":
			return runRegister(args[1:], stderr)
		case "layouts":
			return runLayouts(args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("discodns", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration `file` (TOML)")
	dev := fs.Bool("dev", false, "start an embedded etcd with a demo service; no set-up needed")
	dnsListen := fs.String("dns-listen", "", "override dns.listen with one `address` (IP:port)")
	httpListen := fs.String("http-listen", "", "override http.listen (`address`, \"\" keeps the config's)")
	stateFile := fs.String("state-file", "", "override state_file (`path`, \"\" keeps the config's)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: discodns [serve] -config FILE | discodns -dev | discodns register ... | discodns layouts ... | discodns version\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "discodns: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if !*dev && *configPath == "" {
		fmt.Fprintln(stderr, "discodns: -config FILE or -dev is required")
		fs.Usage()
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// The flags override the file's settings before it is checked. -dev
	// serves one etcd source, its embedded etcd's, whatever the file says;
	// StartDev sets its endpoint.
	override := func(c *config.Config) {
		if *dnsListen != "" {
			c.DNS.Listen = []string{*dnsListen}
		}
		if *httpListen != "" {
			c.HTTP.Listen = *httpListen
		}
		if *stateFile != "" {
			c.StateFile = *stateFile
		}
		if *dev {
			c.Sources = []config.Source{config.DefaultSource(config.TypeEtcd)}
		}
	}
	var cfg *config.Config
	if *configPath != "" {
		var err error
		if cfg, err = config.LoadWith(*configPath, override); err != nil {
			fmt.Fprintln(stderr, "discodns:", err)
			return 1
		}
	} else {
		cfg = config.Default()
		override(cfg)
	}
	log := cfg.Log.NewLogger(stderr)

	if *dev {
		closeDev, err := daemon.StartDev(ctx, cfg, stdout, log)
		if err != nil {
			fmt.Fprintln(stderr, "discodns -dev:", err)
			return 1
		}
		defer closeDev()
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "discodns:", err)
		return 1
	}
	var load func() (*config.Config, error)
	if *configPath != "" && !*dev {
		load = func() (*config.Config, error) { return config.LoadWith(*configPath, override) }
	}
	var handover *daemon.Handover
	if !*dev {
		// A hot restart waits for the new process to list its sources,
		// and a little more.
		var err error
		if handover, err = daemon.NewHandover(cfg.DNS.StartupWait+30*time.Second, log); err != nil {
			fmt.Fprintln(stderr, "discodns:", err)
			return 1
		}
	}
	if err := (&daemon.Daemon{Config: cfg, Load: load, File: *configPath, Log: log, Handover: handover, Version: version()}).Run(ctx); err != nil {
		fmt.Fprintln(stderr, "discodns:", err)
		return 1
	}
	return 0
}

// buildVersion, when set (go build -ldflags "-X main.buildVersion=v1.2.3"),
// is the version; otherwise the module's version from the build info.
var buildVersion string

func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
