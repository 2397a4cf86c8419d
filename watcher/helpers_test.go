package watcher

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/discodns/discodns/cache"
)

const (
	testZone = "svc.internal."
	// waitTimeout bounds every wait for the table to converge; it is a
	// deadline against hangs, not a latency requirement.
	waitTimeout = 15 * time.Second
)

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is one source writing into a real table.
type harness struct {
	t       *testing.T
	name    string
	table   *cache.Table
	metrics *Metrics
	logs    *logBuffer
	log     *slog.Logger
	src     Source
}

// newSourceHarness builds the source named name with build, logging to a
// buffer shown when the test fails.
func newSourceHarness(t *testing.T, name string, build func(*Metrics, *slog.Logger) (Source, error)) *harness {
	t.Helper()
	h := &harness{t: t, name: name, logs: &logBuffer{}}
	h.log = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("source log:\n%s", h.logs)
		}
	})
	h.table = cache.NewTable(h.log)
	h.table.AddSource(name, testZone)
	h.metrics = NewMetrics(prometheus.NewRegistry())
	src, err := build(h.metrics, h.log)
	if err != nil {
		t.Fatal(err)
	}
	h.src = src
	return h
}

// run starts the source; it is stopped, and must have returned nil, when
// the test ends.
func (h *harness) run() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.src.Run(ctx, h.table) }()
	h.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("Run returned %v", err)
			}
		case <-time.After(waitTimeout):
			h.t.Errorf("Run did not return after its context was canceled")
		}
	})
}

// endpoints describes the table's instances of service as sorted
// "id=address:port" strings.
func (h *harness) endpoints(service string) []string {
	svc := h.table.Snapshot().Services.Get(service + "." + testZone)
	if svc == nil {
		return nil
	}
	var out []string
	for _, ep := range svc.Endpoints {
		out = append(out, fmt.Sprintf("%s=%s:%d", ep.ID, ep.Address, ep.Port))
	}
	slices.Sort(out)
	return out
}

// instance returns the table's instance of service with id.
func (h *harness) instance(service, id string) (cache.Instance, bool) {
	svc := h.table.Snapshot().Services.Get(service + "." + testZone)
	if svc == nil {
		return cache.Instance{}, false
	}
	for _, ep := range svc.Endpoints {
		if ep.ID == id {
			return ep.Instance, true
		}
	}
	return cache.Instance{}, false
}

func (h *harness) status() cache.SourceStatus {
	for _, st := range h.table.Snapshot().Sources {
		if st.Name == h.name {
			return st
		}
	}
	h.t.Fatalf("source %s not in the table", h.name)
	return cache.SourceStatus{}
}

// waitEndpoints waits until service has exactly want (see endpoints).
func (h *harness) waitEndpoints(service string, want ...string) {
	h.t.Helper()
	slices.Sort(want)
	h.waitFor(fmt.Sprintf("%s = %v", service, want), func() bool {
		return slices.Equal(h.endpoints(service), want)
	}, func() string { return fmt.Sprint(h.endpoints(service)) })
}

// waitState waits until the source is in state.
func (h *harness) waitState(state cache.State) {
	h.t.Helper()
	h.waitFor("state "+state.String(), func() bool { return h.status().State == state },
		func() string { st := h.status(); return fmt.Sprintf("%s (%s)", st.State, st.Err) })
}

// waitFor polls cond until it holds or waitTimeout passes.
func (h *harness) waitFor(what string, cond func() bool, got func() string) {
	h.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; have %s", what, got())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) relists(reason string) float64 {
	return testutil.ToFloat64(h.metrics.relists.WithLabelValues(h.name, reason))
}

func (h *harness) registryErrors() float64 {
	return testutil.ToFloat64(h.metrics.errors.WithLabelValues(h.name))
}

func (h *harness) events(op string) float64 {
	return testutil.ToFloat64(h.metrics.events.WithLabelValues(h.name, op))
}
