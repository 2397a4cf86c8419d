package etcd

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// list gets the whole prefix and replaces the source's instances with it,
// retrying until it succeeds. It returns the revision listed, or false
// when ctx ended.
func (r *run) list(ctx context.Context, reason string) (int64, bool) {
	for {
		if err := r.waitReady(ctx); err != nil {
			if ctx.Err() != nil || errors.Is(err, errClientClosed) {
				return 0, false
			}
			// waitReady has waited DialTimeout while gRPC reconnects with
			// its own backoff; wait again at once, so that a connection
			// coming back is used without delay.
			r.outage.Fail(err)
			continue
		}
		rev, err := r.listOnce(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return 0, false
			}
			r.outage.Fail(err)
			if !r.bo.Wait(ctx) {
				return 0, false
			}
			continue
		}
		if r.outage.Recover() {
			r.log.Info("etcd source recovered", "reason", reason)
		} else if reason != watcher.ReasonInitial && reason != watcher.ReasonPeriodic {
			r.log.Info("etcd source re-listed", "reason", reason)
		}
		return rev, true
	}
}

// entry splits key into service and id, which stay empty for a key that
// is not the source's or is malformed, and decodes value. It reports an
// entry that does not decode: a malformed key (no service or no ID) is
// counted and logged like a bad value. The error is watcher.ErrRemoved for
// a value that removes its instance.
func (r *run) entry(key string, value []byte) (service, id string, in cache.Instance, err error) {
	service, id, err = r.split(key)
	in, err = r.decodeEntry(key, service, id, err, value)
	return service, id, in, err
}

// decodeEntry is entry for a key already split into service, id and
// splitErr.
func (r *run) decodeEntry(key, service, id string, splitErr error, value []byte) (in cache.Instance, err error) {
	err = splitErr
	if err == nil {
		if in, err = r.decode(service, id, value); err == nil {
			return in, nil
		}
	}
	if !errors.Is(err, errOtherKey) && !errors.Is(err, watcher.ErrRemoved) {
		r.decodes.Failed("", key, err, "key", key)
	}
	return cache.Instance{}, err
}

// listOnce gets the prefix, decodes it and replaces the sink's instances.
func (r *run) listOnce(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	resp, err := r.cli.Get(ctx, r.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("etcd list %s: %w", r.prefix, err)
	}
	instances := make([]cache.Instance, 0, len(resp.Kvs))
	r.decodes.StartList()
	for _, kv := range resp.Kvs {
		_, _, in, err := r.entry(string(kv.Key), kv.Value)
		if err == nil {
			instances = append(instances, in)
		}
	}
	r.decodes.EndList(true)
	r.sink.Replace(r.cfg.Name, instances)
	return resp.Header.Revision, nil
}
