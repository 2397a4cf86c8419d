package watcher_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

// counter returns the value of the source "s" series of a counter.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return watchertest.Counter(t, reg, name, "source", "s")
}

// TestDecodeLog: a failure is counted and logged when the key turns bad
// or fails differently, not when it is seen again as it was (by an event
// or a list); a key forgotten (decoded, gone, absent from a completed
// list, not retained) is counted again at its next failure; an aborted
// list forgets nothing.
func TestDecodeLog(t *testing.T) {
	var out strings.Builder
	reg := prometheus.NewRegistry()
	m := watcher.NewMetrics(reg)
	m.InitSource("s")
	d := &watcher.DecodeLog{Source: "s", Metrics: m, Log: slog.New(slog.NewTextHandler(&out, nil)), Msg: "bad entry"}
	bad, worse := errors.New("bad"), errors.New("worse")
	fail := func(key string, err error) { d.Failed("svc", key, err, "key", key) }
	check := func(step string, counted float64, logged map[string]int) {
		t.Helper()
		if got := counter(t, reg, "discodns_watcher_decode_errors_total"); got != counted {
			t.Errorf("%s: decode errors %v, want %v", step, got, counted)
		}
		for key, n := range logged {
			if got := strings.Count(out.String(), "key="+key+" "); got != n {
				t.Errorf("%s: %s logged %d times, want %d", step, key, got, n)
			}
		}
	}
	steps := []struct {
		name    string
		do      func()
		counted float64
		logged  map[string]int
	}{
		{"a fails twice", func() { fail("a", bad); fail("a", bad) }, 1, map[string]int{"a": 1}},
		{"a fails differently", func() { fail("a", worse) }, 2, map[string]int{"a": 2}},
		{"a decodes, then fails", func() { d.Forget("svc", "a"); fail("a", worse) }, 3, map[string]int{"a": 3}},
		{"a list sees a and b fail", func() {
			d.StartList()
			fail("a", worse)
			fail("b", bad)
			fail("b", bad) // read twice in one list
			d.EndList(true)
		}, 4, map[string]int{"a": 3, "b": 1}},
		{"a re-list sees the same", func() {
			d.StartList()
			fail("a", worse)
			fail("b", bad)
			d.EndList(true)
		}, 4, map[string]int{"a": 3, "b": 1}},
		{"an aborted list without a forgets nothing", func() {
			d.StartList()
			d.EndList(false)
			fail("a", worse)
		}, 4, map[string]int{"a": 3}},
		{"an aborted list keeps what it saw", func() {
			d.StartList()
			fail("c", bad)
			d.EndList(false)
			fail("c", bad)
		}, 5, map[string]int{"c": 1}},
		{"a completed list without a forgets it", func() {
			d.StartList()
			fail("b", bad)
			fail("c", bad)
			d.EndList(true)
			fail("a", worse)
			fail("b", bad)
		}, 6, map[string]int{"a": 4, "b": 1}},
		{"retain forgets the keys a group no longer holds", func() {
			d.Retain("svc", []string{"a"})
			d.Retain("other", nil)
			fail("a", worse)
			fail("b", bad)
		}, 7, map[string]int{"a": 4, "b": 2}},
	}
	for _, s := range steps {
		s.do()
		check(s.name, s.counted, s.logged)
	}
	if got := counter(t, reg, "discodns_watcher_decode_untracked_total"); got != 0 {
		t.Errorf("untracked = %v, want 0", got)
	}
}

// TestDecodeLogBounded: past MaxDecodeFailures keys a new failure is
// counted at every sighting, not logged, and counted as untracked; the
// memory frees as keys go.
func TestDecodeLogBounded(t *testing.T) {
	var out strings.Builder
	reg := prometheus.NewRegistry()
	m := watcher.NewMetrics(reg)
	d := &watcher.DecodeLog{Source: "s", Metrics: m, Log: slog.New(slog.NewTextHandler(&out, nil)), Msg: "bad entry"}
	bad := errors.New("bad")
	for i := range watcher.MaxDecodeFailures {
		d.Failed("", fmt.Sprint(i), bad)
	}
	d.Failed("", "over", bad, "key", "over")
	d.Failed("", "over", bad, "key", "over")
	if got := counter(t, reg, "discodns_watcher_decode_errors_total"); got != watcher.MaxDecodeFailures+2 {
		t.Errorf("decode errors %v, want %v", got, watcher.MaxDecodeFailures+2)
	}
	if got := counter(t, reg, "discodns_watcher_decode_untracked_total"); got != 2 {
		t.Errorf("untracked %v, want 2", got)
	}
	if strings.Contains(out.String(), "key=over") || strings.Count(out.String(), "too many") != 1 {
		t.Errorf("log:\n%s\nwant the limit warned once and the key over it not logged", out.String()[max(0, out.Len()-500):])
	}
	d.Forget("", "0")
	d.Failed("", "over", bad, "key", "over")
	d.Failed("", "over", bad, "key", "over")
	if n := strings.Count(out.String(), "key=over"); n != 1 {
		t.Errorf("over logged %d times once there was room, want 1", n)
	}
}
