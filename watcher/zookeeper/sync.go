package zookeeper

import (
	"path"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// syncServices follows the children of the prefix: new services are read,
// vanished ones removed.
func (r *run) syncServices() error {
	services, err := r.children(r.z.cfg.Prefix)
	if err != nil {
		return err
	}
	seen := make(map[string]struct{}, len(services))
	for _, svc := range services {
		if !r.z.isService(svc) {
			continue
		}
		seen[svc] = struct{}{}
		if _, known := r.services[svc]; !known {
			if err := r.syncService(svc); err != nil {
				return err
			}
		}
	}
	for svc, insts := range r.services {
		if _, ok := seen[svc]; !ok {
			for node := range insts {
				r.remove(svc, node)
			}
			delete(r.services, svc)
			r.decodes.Retain(svc, nil)
		}
	}
	return nil
}

// syncService follows the children of one service: new instance nodes are
// read, then vanished ones removed, so that a service that always had an
// instance is never served empty.
func (r *run) syncService(svc string) error {
	if r.services[svc] == nil {
		r.services[svc] = map[string]cache.Instance{}
	}
	var seen map[string]struct{}
	for attempt := 1; ; attempt++ {
		nodes, err := r.children(r.z.dir(svc))
		if err != nil {
			return err
		}
		seen = make(map[string]struct{}, len(nodes))
		outdated := false
		for _, node := range nodes {
			if !r.z.member(node) {
				continue
			}
			seen[node] = struct{}{}
			if _, known := r.services[svc][node]; known {
				continue
			}
			st, err := r.syncInstance(svc, node)
			if err != nil {
				return err
			}
			outdated = outdated || st == vanished
		}
		if !outdated || attempt == childrenAttempts {
			break
		}
	}
	for node := range r.services[svc] {
		if _, ok := seen[node]; !ok {
			r.remove(svc, node)
		}
	}
	// The nodes that did not decode and went are forgotten too.
	paths := make([]string, 0, len(seen))
	for node := range seen {
		paths = append(paths, path.Join(r.z.dir(svc), node))
	}
	r.decodes.Retain(svc, paths)
	return nil
}

// syncInstance reads one instance node again and writes the result. A
// node that vanished is left to the caller, which lists its service's
// children again.
func (r *run) syncInstance(svc, node string) (instanceStatus, error) {
	in, st, err := r.readInstance(svc, node)
	if err != nil {
		return st, err
	}
	if st != undecodable {
		r.decodes.Forget(svc, path.Join(r.z.dir(svc), node))
	}
	switch st {
	case vanished:
		return st, nil // the caller lists the children again
	case gone, undecodable:
		r.remove(svc, node)
		return st, nil
	}
	if r.services[svc] == nil {
		r.services[svc] = map[string]cache.Instance{}
	}
	old, had := r.services[svc][node]
	if had && old.Equal(&in) {
		return st, nil
	}
	if had && old.ID != in.ID {
		r.sink.Delete(r.z.cfg.Name, svc, old.ID)
	}
	r.services[svc][node] = in
	r.sink.Put(r.z.cfg.Name, in)
	r.z.metrics.Event(r.z.cfg.Name, watcher.OpPut)
	return st, nil
}

// remove stops serving the instance of node, if any. The service stays
// known (its children watch is armed) until its node goes.
func (r *run) remove(svc, node string) {
	insts := r.services[svc]
	in, ok := insts[node]
	if !ok {
		return
	}
	delete(insts, node)
	r.sink.Delete(r.z.cfg.Name, svc, in.ID)
	r.z.metrics.Event(r.z.cfg.Name, watcher.OpDelete)
}
