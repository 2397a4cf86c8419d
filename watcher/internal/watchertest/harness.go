// Package watchertest runs a watcher.Source against a real table, and
// checks decoders, for the tests of the watcher packages.
package watchertest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

const (
	// Zone is the zone of the source in the table.
	Zone = "svc.internal."
	// WaitTimeout bounds every wait for the table to converge; it is a
	// deadline against hangs, not a latency requirement.
	WaitTimeout = 15 * time.Second
)

// LogBuffer collects log output safely across goroutines.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Harness is one source writing into a real table.
type Harness struct {
	T       *testing.T
	Name    string
	Table   *cache.Table
	Metrics *watcher.Metrics
	Logs    *LogBuffer
	Log     *slog.Logger
	Src     watcher.Source
	reg     *prometheus.Registry
}

// New builds the source named name with build, logging to a buffer shown
// when the test fails.
func New(t *testing.T, name string, build func(*watcher.Metrics, *slog.Logger) (watcher.Source, error)) *Harness {
	t.Helper()
	h := &Harness{T: t, Name: name, Logs: &LogBuffer{}, reg: prometheus.NewRegistry()}
	h.Log = slog.New(slog.NewTextHandler(h.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("source log:\n%s", h.Logs)
		}
	})
	h.Table = cache.NewTable(h.Log)
	h.Table.AddSource(name, Zone)
	h.Metrics = watcher.NewMetrics(h.reg)
	src, err := build(h.Metrics, h.Log)
	if err != nil {
		t.Fatal(err)
	}
	h.Src = src
	return h
}

// Run starts the source; it is stopped, and must have returned nil, when
// the test ends.
func (h *Harness) Run() {
	h.T.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Src.Run(ctx, h.Table) }()
	h.T.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.T.Errorf("Run returned %v", err)
			}
		case <-time.After(WaitTimeout):
			h.T.Errorf("Run did not return after its context was canceled")
		}
	})
}

// Endpoints describes the table's instances of service as sorted
// "id=address:port" strings.
func (h *Harness) Endpoints(service string) []string {
	svc := h.Table.Snapshot().Services.Get(service + "." + Zone)
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

// Instance returns the table's instance of service with id.
func (h *Harness) Instance(service, id string) (cache.Instance, bool) {
	svc := h.Table.Snapshot().Services.Get(service + "." + Zone)
	if svc == nil {
		return cache.Instance{}, false
	}
	for _, ep := range svc.Endpoints {
		if ep.ID == id {
			return *ep.Instance, true
		}
	}
	return cache.Instance{}, false
}

// Status is the source's status in the table.
func (h *Harness) Status() cache.SourceStatus {
	for _, st := range h.Table.Snapshot().Sources {
		if st.Name == h.Name {
			return st
		}
	}
	h.T.Fatalf("source %s not in the table", h.Name)
	return cache.SourceStatus{}
}

// WaitEndpoints waits until service has exactly want (see Endpoints).
func (h *Harness) WaitEndpoints(service string, want ...string) {
	h.T.Helper()
	slices.Sort(want)
	h.WaitFor(fmt.Sprintf("%s = %v", service, want), func() bool {
		return slices.Equal(h.Endpoints(service), want)
	}, func() string { return fmt.Sprint(h.Endpoints(service)) })
}

// WaitState waits until the source is in state.
func (h *Harness) WaitState(state cache.State) {
	h.T.Helper()
	h.WaitFor("state "+state.String(), func() bool { return h.Status().State == state },
		func() string { st := h.Status(); return fmt.Sprintf("%s (%s)", st.State, st.Err) })
}

// WaitFor polls cond until it holds or WaitTimeout passes; got describes
// what there is instead.
func (h *Harness) WaitFor(what string, cond func() bool, got func() string) {
	h.T.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.T.Fatalf("timed out waiting for %s; have %s", what, got())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Relists is the source's discodns_watcher_relists_total for reason.
func (h *Harness) Relists(reason string) float64 {
	return h.counter("discodns_watcher_relists_total", "reason", reason)
}

// DecodeErrors is the source's discodns_watcher_decode_errors_total.
func (h *Harness) DecodeErrors() float64 {
	return h.counter("discodns_watcher_decode_errors_total")
}

// RegistryErrors is the source's discodns_watcher_errors_total.
func (h *Harness) RegistryErrors() float64 {
	return h.counter("discodns_watcher_errors_total")
}

// Events is the source's discodns_watcher_events_total for op.
func (h *Harness) Events(op string) float64 {
	return h.counter("discodns_watcher_events_total", "op", op)
}

// SourceCounter is the source's counter name, with the other labels
// given as name, value pairs; 0 when it has none.
func (h *Harness) SourceCounter(name string, labels ...string) float64 {
	h.T.Helper()
	return h.counter(name, labels...)
}

// counter returns the value of the counter name of the source with the
// other labels given as name, value pairs; 0 when it has none.
func (h *Harness) counter(name string, labels ...string) float64 {
	h.T.Helper()
	return Counter(h.T, h.reg, name, append([]string{"source", h.Name}, labels...)...)
}

// Counter returns the value of the counter name in reg with exactly the
// labels given as name, value pairs; 0 when it has none.
func Counter(t testing.TB, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			pairs := m.GetLabel()
			if len(pairs) != len(want) {
				continue
			}
			for _, p := range pairs {
				if want[p.GetName()] != p.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// LogLines counts log lines that contain every one of parts.
func (h *Harness) LogLines(parts ...string) int {
	n := 0
	for line := range strings.Lines(h.Logs.String()) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}
