package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/discodns/discodns/watcher"
)

// follow watches the prefix from the revision after rev and applies every
// change until it needs a new list, and returns the reason for that list.
// It returns "" when ctx ends.
func (r *run) follow(ctx context.Context, rev int64) string {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A watch that served for a while or delivered events was healthy:
	// the next failure starts with a short delay again.
	start := time.Now()
	defer func() {
		if time.Since(start) >= watcher.MaxBackoff {
			r.bo.Reset()
		}
	}()

	// The etcd client hides a lost connection from its watches: they wait
	// and resume on their own. So the source follows the gRPC connection
	// state, which leaves Ready as soon as the server goes away (a
	// graceful stop sends GOAWAY, a crash resets the connection) or
	// keepalive declares it dead; with several endpoints it stays Ready
	// while one of them still serves, and the watch moves there without
	// losing events. This reacts within milliseconds and costs no
	// requests, unlike polling etcd. A server that is up but has lost its
	// leader cancels the watch itself (WithRequireLeader).
	down := make(chan connectivity.State, 1)
	go func() {
		if st, ok := waitNotReady(ctx, r.cli.ActiveConnection()); ok {
			down <- st
		}
	}()

	var resync <-chan time.Time
	if r.cfg.ResyncInterval > 0 {
		t := time.NewTimer(r.cfg.ResyncInterval)
		defer t.Stop()
		resync = t.C
	}

	wch := r.cli.Watch(clientv3.WithRequireLeader(ctx), r.prefix,
		clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	// Events are read as soon as they arrive and applied a turn at a
	// time (see backlog), so that a change reaches the table ahead of the
	// rest of a burst into another service. The client hands responses
	// over one at a time, so a goroutine takes them as they come, and
	// between turns the loop takes all that it has.
	arrived := make(chan clientv3.WatchResponse, arrivedResponses)
	go func() {
		defer close(arrived)
		for resp := range wch {
			select {
			case arrived <- resp:
			case <-ctx.Done():
				return
			}
		}
	}()
	b := newBacklog(r.split)
	defer r.backlogMetrics.events.Set(0)
	full := false
	for {
		recv := (<-chan clientv3.WatchResponse)(arrived)
		if b.events >= r.maxBacklog {
			recv = nil
			if !full {
				r.backlogMetrics.full.Inc()
			}
		}
		full = recv == nil
		var resp clientv3.WatchResponse
		var ok bool
		if b.events > 0 {
			// Take what has arrived, else apply a turn. A lost
			// connection or the resync waits for the backlog: its
			// events are etcd's, and a list supersedes nothing sooner.
			select {
			case <-ctx.Done():
				return ""
			case resp, ok = <-recv:
			default:
				r.apply(b.turn())
				r.backlogMetrics.events.Set(float64(b.events))
				continue
			}
		} else {
			select {
			case <-ctx.Done():
				return ""
			case st := <-down:
				r.outage.Fail(fmt.Errorf("etcd %s: connection lost (%s)", strings.Join(r.cfg.Endpoints, ","), st))
				return watcher.ReasonReconnect
			case <-resync:
				return watcher.ReasonPeriodic
			case resp, ok = <-recv:
			}
		}
		if !ok {
			if ctx.Err() != nil {
				return ""
			}
			r.metrics.RegistryError(r.cfg.Name)
			r.log.Warn("etcd watch closed; re-listing", "prefix", r.prefix)
			return reasonWatchClosed
		}
		if err := resp.Err(); err != nil {
			return r.watchFailed(ctx, err)
		}
		b.add(resp.Events)
		r.bo.Reset()
	}
}

// watchFailed classifies a watch error into a re-list reason. Every
// failure but a compaction counts as a registry error.
func (r *run) watchFailed(ctx context.Context, err error) string {
	switch {
	case ctx.Err() != nil:
		return ""
	case errors.Is(err, rpctypes.ErrCompacted):
		r.log.Info("etcd watch revision compacted; re-listing", "prefix", r.prefix, "err", err)
		return reasonCompacted
	case errors.Is(err, context.Canceled), status.Code(err) == codes.Canceled,
		errors.Is(err, rpctypes.ErrGRPCWatchCanceled):
		r.metrics.RegistryError(r.cfg.Name)
		r.log.Warn("etcd watch canceled; re-listing", "prefix", r.prefix, "err", err)
		return reasonWatchClosed
	default:
		r.metrics.RegistryError(r.cfg.Name)
		r.log.Warn("etcd watch failed; re-listing", "prefix", r.prefix, "err", err)
		return watcher.ReasonError
	}
}

// apply writes watch events to the sink.
func (r *run) apply(events []event) {
	var puts, deletes int
	for _, ev := range events {
		if ev.Type == mvccpb.DELETE {
			r.decodes.Forget("", ev.key)
			if ev.err == nil {
				r.sink.Delete(r.cfg.Name, ev.service, ev.id)
				deletes++
			}
			continue
		}
		in, err := r.decodeEntry(ev.key, ev.service, ev.id, ev.err, ev.Kv.Value)
		switch {
		case ev.err != nil: // not the source's, or malformed
		case err == nil:
			r.decodes.Forget("", ev.key)
			r.sink.Put(r.cfg.Name, in)
			puts++
		default:
			// Removed, or a new value that does not decode replaces one
			// that may have: the instance it described is gone.
			if errors.Is(err, watcher.ErrRemoved) {
				r.decodes.Forget("", ev.key)
			}
			r.sink.Delete(r.cfg.Name, ev.service, ev.id)
			deletes++
		}
	}
	r.metrics.Events(r.cfg.Name, watcher.OpPut, puts)
	r.metrics.Events(r.cfg.Name, watcher.OpDelete, deletes)
}
