package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// list reads the whole tree with fresh watches and replaces the source's
// instances.
func (r *run) list(reason string) {
	session := r.conn.SessionID()
	start := time.Now()
	r.decodes.StartList()
	services, err := r.children(r.z.cfg.Prefix)
	if err != nil {
		r.listFailed(err)
		return
	}
	services = slices.DeleteFunc(services, func(svc string) bool { return !r.z.isService(svc) })
	found := make(map[string]map[string]cache.Instance, len(services))
	var mu sync.Mutex
	err = watcher.ForEach(context.Background(), services, listWorkers, func(_ context.Context, svc string) error {
		insts, err := r.readService(svc)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		found[svc] = insts
		return nil
	})
	if err != nil {
		r.listFailed(err)
		return
	}
	var all []cache.Instance
	for _, insts := range found {
		for _, in := range insts {
			all = append(all, in)
		}
	}
	r.sink.Replace(r.z.cfg.Name, all)
	r.services = found
	r.decodes.EndList(true)
	r.session = session
	r.dirty = false
	r.z.metrics.Relist(r.z.cfg.Name, reason)
	r.z.log.Info("zookeeper listed", "services", len(found), "instances", len(all), "reason", reason, "took", time.Since(start))
}

func (r *run) listFailed(err error) {
	r.decodes.EndList(false)
	r.z.metrics.RegistryError(r.z.cfg.Name)
	r.z.log.Warn("zookeeper list failed; retrying", "err", err)
	if r.session != 0 {
		r.sink.SetState(r.z.cfg.Name, cache.StateStale, err)
	}
	r.session = 0 // watches of this attempt are not all armed
	r.dirty = true
}

// children returns the children of p and arms a children watch on it. A
// missing node has no children; an exists watch then fires on its creation.
func (r *run) children(p string) ([]string, error) {
	kids, _, _, err := r.conn.ChildrenW(p)
	if errors.Is(err, zk.ErrNoNode) {
		ok, _, _, err := r.conn.ExistsW(p)
		if err != nil {
			return nil, fmt.Errorf("zookeeper exists %s: %w", p, err)
		}
		if ok { // created meanwhile
			return r.children(p)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("zookeeper children %s: %w", p, err)
	}
	return kids, nil
}

// readService reads every instance of svc, arming the watches.
func (r *run) readService(svc string) (map[string]cache.Instance, error) {
	for attempt := 1; ; attempt++ {
		nodes, err := r.children(r.z.dir(svc))
		if err != nil {
			return nil, err
		}
		insts := map[string]cache.Instance{}
		outdated := false
		for _, node := range nodes {
			if !r.z.member(node) {
				continue
			}
			in, st, err := r.readInstance(svc, node)
			if err != nil {
				return nil, err
			}
			switch st {
			case served:
				insts[node] = in
			case vanished:
				outdated = true
			}
		}
		if !outdated || attempt == childrenAttempts {
			return insts, nil
		}
	}
}

// childrenAttempts bounds how often a service's children are listed
// again because one of them vanished before it was read. Such a list is
// out of date: served as it is, a service whose instances all changed
// between the list and the reads would look empty for a moment although
// it never was.
const childrenAttempts = 3

// instanceStatus is what reading an instance node found.
type instanceStatus int

const (
	served      instanceStatus = iota
	gone                       // not served (watcher.ErrRemoved)
	vanished                   // deleted since its parent was listed
	undecodable                // counted, and logged unless reported before
)

// readInstance reads one instance node and arms its data watch.
func (r *run) readInstance(svc, node string) (cache.Instance, instanceStatus, error) {
	p := path.Join(r.z.dir(svc), node)
	data, _, _, err := r.conn.GetW(p)
	if errors.Is(err, zk.ErrNoNode) {
		return cache.Instance{}, vanished, nil // its service's children tell
	}
	if err != nil {
		return cache.Instance{}, gone, fmt.Errorf("zookeeper get %s: %w", p, err)
	}
	in, err := r.z.decode(svc, node, data)
	switch {
	case err == nil:
		return in, served, nil
	case errors.Is(err, watcher.ErrRemoved):
		return cache.Instance{}, gone, nil
	default:
		r.decodes.Failed(svc, p, err, "path", p)
		return cache.Instance{}, undecodable, nil
	}
}
