package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/config"
	"github.com/discodns/discodns/dnsserver"
	"github.com/discodns/discodns/state"
	"github.com/discodns/discodns/watcher"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeSource lists one instance of the service named by its
// configuration's Prefix (for instance "/web" lists web), then waits; on
// stop it calls stopped with its sink, if set.
type fakeSource struct {
	sc      config.Source
	stopped func(cache.Sink)
}

func (f *fakeSource) Name() string { return f.sc.Name }

func (f *fakeSource) Run(ctx context.Context, sink cache.Sink) error {
	sink.Replace(f.sc.Name, []cache.Instance{{Service: f.sc.Prefix[1:], ID: "i", Address: "10.0.0.1", Port: 80, Priority: 1, Weight: 1}})
	sink.SetState(f.sc.Name, cache.StateConnected, nil)
	<-ctx.Done()
	if f.stopped != nil {
		f.stopped(sink)
	}
	return nil
}

// fakeSources builds fake sources and counts the builds per source name;
// a source named "broken" fails to build.
type fakeSources struct {
	mu     sync.Mutex
	builds map[string]int
}

func (f *fakeSources) build(sc config.Source) (watcher.Source, error) {
	if sc.Name == "broken" {
		return nil, errors.New("broken source")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.builds == nil {
		f.builds = map[string]int{}
	}
	f.builds[sc.Name]++
	return &fakeSource{sc: sc}, nil
}

func fakeConfig(name, service string) config.Source {
	return config.Source{Name: name, Type: config.TypeEtcd, Zone: "svc.internal.", Prefix: "/" + service}
}

// services returns the table's service names, sorted.
func services(t *cache.Table) []string {
	var out []string
	for fqdn := range t.Snapshot().Services.All() {
		out = append(out, fqdn)
	}
	slices.Sort(out)
	return out
}

// waitServices waits until the table serves exactly want.
func waitServices(t *testing.T, table *cache.Table, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(services(table), want) {
		if time.Now().After(deadline) {
			t.Fatalf("services %v, want %v", services(table), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSourceSetApply: a reload keeps unchanged sources running, restarts
// changed ones, stops removed ones (their services go), and a source that
// cannot be built changes nothing.
func TestSourceSetApply(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	table := cache.NewTable(quiet)
	fakes := &fakeSources{}
	set := newSourceSet(ctx, table, fakes.build, quiet)
	defer func() { cancel(); set.wait() }()

	if err := set.apply([]config.Source{fakeConfig("a", "web"), fakeConfig("b", "db")}); err != nil {
		t.Fatal(err)
	}
	waitServices(t, table, "db.svc.internal.", "web.svc.internal.")

	// b changed: restarted; a unchanged: kept.
	if err := set.apply([]config.Source{fakeConfig("a", "web"), fakeConfig("b", "cache")}); err != nil {
		t.Fatal(err)
	}
	waitServices(t, table, "cache.svc.internal.", "web.svc.internal.")
	if fakes.builds["a"] != 1 || fakes.builds["b"] != 2 {
		t.Errorf("builds %v, want a once and b twice", fakes.builds)
	}

	// A source that cannot be built: an error, and nothing stops.
	if err := set.apply([]config.Source{fakeConfig("c", "other"), {Name: "broken"}}); err == nil {
		t.Fatal("a set with a broken source was applied")
	}
	if len(set.running) != 2 || set.running["a"] == nil || set.running["b"] == nil || fakes.builds["c"] != 1 {
		t.Errorf("after a failed apply: running %v, builds %v", set.running, fakes.builds)
	}
	waitServices(t, table, "cache.svc.internal.", "web.svc.internal.")

	// b removed: its services go.
	if err := set.apply([]config.Source{fakeConfig("a", "web")}); err != nil {
		t.Fatal(err)
	}
	waitServices(t, table, "web.svc.internal.")
	if len(set.running) != 1 {
		t.Errorf("running %v, want a only", set.running)
	}
}

// TestReloadRejected: a configuration that does not load, or whose source
// cannot be built, is rejected and counted, and the running sources and
// DNS options stay.
func TestReloadRejected(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	table := cache.NewTable(quiet)
	fakes := &fakeSources{}
	set := newSourceSet(ctx, table, fakes.build, quiet)
	defer func() { cancel(); set.wait() }()
	cfg := config.Default()
	cfg.Sources = []config.Source{fakeConfig("a", "web")}
	if err := set.apply(cfg.Sources); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	opts, err := dnsOptions(cfg, nil, nil, reg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	handler := dnsserver.NewHandler(opts, nil, quiet)
	r := &reloader{cfg: cfg, opts: opts, sources: set, handler: handler, reg: reg, log: quiet, result: newReloadMetric(reg)}

	bad := config.Default()
	bad.DNS.TTL = time.Minute
	bad.Sources = []config.Source{fakeConfig("a", "web"), {Name: "broken"}}
	// Valid, forwarding, but it would remove every source.
	forwardOnly := config.Default()
	forwardOnly.DNS.TTL = time.Minute
	forwardOnly.Forward.Upstreams = []string{"192.0.2.1:53"}
	r.file = "/etc/discodns.toml"
	var logs strings.Builder
	r.log = slog.New(slog.NewTextHandler(&logs, nil))
	for _, load := range []func() (*config.Config, error){
		func() (*config.Config, error) { return nil, errors.New("syntax error") },
		func() (*config.Config, error) { return bad, nil },
		func() (*config.Config, error) { return forwardOnly, nil },
	} {
		r.load = load
		r.reload()
	}
	if got := testutil.ToFloat64(r.result.WithLabelValues("error")); got != 3 {
		t.Errorf("rejected reloads counted %v, want 3", got)
	}
	if want := "config /etc/discodns.toml: no [[source]], while 1 run: a reload that removes every source is refused"; !strings.Contains(logs.String(), want) {
		t.Errorf("the reload that removes every source is not logged with %q:\n%s", want, logs.String())
	}
	if r.forwarding.Load() {
		t.Error("a rejected reload turned forwarding on for /readyz")
	}
	if r.cfg != cfg || r.opts.TTL != cfg.DNS.TTL || len(set.running) != 1 || fakes.builds["a"] != 1 {
		t.Errorf("a rejected reload changed the running state: ttl %v, running %v, builds %v", r.opts.TTL, set.running, fakes.builds)
	}

	good := config.Default()
	good.DNS.TTL = time.Minute
	good.Sources = []config.Source{fakeConfig("a", "web"), fakeConfig("b", "db")}
	r.load = func() (*config.Config, error) { return good, nil }
	r.reload()
	if got := testutil.ToFloat64(r.result.WithLabelValues("ok")); got != 1 || r.opts.TTL != time.Minute || len(set.running) != 2 {
		t.Errorf("good reload: ok %v, ttl %v, running %v", got, r.opts.TTL, set.running)
	}
	waitServices(t, table, "db.svc.internal.", "web.svc.internal.")
}

// TestDrainOrder: on shutdown DNS stops first (its port is closed by the
// time the sources stop), then HTTP, then the sources.
func TestDrainOrder(t *testing.T) {
	cfg := config.Default()
	cfg.DNS.Listen = []string{"127.0.0.1:0"}
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Sources = []config.Source{fakeConfig("a", "web")}
	ctx, cancel := context.WithCancel(context.Background())
	var dnsAddr, httpAddr net.Addr
	var atSourceStop []string
	d := &Daemon{
		Config: cfg,
		Log:    quiet,
		NewSource: func(sc config.Source, _ *watcher.Metrics, _ *slog.Logger) (watcher.Source, error) {
			return &fakeSource{sc: sc, stopped: func(cache.Sink) {
				for _, a := range []net.Addr{dnsAddr, httpAddr} {
					if c, err := net.DialTimeout("tcp", a.String(), 5*time.Second); err == nil {
						c.Close()
						atSourceStop = append(atSourceStop, a.String()+" open")
					}
				}
			}}, nil
		},
		Started: func(dns []net.Addr, http net.Addr) {
			dnsAddr, httpAddr = dns[1], http // dns: UDP then TCP
			cancel()
		},
	}
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if dnsAddr == nil {
		t.Fatal("never started")
	}
	if len(atSourceStop) > 0 {
		t.Errorf("when the sources stopped: %v; want DNS and HTTP closed first", atSourceStop)
	}
}

// TestStateFileWrittenLast: a change that a source applies as it stops
// (a watch response it was applying when the end came) is in the state
// file: the writer stops after the sources and the table's last
// publication.
func TestStateFileWrittenLast(t *testing.T) {
	cfg := config.Default()
	cfg.DNS.Listen = []string{"127.0.0.1:0"}
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.StateFile = filepath.Join(t.TempDir(), "state")
	cfg.Sources = []config.Source{fakeConfig("a", "web")}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := &Daemon{
		Config: cfg,
		Log:    quiet,
		NewSource: func(sc config.Source, _ *watcher.Metrics, _ *slog.Logger) (watcher.Source, error) {
			// One instance more, applied a moment after the end.
			return &fakeSource{sc: sc, stopped: func(sink cache.Sink) {
				time.Sleep(50 * time.Millisecond)
				sink.Put(sc.Name, cache.Instance{Service: "web", ID: "j", Address: "10.0.0.2", Port: 80, Priority: 1, Weight: 1})
			}}, nil
		},
		Started: func([]net.Addr, net.Addr) { cancel() },
	}
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := state.Read(cfg.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(f.Sources["a"].Instances); got != 2 {
		t.Errorf("the state file holds %d instances, want 2 (the one applied while stopping too)", got)
	}
}

// silentSource never lists.
type silentSource struct{ name string }

func (s silentSource) Name() string { return s.name }

func (s silentSource) Run(ctx context.Context, _ cache.Sink) error {
	<-ctx.Done()
	return nil
}

// TestNoDNSBeforeTheSourcesList: DNS is not bound while a source has not
// listed (the first snapshot, before the sources were added, holds no
// source and looks ready: it must not count).
func TestNoDNSBeforeTheSourcesList(t *testing.T) {
	cfg := config.Default()
	cfg.DNS.Listen = []string{"127.0.0.1:0"}
	cfg.DNS.StartupWait = time.Hour
	cfg.HTTP.Listen = ""
	cfg.Sources = []config.Source{fakeConfig("a", "web")}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Daemon{
		Config: cfg,
		Log:    quiet,
		NewSource: func(sc config.Source, _ *watcher.Metrics, _ *slog.Logger) (watcher.Source, error) {
			return silentSource{sc.Name}, nil
		},
		Started: func([]net.Addr, net.Addr) { t.Error("DNS bound before the source listed") },
	}
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	time.Sleep(500 * time.Millisecond) // long enough for the bug to show
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestForwardOnlyStartsAtOnce: with no source there is nothing to wait
// for: DNS binds at once, whatever startup_wait, and says it is
// forward-only.
func TestForwardOnlyStartsAtOnce(t *testing.T) {
	cfg := config.Default()
	cfg.DNS.Listen = []string{"127.0.0.1:0"}
	cfg.DNS.StartupWait = time.Hour
	cfg.HTTP.Listen = ""
	cfg.Forward.Upstreams = []string{"192.0.2.1:53"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs lockedLog
	started := make(chan struct{})
	d := &Daemon{Config: cfg, Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Started: func([]net.Addr, net.Addr) { close(started) }}
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("Run returned %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("DNS not bound within 30 s of a forward-only start (startup_wait is 1h)")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "forward-only") {
		t.Errorf("forward-only not logged:\n%s", logs.String())
	}
}

// lockedLog is a log destination safe for concurrent writers.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
