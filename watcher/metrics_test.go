package watcher

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.InitSource("s", ReasonInitial)
	m.Event("s", OpPut)
	m.DecodeError("s")
	m.Relist("s", ReasonInitial)
	m.RegistryError("s")
}

func TestMetricsRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := NewMetrics(reg)
	b := NewMetrics(reg)
	a.Event("s", OpPut)
	b.Event("s", OpPut)
	if got := testutil.ToFloat64(a.events.WithLabelValues("s", OpPut)); got != 2 {
		t.Fatalf("events = %v, want 2 (both Metrics share the registered collectors)", got)
	}
}

func TestMetricsExported(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.InitSource("etcd", ReasonInitial)
	const want = `
# HELP discodns_watcher_relists_total Full lists of a registry, by source and what caused them (initial, compacted, watch_closed, reconnect, periodic, error). Retries of a failed list are not counted again.
# TYPE discodns_watcher_relists_total counter
discodns_watcher_relists_total{reason="initial",source="etcd"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "discodns_watcher_relists_total"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 6 {
		t.Fatalf("series = %d, %v; want 6 (events put and delete, decode errors, untracked decode errors, errors, relists initial)", n, err)
	}
}

// TestRegister: a registry package's collector is registered once, however
// many sources create it, and a nil Metrics leaves it unregistered.
func TestRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	newGauge := func() *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "discodns_watcher_test", Help: "A test gauge."}, []string{"source"})
	}
	a := Register(m, newGauge())
	b := Register(m, newGauge())
	if a != b {
		t.Fatal("a second registration returned a new collector, want the registered one")
	}
	a.WithLabelValues("s").Set(1)
	if n, err := testutil.GatherAndCount(reg, "discodns_watcher_test"); err != nil || n != 1 {
		t.Fatalf("series = %d, %v; want 1", n, err)
	}
	if c := newGauge(); Register(nil, c) != c {
		t.Fatal("Register with a nil Metrics did not return its collector")
	}
}
