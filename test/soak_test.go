package test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/consul/api"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discodns/discodns/etcdembed"
	"github.com/discodns/discodns/test/registries"
)

var soakFor = flag.Duration("soak", 90*time.Second,
	"how long TestSoak injects faults: the default is CI's short form; run the long form with -soak 30m")

// convergeWithin bounds the time the table may take to equal the
// registries again after a fault heals.
const convergeWithin = 60 * time.Second

// etcdProcess is etcd as a child process of TestSoak, so that it can be
// killed with SIGKILL and paused with SIGSTOP; it serves until killed.
func etcdProcess() error {
	srv, err := etcdembed.Start(context.Background(), etcdembed.Options{
		Dir: os.Getenv("DISCODNS_ETCD_DIR"), ClientAddr: os.Getenv("DISCODNS_ETCD_CLIENT"), PeerAddr: os.Getenv("DISCODNS_ETCD_PEER"),
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	select {} // until killed
}

// churner registers, changes and removes instances in one registry and
// keeps the model of what that registry holds. Its lock is held during
// every write, so that a fault or a convergence check can pause it.
type churner struct {
	name    string // the registry, and the service name prefix
	mu      sync.Mutex
	want    map[string]map[string]bool // service -> "addr:port"
	weights map[string]int             // "service/addr:port" -> weight
	put     func(ctx context.Context, service, addr string, port, weight int) error
	del     func(ctx context.Context, service, addr string, port int) error
	ops     int
	// pending is a write that failed: it may or may not have reached the
	// registry, so it is retried (writes are idempotent) before any other,
	// and the model follows once it succeeds.
	pending func(ctx context.Context) error
	apply   func()
}

// settle retries the pending write; the caller holds c.mu.
func (c *churner) settle(ctx context.Context) error {
	if c.pending == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.pending(ctx); err != nil {
		return err
	}
	c.apply()
	c.pending, c.apply = nil, nil
	c.ops++
	return nil
}

// write runs w; on success apply updates the model, on failure both wait
// in pending.
func (c *churner) write(ctx context.Context, w func(context.Context) error, apply func()) error {
	c.pending, c.apply = w, apply
	return c.settle(ctx)
}

const soakServices, soakMaxInstances = 6, 5

// step makes one random change; services keep at least one instance so
// that every name always exists.
func (c *churner) step(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending != nil {
		return c.settle(ctx)
	}
	svc := fmt.Sprintf("%s-s%d", c.name, rand.IntN(soakServices))
	insts := c.want[svc]
	switch op := rand.IntN(3); {
	case op == 0 && len(insts) < soakMaxInstances, len(insts) == 0:
		addr, port := fmt.Sprintf("10.%d.%d.%d", 1+slices.Index([]string{"etcd", "consul", "zk"}, c.name), rand.IntN(250), 1+rand.IntN(250)), 8000+rand.IntN(100)
		return c.write(ctx, func(ctx context.Context) error { return c.put(ctx, svc, addr, port, 1) }, func() {
			if c.want[svc] == nil {
				c.want[svc] = map[string]bool{}
			}
			c.want[svc][net.JoinHostPort(addr, strconv.Itoa(port))] = true
		})
	case op == 1 && len(insts) > 1:
		key := slices.Sorted(maps.Keys(insts))[rand.IntN(len(insts))]
		host, port, _ := net.SplitHostPort(key)
		p, _ := strconv.Atoi(port)
		return c.write(ctx, func(ctx context.Context) error { return c.del(ctx, svc, host, p) }, func() { delete(c.want[svc], key) })
	default:
		key := slices.Sorted(maps.Keys(insts))[rand.IntN(len(insts))]
		host, port, _ := net.SplitHostPort(key)
		p, _ := strconv.Atoi(port)
		w := 1 + rand.IntN(100)
		return c.write(ctx, func(ctx context.Context) error { return c.put(ctx, svc, host, p, w) }, func() { c.weights[svc+"/"+key] = w })
	}
}

// fill gives every service its first instance.
func (c *churner) fill(t *testing.T) {
	for s := range soakServices {
		for {
			if err := c.step(context.Background()); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			c.mu.Lock()
			n := len(c.want[fmt.Sprintf("%s-s%d", c.name, s)])
			c.mu.Unlock()
			if n > 0 {
				break
			}
		}
	}
}

// run changes the registry every interval until ctx ends. A failed write
// (a fault began) leaves the model unchanged; the registry might hold the
// write anyway, which the next convergence check shows as a mismatch
// until the churner writes that instance again, so faults pause churners
// before they strike.
func (c *churner) run(ctx context.Context, interval time.Duration, failures *int) {
	for ctx.Err() == nil {
		if err := c.step(ctx); err != nil && ctx.Err() == nil {
			*failures++
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}

// model merges the churners' models as FQDN -> sorted "addr:port". The
// caller holds every churner's lock, or no churner runs.
func model(churners []*churner) map[string][]string {
	out := map[string][]string{}
	for _, c := range churners {
		for svc, insts := range c.want {
			out[svc+".svc.internal."] = slices.Sorted(maps.Keys(insts))
		}
	}
	return out
}

// dnsperfTotals accumulates dnsperf's reports.
type dnsperfTotals struct {
	mu             sync.Mutex
	sent, lost     int
	rcodes         map[string]int
	runs, failures int
	// bad lists the queries that got SERVFAIL or NXDOMAIN, with the
	// time their dnsperf run started.
	bad []string
}

var (
	sentRe   = regexp.MustCompile(`Queries sent:\s+(\d+)`)
	lostRe   = regexp.MustCompile(`Queries lost:\s+(\d+)`)
	rcodesRe = regexp.MustCompile(`Response codes:\s+(.*)`)
	rcodeRe  = regexp.MustCompile(`([A-Z]+) (\d+)`)
)

func (d *dnsperfTotals) add(started time.Time, proto, out string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.runs++
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "> SERVFAIL ") || strings.HasPrefix(line, "> NXDOMAIN ") {
			d.bad = append(d.bad, fmt.Sprintf("%s run started %s: %s", proto, started.Format("15:04:05.000"), line))
		}
	}
	if m := sentRe.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		d.sent += n
	} else {
		d.failures++
	}
	if m := lostRe.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		d.lost += n
	}
	if m := rcodesRe.FindStringSubmatch(out); m != nil {
		for _, rc := range rcodeRe.FindAllStringSubmatch(m[1], -1) {
			n, _ := strconv.Atoi(rc[2])
			d.rcodes[rc[1]] += n
		}
	}
}

