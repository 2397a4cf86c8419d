package etcd

import (
	"context"
	"log/slog"
	"maps"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/etcdembed"
	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

// TestEtcdDiscox: the initial list decodes every discox entry under the
// prefix and nothing outside it; puts, updates and deletes reach the table;
// a value that does not decode, or a key without an ID or a service, skips
// only its instance, counted and logged.
func TestEtcdDiscox(t *testing.T) {
	t.Parallel()
	srv := startEtcd(t)
	cli := newClient(t, srv.Endpoints())
	put(t, cli, "/services/web/10.0.0.1:80", "")
	put(t, cli, "/services/web/10.0.0.2:8080",
		`{"weight":5,"priority":2,"tags":["blue"],"meta":{"version":"1.2"},"zone":"a"}`)
	put(t, cli, "/services/web/10.0.0.3:80", "not json")
	put(t, cli, "/services/web", "{}")
	put(t, cli, "/services//10.0.0.8:80", "")
	put(t, cli, "/services2/web/10.0.0.9:80", "")
	put(t, cli, "/services/db/[2001:db8::1]:5432", "")

	h := newHarness(t, Config{Endpoints: srv.Endpoints(), Prefix: "/services", Format: "discox"})
	h.Run()
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80", "10.0.0.2:8080=10.0.0.2:8080")
	h.WaitEndpoints("db", "[2001:db8::1]:5432=2001:db8::1:5432")
	if st := h.Status(); st.State != cache.StateConnected || !st.Listed {
		t.Fatalf("after the list: state %s, listed %v", st.State, st.Listed)
	}
	in, _ := h.Instance("web", "10.0.0.2:8080")
	want := cache.Instance{Service: "web", ID: "10.0.0.2:8080", Address: "10.0.0.2", Port: 8080,
		Priority: 2, Weight: 5, Tags: []string{"blue"},
		Meta: map[string]string{"version": "1.2", "zone": "a"}, Source: "etcd"}
	if !in.Equal(&want) {
		t.Fatalf("decoded\n got %+v\nwant %+v", in, want)
	}
	if got := h.DecodeErrors(); got != 3 {
		t.Fatalf("decode errors after the list = %v, want 3 (a bad value, a key without an ID, one without a service)", got)
	}
	for _, key := range []string{"/services/web/10.0.0.3:80", "key=/services/web ", "/services//10.0.0.8:80"} {
		if got := h.LogLines("does not decode", key); got != 1 {
			t.Fatalf("%s logged %d times, want 1", key, got)
		}
	}
	if got := h.Relists(watcher.ReasonInitial); got != 1 {
		t.Fatalf("initial lists = %v, want 1", got)
	}

	// Live changes: add, update, delete.
	put(t, cli, "/services/web/10.0.0.4:80", "")
	put(t, cli, "/services/web/10.0.0.1:80", `{"weight":7}`)
	del(t, cli, "/services/web/10.0.0.2:8080")
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80", "10.0.0.4:80=10.0.0.4:80")
	h.WaitFor("updated weight", func() bool {
		in, ok := h.Instance("web", "10.0.0.1:80")
		return ok && in.Weight == 7
	}, func() string { in, _ := h.Instance("web", "10.0.0.1:80"); return in.Address })

	// A value that stops decoding removes that instance only; fixing it
	// brings it back.
	put(t, cli, "/services/web/10.0.0.1:80", `{"weight":"heavy"}`)
	h.WaitEndpoints("web", "10.0.0.4:80=10.0.0.4:80")
	if got := h.DecodeErrors(); got != 4 {
		t.Fatalf("decode errors = %v, want 4", got)
	}
	// A malformed key put again with another value is not counted again.
	put(t, cli, "/services/web", `{"a":1}`)
	put(t, cli, "/services/web/10.0.0.1:80", "")
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80", "10.0.0.4:80=10.0.0.4:80")

	// Keys under /services2 are not under /services/; the sentinel after
	// them proves the watch has passed their revision.
	put(t, cli, "/services2/web/10.0.0.10:80", "")
	put(t, cli, "/services/web/10.0.0.5:80", "")
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80", "10.0.0.4:80=10.0.0.4:80", "10.0.0.5:80=10.0.0.5:80")
	if got := h.DecodeErrors(); got != 4 {
		t.Fatalf("decode errors = %v, want still 4", got)
	}

	if h.Events(watcher.OpPut) < 4 || h.Events(watcher.OpDelete) < 2 {
		t.Fatalf("events put=%v delete=%v, want at least 4 and 2", h.Events(watcher.OpPut), h.Events(watcher.OpDelete))
	}
	if st := h.Status(); st.State != cache.StateConnected {
		t.Fatalf("state %s (%s), want connected", st.State, st.Err)
	}
}

// TestEtcdGRPC: entries written by etcd's own naming/endpoints manager (as
// gRPC's etcd resolver reads them) are listed and followed; an Op 1 value
// removes its instance.
func TestEtcdGRPC(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), watchertest.WaitTimeout)
	defer cancel()
	srv := startEtcd(t)
	cli := newClient(t, srv.Endpoints())
	em, err := endpoints.NewManager(cli, "/services/greeter")
	if err != nil {
		t.Fatal(err)
	}
	add := func(key, addr string, md any) {
		t.Helper()
		if err := em.AddEndpoint(ctx, key, endpoints.Endpoint{Addr: addr, Metadata: md}); err != nil {
			t.Fatalf("add endpoint %s: %v", key, err)
		}
	}
	add("/services/greeter/10.0.0.7:50051", "10.0.0.7:50051", map[string]any{"version": "2", "weight": 3})
	add("/services/greeter/b", "10.0.0.8:50051", nil)

	h := newHarness(t, Config{Endpoints: srv.Endpoints(), Prefix: "/services/", Format: "grpc"})
	h.Run()
	h.WaitEndpoints("greeter", "10.0.0.7:50051=10.0.0.7:50051", "b=10.0.0.8:50051")
	in, _ := h.Instance("greeter", "10.0.0.7:50051")
	if want := map[string]string{"version": "2", "weight": "3"}; !maps.Equal(in.Meta, want) || in.Weight != 1 || in.Priority != 1 {
		t.Fatalf("decoded %+v, want meta %v, weight 1, priority 1", in, want)
	}

	if err := em.DeleteEndpoint(ctx, "/services/greeter/b"); err != nil {
		t.Fatal(err)
	}
	add("/services/greeter/c", "greeter-3.internal:50051", "blue")
	h.WaitEndpoints("greeter", "10.0.0.7:50051=10.0.0.7:50051", "c=greeter-3.internal:50051")
	if in, _ := h.Instance("greeter", "c"); in.Meta["metadata"] != "blue" {
		t.Fatalf("string metadata: got %v", in.Meta)
	}

	put(t, cli, "/services/greeter/10.0.0.7:50051", `{"Op":1,"Addr":"10.0.0.7:50051"}`)
	h.WaitEndpoints("greeter", "c=greeter-3.internal:50051")
	if got := h.DecodeErrors(); got != 0 {
		t.Fatalf("decode errors = %v, want 0 (Op 1 is a removal, not an error)", got)
	}
}

