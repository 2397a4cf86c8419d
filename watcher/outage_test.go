package watcher

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/discodns/discodns/cache"
)

// TestOutage: every failure is counted and marks the source stale; the
// warning is logged once per outage, and Recover ends the outage.
func TestOutage(t *testing.T) {
	var out strings.Builder
	table := cache.NewTable(nil)
	table.AddSource("s", "svc.internal.")
	table.Replace("s", nil)
	m := NewMetrics(prometheus.NewRegistry())
	o := &Outage{Source: "s", Sink: table, Metrics: m,
		Log:  slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Down: "registry down", Still: "registry still down"}
	state := func() cache.State { return table.Snapshot().Sources[0].State }

	o.Fail(errors.New("one"))
	o.Fail(errors.New("two"))
	if state() != cache.StateStale {
		t.Fatalf("state %s, want stale", state())
	}
	if strings.Count(out.String(), "level=WARN msg=\"registry down\"") != 1 ||
		strings.Count(out.String(), "level=DEBUG msg=\"registry still down\"") != 1 {
		t.Fatalf("log:\n%s\nwant one warning and one debug line", out.String())
	}
	if !o.Recover() || o.Recover() {
		t.Fatal("Recover: want true once after a failure, then false")
	}
	o.Fail(errors.New("three"))
	o.Stale(errors.New("four"))
	if n := strings.Count(out.String(), "registry down"); n != 2 {
		t.Fatalf("warned %d times over two outages, want 2", n)
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues("s")); got != 4 {
		t.Fatalf("registry errors %v, want 4", got)
	}
}