// load runs dnsperf over proto ("udp" or "tcp") in 5-second runs until ctx
// ends, so that a discodns restart only costs the run it falls in.
func load(ctx context.Context, t *testing.T, server, queries, proto string, totals *dnsperfTotals) {
	host, port, _ := net.SplitHostPort(server)
	for ctx.Err() == nil {
		cmd := exec.CommandContext(ctx, need(t, "dnsperf"), "-s", host, "-p", port, "-m", proto, "-d", queries,
			"-l", "5", "-Q", "1000", "-c", "2", "-t", "2", "-v")
		started := time.Now()
		out, _ := cmd.CombinedOutput()
		if ctx.Err() == nil {
			totals.add(started, proto, string(out))
		}
	}
}

// fault is one fault of the schedule.
type fault struct {
	name   string
	pause  []string // churners paused while it lasts
	inject func()
}

// TestSoak runs etcd, Consul and ZooKeeper sources at once under churn and
// DNS load (dnsperf over UDP and TCP) while faults strike on a schedule,
// and checks that no query for a name that exists gets SERVFAIL or
// NXDOMAIN, that the table equals every registry within convergeWithin
// after each fault, and that goroutines and memory do not grow. It prints
// a report; -soak sets how long faults go on.
func TestSoak(t *testing.T) {
	need(t, "dnsperf")
	// etcd as a child process, so that it can be killed and paused.
	etcdDir := t.TempDir()
	etcdClient := fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t))
	etcdReady := func() bool {
		c, err := net.DialTimeout("tcp", etcdClient, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	etcdHelper, etcdArgv := helperArgv("etcd")
	etcdProc := registries.StartCommand(t, "etcd", []string{etcdHelper,
		"DISCODNS_ETCD_DIR=" + etcdDir, "DISCODNS_ETCD_CLIENT=" + etcdClient,
		"DISCODNS_ETCD_PEER=" + fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t)),
	}, 30*time.Second, etcdReady, etcdArgv...)
	etcdCli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdClient}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer etcdCli.Close()
	consul := registries.StartConsulServer(t)
	consulCli := consulClient(t, consul)
	zkServer := registries.StartZooKeeper(t)
	zkCli := registries.ZKClient(t, zkServer.Addr())
	// discodns reaches ZooKeeper through a proxy that a fault can cut.
	zkProxy := registries.StartProxy(t, zkServer.Addr())

	churners := []*churner{
		{name: "etcd",
			put: func(ctx context.Context, svc, addr string, port, weight int) error {
				_, err := etcdCli.Put(ctx, fmt.Sprintf("/services/%s/%s:%d", svc, addr, port), fmt.Sprintf(`{"weight":%d}`, weight))
				return err
			},
			del: func(ctx context.Context, svc, addr string, port int) error {
				_, err := etcdCli.Delete(ctx, fmt.Sprintf("/services/%s/%s:%d", svc, addr, port))
				return err
			}},
		{name: "consul",
			put: func(ctx context.Context, svc, addr string, port, weight int) error {
				return consulCli.Agent().ServiceRegisterOpts(&api.AgentServiceRegistration{
					ID: fmt.Sprintf("%s-%s-%d", svc, addr, port), Name: svc, Address: addr, Port: port,
					Weights: &api.AgentWeights{Passing: weight, Warning: 1},
				}, api.ServiceRegisterOpts{}.WithContext(ctx))
			},
			del: func(ctx context.Context, svc, addr string, port int) error {
				err := consulCli.Agent().ServiceDeregisterOpts(fmt.Sprintf("%s-%s-%d", svc, addr, port), (&api.QueryOptions{}).WithContext(ctx))
				var status api.StatusError
				if errors.As(err, &status) && status.Code == 404 {
					return nil // an earlier attempt that timed out went through
				}
				return err
			}},
		{name: "zk",
			put: func(_ context.Context, svc, addr string, port, weight int) error {
				p := fmt.Sprintf("/services/%s/%s:%d", svc, addr, port)
				data := []byte(fmt.Sprintf(`{"weight":%d}`, weight))
				if _, err := zkCli.Create(filepath.Dir(p), nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
					return err
				}
				if _, err := zkCli.Create(p, data, 0, zk.WorldACL(zk.PermAll)); err == zk.ErrNodeExists {
					_, err = zkCli.Set(p, data, -1)
					return err
				} else {
					return err
				}
			},
			del: func(_ context.Context, svc, addr string, port int) error {
				err := zkCli.Delete(fmt.Sprintf("/services/%s/%s:%d", svc, addr, port), -1)
				if errors.Is(err, zk.ErrNoNode) {
					return nil // an earlier attempt went through
				}
				return err
			}},
	}
	registries.ZKPut(t, zkCli, "/services", "", 0)
	byName := map[string]*churner{}
	for _, c := range churners {
		c.want, c.weights = map[string]map[string]bool{}, map[string]int{}
		byName[c.name] = c
		c.fill(t)
	}

	d := startDiscodns(t, fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]