// TestEtcdLeaseExpiry: an instance registered with a lease that is not kept
// alive disappears when etcd expires the lease (a DELETE event).
func TestEtcdLeaseExpiry(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), watchertest.WaitTimeout)
	defer cancel()
	srv := startEtcd(t)
	cli := newClient(t, srv.Endpoints())
	put(t, cli, "/services/web/10.0.0.1:80", "")

	h := newHarness(t, Config{Endpoints: srv.Endpoints(), Prefix: "/services"})
	h.Run()
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80")

	lease, err := cli.Grant(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	put(t, cli, "/services/web/10.0.0.2:80", "", clientv3.WithLease(lease.ID))
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80", "10.0.0.2:80=10.0.0.2:80")
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80")
}

// TestEtcdCompacted drives the real compacted path: a watch started from a
// revision that has since been compacted fails with ErrCompacted, and the
// source re-lists, replacing what it held with what etcd holds now, then
// follows changes again.
func TestEtcdCompacted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := startEtcd(t)
	cli := newClient(t, srv.Endpoints())
	put(t, cli, "/services/web/10.0.0.1:80", "")
	put(t, cli, "/services/web/10.0.0.2:80", "")

	h := newHarness(t, Config{Endpoints: srv.Endpoints(), Prefix: "/services"})
	r, rev := listedRun(ctx, t, h, h.Table)
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80", "10.0.0.2:80=10.0.0.2:80")

	// Changes the source does not see, then a compaction past them.
	put(t, cli, "/services/web/10.0.0.3:80", "")
	del(t, cli, "/services/web/10.0.0.1:80")
	resp, err := cli.Get(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}

	if reason := r.follow(ctx, rev); reason != reasonCompacted {
		t.Fatalf("follow from a compacted revision returned %q, want %q", reason, reasonCompacted)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.loop(ctx, reasonCompacted)
	}()
	defer func() { cancel(); <-done }()

	h.WaitEndpoints("web", "10.0.0.2:80=10.0.0.2:80", "10.0.0.3:80=10.0.0.3:80")
	if got := h.Relists(reasonCompacted); got != 1 {
		t.Fatalf("compacted re-lists = %v, want 1", got)
	}
	put(t, cli, "/services/web/10.0.0.4:80", "")
	h.WaitEndpoints("web", "10.0.0.2:80=10.0.0.2:80", "10.0.0.3:80=10.0.0.3:80", "10.0.0.4:80=10.0.0.4:80")
}

