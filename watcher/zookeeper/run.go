package zookeeper

import (
	"context"
	"errors"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// zkConn is the part of *zk.Conn a run reads through.
type zkConn interface {
	ChildrenW(path string) ([]string, *zk.Stat, <-chan zk.Event, error)
	ExistsW(path string) (bool, *zk.Stat, <-chan zk.Event, error)
	GetW(path string) ([]byte, *zk.Stat, <-chan zk.Event, error)
	SessionID() int64
	State() zk.State
}

// run is the state of one Run.
type run struct {
	z      *Source
	sink   cache.Sink
	conn   zkConn
	events *eventQueue

	session int64 // the session the table was listed in; 0 before
	dirty   bool  // a watch may be unarmed: list again when connected
	// services maps every service node watched to its instance nodes
	// served, and those to their instances.
	services map[string]map[string]cache.Instance
	outage   *watcher.Outage
	decodes  *watcher.DecodeLog // by node path
}

func (r *run) loop(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		case <-r.events.wake:
		}
		for _, ev := range r.events.drain() {
			r.handle(ev)
		}
		if r.dirty && r.conn.State() == zk.StateHasSession {
			r.list(watcher.ReasonError)
		}
		if r.dirty {
			retry.Reset(time.Second)
		}
	}
}

// handle applies one event.
func (r *run) handle(ev zk.Event) {
	switch ev.Type {
	case zk.EventSession:
		r.sessionEvent(ev)
		return
	case zk.EventNotWatching:
		return // the session ended; the next one lists everything
	}
	if r.session == 0 || r.session != r.conn.SessionID() {
		return // the list of the new session arms its own watches
	}
	svc, node, ok := r.z.locate(ev.Path)
	if !ok {
		return
	}
	var err error
	switch {
	case svc == "":
		err = r.syncServices()
	case node == "":
		_, known := r.services[svc]
		switch {
		case ev.Type == zk.EventNodeChildrenChanged:
			err = r.syncService(svc)
		case r.z.sub != "" && known:
			// The providers node of a service that stays came or
			// went (its exists or children watch fired).
			err = r.syncService(svc)
		case ev.Type == zk.EventNodeDeleted:
			err = r.syncServices()
		}
	default:
		// A deleted instance node leaves it to the children of its service
		// to say what the service holds now: a node created before the
		// deletion may be announced after it (an event behind this one, or
		// a reconnect, where the server fires data watches before children
		// watches), and removing this one alone could leave the service
		// empty for a moment although it never was.
		switch ev.Type {
		case zk.EventNodeDataChanged:
			var st instanceStatus
			if st, err = r.syncInstance(svc, node); err == nil && st == vanished {
				err = r.syncService(svc)
			}
		case zk.EventNodeDeleted:
			err = r.syncService(svc)
		}
	}
	if err != nil {
		r.failed(err)
	}
}

func (r *run) sessionEvent(ev zk.Event) {
	name := r.z.cfg.Name
	switch ev.State {
	case zk.StateHasSession:
		if id := r.conn.SessionID(); id != r.session {
			reason := watcher.ReasonInitial
			if r.session != 0 {
				reason = reasonSession
				r.z.log.Info("new zookeeper session; listing everything again")
			}
			r.list(reason)
			return
		}
		r.z.log.Info("zookeeper reconnected in the same session")
		r.sink.SetState(name, cache.StateConnected, nil)
	case zk.StateDisconnected:
		err := errors.New("disconnected from zookeeper")
		if r.session == 0 {
			// Nothing listed yet: no outage to count.
			r.sink.SetState(name, cache.StateStale, err)
			return
		}
		r.z.log.Warn("zookeeper disconnected; serving the last known instances")
		r.outage.Stale(err)
	case zk.StateExpired:
		r.z.log.Warn("zookeeper session expired; serving the last known instances until a new session lists")
		r.outage.Stale(errors.New("zookeeper session expired"))
	case zk.StateAuthFailed:
		r.outage.Stale(errors.New("zookeeper authentication failed"))
	}
}

// failed records an error while following changes: some watch may not be
// armed, so the whole tree is listed again once connected.
func (r *run) failed(err error) {
	r.z.metrics.RegistryError(r.z.cfg.Name)
	r.z.log.Warn("zookeeper read failed; listing again when connected", "err", err)
	r.dirty = true
}
