package state

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/discodns/discodns/cache"
)

// MinInterval is the least time between two writes of the state file.
const MinInterval = time.Second

// Writer keeps the state file in step with a table: after a change, at
// most once per MinInterval, it writes the latest snapshot, on its own
// goroutine, reading snapshots only, so neither answering nor the table's
// writers ever wait for the disk.
type Writer struct {
	path   string
	table  cache.Snapshots
	log    *slog.Logger
	writes *prometheus.CounterVec
	last   prometheus.Gauge
}

// NewWriter returns a writer of table's snapshots to path, and registers
// its metrics: discodns_state_writes_total{result} and
// discodns_state_last_write_timestamp_seconds.
func NewWriter(path string, table cache.Snapshots, reg prometheus.Registerer, log *slog.Logger) *Writer {
	w := &Writer{
		path: path, table: table, log: log,
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "discodns_state_writes_total",
			Help: "Writes of the state file (state_file) by result: ok, or error (logged; the previous file stays).",
		}, []string{"result"}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "discodns_state_last_write_timestamp_seconds",
			Help: "Unix time of the last successful write of the state file; 0 before the first.",
		}),
	}
	w.writes.WithLabelValues("ok")
	w.writes.WithLabelValues("error")
	reg.MustRegister(w.writes, w.last)
	return w
}

// Run writes the table now and after every change, at most once per
// MinInterval, until ctx ends; then it writes once more if the table
// changed since the last write.
func (w *Writer) Run(ctx context.Context) {
	snap := w.table.Snapshot()
	w.write(snap)
	for {
		last := time.Now()
		select {
		case <-snap.Superseded():
			select {
			case <-time.After(time.Until(last.Add(MinInterval))):
			case <-ctx.Done():
			}
			snap = w.table.Snapshot()
			w.write(snap)
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			// A change that came with the end, or while the last
			// write was under way.
			if latest := w.table.Snapshot(); latest != snap {
				w.write(latest)
			}
			return
		}
	}
}

// write writes snap, logging and counting a failure.
func (w *Writer) write(snap *cache.Snapshot) {
	now := time.Now()
	if err := Write(w.path, FromSnapshot(snap, now)); err != nil {
		w.writes.WithLabelValues("error").Inc()
		w.log.Error("state file not written; the previous one stays", "err", err)
		return
	}
	w.writes.WithLabelValues("ok").Inc()
	w.last.Set(float64(now.UnixNano()) / 1e9)
}

// Load reads the state file at path for seeding, logging what it holds
// or why it cannot be used (missing, read error, truncated, corrupted,
// another version); nil then, and nothing of the file is used.
func Load(path string, log *slog.Logger) *File {
	f, err := Read(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		log.Info("no state file yet: sources that cannot list at start serve nothing until they do", "state_file", path)
		return nil
	case err != nil:
		log.Error("state file not used: sources that cannot list at start serve nothing until they do", "err", err)
		return nil
	}
	n := 0
	for _, src := range f.Sources {
		n += len(src.Instances)
	}
	log.Info("state file read: a source that cannot list within dns.startup_wait serves its instances from it", "state_file", path, "written", f.Written, "sources", len(f.Sources), "instances", n)
	return f
}

// Seed fills table from f (nil: nothing) for each source that has not
// listed: sources that listed already, and sources f does not hold, are
// left alone. It returns the names of the sources seeded.
func Seed(f *File, table *cache.Table, log *slog.Logger) []string {
	if f == nil {
		return nil
	}
	var seeded []string
	for _, st := range table.Snapshot().Sources {
		if st.Listed {
			continue
		}
		src, ok := f.Sources[st.Name]
		if !ok {
			log.Warn("source not in the state file: it serves nothing until it lists", "source", st.Name)
			continue
		}
		if table.Seed(st.Name, src.Instances, src.AsOf) {
			log.Warn("source serves its instances from the state file until its registry lists",
				"source", st.Name, "instances", len(src.Instances), "as_of", src.AsOf, "age", time.Since(src.AsOf).Round(time.Second))
			seeded = append(seeded, st.Name)
		}
	}
	return seeded
}