// TestEtcdOutage: when etcd stops, the source turns stale and keeps serving
// its last instances; changes made while it cannot see them (an instance
// added, one deleted) are picked up by the re-list after etcd is back on
// the same address, and the source is connected again.
func TestEtcdOutage(t *testing.T) {
	t.Parallel()
	srv := startEtcd(t)
	opts := srv.Options()
	cli := newClient(t, srv.Endpoints())
	put(t, cli, "/services/web/10.0.0.1:80", "")
	put(t, cli, "/services/web/10.0.0.2:80", "")

	h := newHarness(t, Config{Endpoints: srv.Endpoints(), Prefix: "/services", DialTimeout: time.Second})
	h.Run()
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80", "10.0.0.2:80=10.0.0.2:80")
	h.WaitState(cache.StateConnected)

	srv.Close()
	h.WaitState(cache.StateStale)
	if st := h.Status(); st.Err == "" || !st.Listed {
		t.Fatalf("stale status %+v, want an error and listed", st)
	}
	if got := h.Endpoints("web"); len(got) != 2 {
		t.Fatalf("stale source serves %v, want the last two instances", got)
	}

	// Change the data through another client port, out of the source's
	// sight.
	aside := opts
	aside.ClientAddr = ""
	srv2 := restartEtcd(t, aside)
	cli2 := newClient(t, srv2.Endpoints())
	put(t, cli2, "/services/web/10.0.0.3:80", "")
	del(t, cli2, "/services/web/10.0.0.1:80")
	cli2.Close()
	srv2.Close()
	if st := h.Status(); st.State != cache.StateStale || len(h.Endpoints("web")) != 2 {
		t.Fatalf("source changed while etcd was away from it: %s %v", st.State, h.Endpoints("web"))
	}

	// Back on the original address.
	srv3 := restartEtcd(t, opts)
	h.WaitEndpoints("web", "10.0.0.2:80=10.0.0.2:80", "10.0.0.3:80=10.0.0.3:80")
	h.WaitState(cache.StateConnected)
	if h.Relists(watcher.ReasonReconnect) < 1 {
		t.Fatalf("reconnect re-lists = %v, want at least 1", h.Relists(watcher.ReasonReconnect))
	}
	if got := h.RegistryErrors(); got < 1 {
		t.Fatalf("registry errors = %v, want at least 1", got)
	}

	// And it follows changes again.
	cli3 := newClient(t, srv3.Endpoints())
	put(t, cli3, "/services/web/10.0.0.4:80", "")
	del(t, cli3, "/services/web/10.0.0.2:80")
	h.WaitEndpoints("web", "10.0.0.3:80=10.0.0.3:80", "10.0.0.4:80=10.0.0.4:80")
}

// TestEtcdOneEndpointDown: with several endpoints, one that does not answer
// neither makes the source stale nor keeps it from listing and following.
func TestEtcdOneEndpointDown(t *testing.T) {
	t.Parallel()
	srv := startEtcd(t)
	cli := newClient(t, srv.Endpoints())
	put(t, cli, "/services/web/10.0.0.1:80", "")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()

	h := newHarness(t, Config{Endpoints: []string{dead, srv.Endpoints()[0]}, Prefix: "/services", DialTimeout: time.Second})
	h.Run()
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80")
	put(t, cli, "/services/web/10.0.0.2:80", "")
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80", "10.0.0.2:80=10.0.0.2:80")
	if st := h.Status(); st.State != cache.StateConnected {
		t.Fatalf("state %s (%s), want connected", st.State, st.Err)
	}
	if got := h.RegistryErrors(); got != 0 {
		t.Fatalf("registry errors = %v, want 0", got)
	}
}

