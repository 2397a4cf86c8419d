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
	for {
		select {
		case <-ctx.Done():
			return ""
		case st := <-down:
			r.outage.Fail(fmt.Errorf("etcd %s: connection lost (%s)", strings.Join(r.cfg.Endpoints, ","), st))
			return watcher.ReasonReconnect
		case <-resync:
			return watcher.ReasonPeriodic
		case resp, ok := <-wch:
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
			r.apply(resp.Events)
			r.bo.Reset()
		}
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
func (r *run) apply(events []*clientv3.Event) {
	for _, ev := range events {
		key := string(ev.Kv.Key)
		if ev.Type == mvccpb.DELETE {
			r.decodes.Forget("", key)
			if service, id, err := r.split(key); err == nil {
				r.sink.Delete(r.cfg.Name, service, id)
				r.metrics.Event(r.cfg.Name, watcher.OpDelete)
			}
			continue
		}
		service, id, in, err := r.entry(key, ev.Kv.Value)
		switch {
		case service == "": // not the source's, or malformed
		case err == nil:
			r.decodes.Forget("", key)
			r.sink.Put(r.cfg.Name, in)
			r.metrics.Event(r.cfg.Name, watcher.OpPut)
		default:
			// Removed, or a new value that does not decode replaces one
			// that may have: the instance it described is gone.
			if errors.Is(err, watcher.ErrRemoved) {
				r.decodes.Forget("", key)
			}
			r.sink.Delete(r.cfg.Name, service, id)
			r.metrics.Event(r.cfg.Name, watcher.OpDelete)
		}
	}
}