zone = "svc.internal."
max_tcp_connections = 64

[http]
listen = "{{HTTP}}"

[[source]]
name = "etcd"
type = "etcd"
endpoints = [%q]
resync_interval = "1m"

[[source]]
name = "consul"
type = "consul"
address = %q

[[source]]
name = "zk"
type = "zookeeper"
servers = [%q]
session_timeout = "4s"
`, etcdClient, consul.Addr(), zkProxy.Addr()))
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	// converged pauses every churner and waits until the table equals the
	// model; it returns the time that took.
	converged := func(what string) time.Duration {
		t.Helper()
		for _, c := range churners {
			c.mu.Lock()
		}
		defer func() {
			for _, c := range churners {
				c.mu.Unlock()
			}
		}()
		// A write that failed during the fault is settled first.
		for _, c := range churners {
			deadline := time.Now().Add(convergeWithin)
			for c.settle(context.Background()) != nil {
				if time.Now().After(deadline) {
					t.Fatalf("after %s: %s writes keep failing", what, c.name)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		want := model(churners)
		start := time.Now()
		var last string
		for time.Since(start) < convergeWithin {
			got, err := d.services()
			if err == nil {
				delete(got, "consul.svc.internal.") // Consul's own service
				for k := range got {
					slices.Sort(got[k])
				}
				if fmt.Sprint(got) == fmt.Sprint(want) {
					return time.Since(start)
				}
				last = fmt.Sprintf("table %v\nmodel %v", got, want)
			} else {
				last = err.Error()
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("after %s: the table did not converge within %v:\n%s", what, convergeWithin, last)
		return 0
	}
	converged("start")

	// DNS load over every name, all of which exist throughout.
	queries := filepath.Join(t.TempDir(), "queries")
	var qb strings.Builder
	for fqdn := range model(churners) {
		fmt.Fprintf(&qb, "%s A\n_%s._tcp.svc.internal. SRV\n", fqdn, strings.TrimSuffix(fqdn, ".svc.internal."))
	}
	os.WriteFile(queries, []byte(qb.String()), 0o644)
	totals := &dnsperfTotals{rcodes: map[string]int{}}
	var loadWG sync.WaitGroup
	for _, proto := range []string{"udp", "tcp"} {
		loadWG.Go(func() { load(ctx, t, d.dns, queries, proto, totals) })
	}
	churnFailures := make([]int, len(churners))
	var churnWG sync.WaitGroup
	for i, c := range churners {
		churnWG.Go(func() { c.run(ctx, 50*time.Millisecond, &churnFailures[i]) })
	}

	pauseFor := func(names []string, f func()) {
		for _, n := range names {
			byName[n].mu.Lock()
		}
		defer func() {
			for _, n := range names {
				byName[n].mu.Unlock()
			}
		}()
		f()
	}
	down := func(p interface{ Stop() }, start func(), gap time.Duration) func() {
		return func() {
			p.Stop()
			time.Sleep(gap)
			start()
		}
	}
	paused := func(p interface{ Signal(syscall.Signal) error }, gap time.Duration) func() {
		return func() {
			p.Signal(syscall.SIGSTOP)
			time.Sleep(gap)
			p.Signal(syscall.SIGCONT)
		}
	}
	faults := []fault{
		{"etcd kill -9, 3 s down", []string{"etcd"}, down(etcdProc, etcdProc.Start, 3*time.Second)},
		{"consul kill -9, 3 s down", []string{"consul"}, down(consul, consul.Start, 3*time.Second)},
		{"zookeeper kill -9, 3 s down", []string{"zk"}, down(zkServer, zkServer.Start, 3*time.Second)},
		{"zookeeper SIGSTOP 6 s (session 4 s)", []string{"zk"}, paused(zkServer, 6*time.Second)},
		{"zookeeper cut off 6 s (session 4 s)", nil, func() {
			zkProxy.Cut()
			time.Sleep(6 * time.Second)
			zkProxy.Restore()
		}},
		{"consul SIGSTOP 6 s", []string{"consul"}, paused(consul, 6*time.Second)},
		{"etcd SIGSTOP 6 s", []string{"etcd"}, paused(etcdProc, 6*time.Second)},
		{"discodns SIGHUP reload", nil, func() {
			d.cmd.Process.Signal(syscall.SIGHUP)
			time.Sleep(time.Second)
		}},
		{"etcd compaction under a stopped discodns", nil, func() {
			d.cmd.Process.Signal(syscall.SIGSTOP)
			for range 50 {
				byName["etcd"].step(ctx)
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if resp, err := etcdCli.Get(cctx, "/"); err == nil {
				etcdCli.Compact(cctx, resp.Header.Revision)
			}
			time.Sleep(time.Second)
			d.cmd.Process.Signal(syscall.SIGCONT)
		}},
	}

	// discodns itself restarts once, first; the baseline for growth is
	// taken after it.
	restartStart := time.Now()
	d.restart()
	d.waitReady()
	type result struct {
		fault string
		took  time.Duration
	}
	results := []result{{"discodns SIGTERM and restart", converged("discodns restart")}}
	t.Logf("discodns restart: ready again after %v", time.Since(restartStart))
	time.Sleep(2 * time.Second) // let the restarted process settle
	goroutines0, rss0 := d.gauge("go_goroutines"), d.gauge("process_resident_memory_bytes")

	deadline := time.Now().Add(*soakFor)
	for i := 0; i < len(faults) || time.Now().Before(deadline); i++ {
		f := faults[i%len(faults)]
		pauseFor(f.pause, f.inject)
		results = append(results, result{f.name, converged(f.name)})
		time.Sleep(2 * time.Second) // churn and load between faults
	}
	stop()
	loadWG.Wait()
	churnWG.Wait()
	converged("the end")
	goroutines1, rss1 := d.gauge("go_goroutines"), d.gauge("process_resident_memory_bytes")

	// The report.
	var r strings.Builder
	byFault := map[string][]time.Duration{}
	var names []string
	for _, res := range results {
		if byFault[res.fault] == nil {
			names = append(names, res.fault)
		}
		byFault[res.fault] = append(byFault[res.fault], res.took)
	}
	fmt.Fprintf(&r, "soak report (-soak %v)\n", *soakFor)
	fmt.Fprintf(&r, "%-42s %6s %12s %12s\n", "fault", "count", "converge max", "converge p99")
	for _, n := range names {
		ds := byFault[n]
		fmt.Fprintf(&r, "%-42s %6d %12v %12v\n", n, len(ds), slices.Max(ds).Round(time.Millisecond), percentile(ds, 99).Round(time.Millisecond))
	}
	ops := 0
	for i, c := range churners {
		ops += c.ops
		fmt.Fprintf(&r, "churn %-8s %6d changes, %d failed writes during faults\n", c.name, c.ops, churnFailures[i])
	}
	fmt.Fprintf(&r, "queries sent %d (dnsperf, %d runs over UDP and TCP), lost %d; responses by rcode %v\n",
		totals.sent, totals.runs, totals.lost, totals.rcodes)
	fmt.Fprintf(&r, "goroutines %v -> %v, RSS %.1f MB -> %.1f MB\n", goroutines0, goroutines1, rss0/1e6, rss1/1e6)
	t.Log("\n" + r.String())
	os.WriteFile(filepath.Join(os.TempDir(), "discodns-soak-report.txt"), []byte(r.String()), 0o644)

	if n := totals.rcodes["SERVFAIL"] + totals.rcodes["NXDOMAIN"]; n > 0 {
		t.Errorf("%d queries for names that exist got SERVFAIL or NXDOMAIN:\n%s", n, strings.Join(totals.bad, "\n"))
	}
	if totals.sent == 0 || totals.rcodes["NOERROR"] == 0 {
		t.Errorf("no DNS load ran: %+v", totals)
	}
	if goroutines1 > goroutines0*1.25+20 {
		t.Errorf("goroutines grew from %v to %v", goroutines0, goroutines1)
	}
	if rss1 > rss0*1.5+50e6 {
		t.Errorf("resident memory grew from %.1f MB to %.1f MB", rss0/1e6, rss1/1e6)
	}
	if v, err := d.metric(`discodns_config_reloads_total{result="ok"}`); err != nil || v == "0" {
		t.Errorf("no SIGHUP reload succeeded: %q %v", v, err)
	}
	if !strings.Contains(d.logs(), "new zookeeper session") {
		t.Errorf("the ZooKeeper session never expired: the cut-off fault did not bite")
	}
}