// TestEtcdStartsBeforeEtcd: a source started while etcd is down reports
// stale, then lists once etcd comes up.
func TestEtcdStartsBeforeEtcd(t *testing.T) {
	t.Parallel()
	srv := startEtcd(t)
	opts := srv.Options()
	put(t, newClient(t, srv.Endpoints()), "/services/web/10.0.0.1:80", "")
	srv.Close()

	h := newHarness(t, Config{Endpoints: srv.Endpoints(), Prefix: "/services", DialTimeout: 500 * time.Millisecond})
	h.Run()
	h.WaitState(cache.StateStale)
	if h.Status().Listed {
		t.Fatal("listed without etcd")
	}
	restartEtcd(t, opts)
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80")
	h.WaitState(cache.StateConnected)
}

// TestEtcdPeriodicResync: the periodic re-list repairs a table that
// diverged from etcd (as lost watch events would leave it), and a value
// that does not decode is counted and logged once over every list, and
// again only after it decoded in between.
func TestEtcdPeriodicResync(t *testing.T) {
	t.Parallel()
	srv := startEtcd(t)
	cli := newClient(t, srv.Endpoints())
	put(t, cli, "/services/web/10.0.0.1:80", "")
	const bad = "/services/web/10.0.0.3:80"
	put(t, cli, bad, "{")

	h := newHarness(t, Config{Endpoints: srv.Endpoints(), Prefix: "/services", ResyncInterval: 200 * time.Millisecond})
	h.Run()
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80")

	h.Table.Put(h.Name, cache.Instance{Service: "web", ID: "bogus", Address: "10.9.9.9", Port: 1})
	h.Table.Delete(h.Name, "web", "10.0.0.1:80")
	h.WaitEndpoints("web", "bogus=10.9.9.9:1")
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80")
	if h.Relists(watcher.ReasonPeriodic) < 1 {
		t.Fatalf("periodic re-lists = %v, want at least 1", h.Relists(watcher.ReasonPeriodic))
	}

	h.WaitFor("three lists with the bad value", func() bool { return h.Relists(watcher.ReasonPeriodic) >= 3 },
		func() string { return strings.TrimSpace(h.Logs.String()) })
	if got := h.LogLines("does not decode", bad); got != 1 {
		t.Fatalf("bad value logged %d times over several lists, want 1", got)
	}
	if got := h.DecodeErrors(); got != 1 {
		t.Fatalf("bad value counted %v times over several lists, want 1", got)
	}
	put(t, cli, bad, "")
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80", "10.0.0.3:80=10.0.0.3:80")
	put(t, cli, bad, "{")
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80")
	h.WaitFor("bad value logged again", func() bool { return h.LogLines("does not decode", bad) == 2 },
		func() string { return strings.TrimSpace(h.Logs.String()) })
	if got := h.DecodeErrors(); got != 2 {
		t.Fatalf("bad value counted %v times, want 2 (it decoded in between)", got)
	}
}

func TestNewEtcdErrors(t *testing.T) {
	ok := Config{Name: "e", Endpoints: []string{"127.0.0.1:2379"}, Prefix: "/services", DialTimeout: time.Second}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"skydns without a zone", func(c *Config) { c.Format = "skydns" }, "etcd source e: format skydns needs the zone"},
		{"unknown format", func(c *Config) { c.Format = "json" }, `unknown format "json"`},
		{"no name", func(c *Config) { c.Name = "" }, "no name"},
		{"no endpoints", func(c *Config) { c.Endpoints = nil }, "no endpoints"},
		{"no prefix", func(c *Config) { c.Prefix = "" }, "no prefix"},
		{"password alone", func(c *Config) { c.Password = "x" }, "username and password"},
		{"no dial timeout", func(c *Config) { c.DialTimeout = 0 }, "dial timeout 0s"},
	} {
		cfg := ok
		tc.change(&cfg)
		_, err := New(cfg, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
	for _, format := range []string{"", "discox", "grpc"} {
		cfg := ok
		cfg.Format = format
		if _, err := New(cfg, nil, nil); err != nil {
			t.Errorf("format %q: %v", format, err)
		}
	}
}

// restartEtcd starts etcd with opts; the test closes it when it ends.
func restartEtcd(t *testing.T, opts etcdembed.Options) *etcdembed.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts.Logger = slog.New(slog.DiscardHandler)
	srv, err := etcdembed.Start(ctx, opts)
	if err != nil {
		t.Fatalf("restart etcd: %v", err)
	}
	t.Cleanup(srv.Close)
	return srv
}
