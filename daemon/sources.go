package daemon

import (
	"context"
	"log/slog"
	"reflect"
	"sync"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/config"
	"github.com/discodns/discodns/watcher"
)

// sourceSet runs the configured sources and changes them on a reload.
type sourceSet struct {
	ctx       context.Context
	table     *cache.Table
	newSource func(config.Source) (watcher.Source, error)
	log       *slog.Logger
	wg        sync.WaitGroup
	running   map[string]*runningSource
}

// runningSource is a source's watcher while it runs.
type runningSource struct {
	cfg    config.Source
	cancel context.CancelFunc
	done   chan struct{}
}

// newSourceSet returns an empty set whose sources run until ctx ends and
// write into table; newSource builds a source's watcher.
func newSourceSet(ctx context.Context, table *cache.Table, newSource func(config.Source) (watcher.Source, error), log *slog.Logger) *sourceSet {
	return &sourceSet{ctx: ctx, table: table, newSource: newSource, log: log, running: map[string]*runningSource{}}
}

// apply makes the running sources those of want: it keeps the unchanged
// ones, stops the removed ones (their instances go), and restarts the
// changed ones, whose instances are kept until the new watcher lists (a
// changed zone moves them, so they go and come back). It builds every new
// watcher before stopping anything, so an error changes nothing.
func (s *sourceSet) apply(want []config.Source) error {
	next := map[string]watcher.Source{}
	byName := map[string]config.Source{}
	for _, sc := range want {
		byName[sc.Name] = sc
		if rs, ok := s.running[sc.Name]; ok && reflect.DeepEqual(rs.cfg, sc) {
			continue
		}
		src, err := s.newSource(sc)
		if err != nil {
			return err
		}
		next[sc.Name] = src
	}
	for name, rs := range s.running {
		sc, keep := byName[name]
		if keep && next[name] == nil {
			continue // unchanged
		}
		rs.cancel()
		<-rs.done
		delete(s.running, name)
		if !keep || sc.Zone != rs.cfg.Zone {
			s.table.RemoveSource(name)
		}
		s.log.Info("source stopped", "source", name, "reason", map[bool]string{true: "changed", false: "removed"}[keep])
	}
	for _, sc := range want { // in configuration order
		src := next[sc.Name]
		if src == nil {
			continue
		}
		s.table.AddSource(sc.Name, sc.Zone)
		ctx, cancel := context.WithCancel(s.ctx)
		rs := &runningSource{cfg: sc, cancel: cancel, done: make(chan struct{})}
		s.running[sc.Name] = rs
		s.wg.Go(func() {
			defer close(rs.done)
			if err := src.Run(ctx, s.table); err != nil {
				s.log.Error("source stopped", "source", src.Name(), "err", err)
			}
		})
	}
	return nil
}

// wait waits for every source to stop (after the set's context ended).
func (s *sourceSet) wait() { s.wg.Wait() }
