package etcd

import (
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discodns/discodns/watcher"
)

// event is a watch event with its key split into service and id (err is
// split's).
type event struct {
	*clientv3.Event
	key, service, id string
	err              error
}

// backlog holds the watch events that have arrived and are not applied
// yet, a queue per service, and hands them out a turn at a time: at most
// turnEvents events of one service, the services taking turns in the
// order they arrived, and a service with events left going to the back.
//
// A key is always the same service, so its events keep etcd's order, and
// the table's state is the same whatever the order of events of different
// keys (an endpoint's label depends on the set, not on the order it was
// built in). So a burst into one service holds back a change to another
// by a turn, not by the burst: the watch stream delivers the burst first,
// and applying it takes tens of milliseconds per 10,000 events.
type backlog struct {
	split  func(key string) (service, id string, err error)
	queues map[string]*serviceEvents // by service; "" for keys split rejects
	// turns holds the services with events in turn order, from head.
	turns  []*serviceEvents
	head   int
	events int // in all queues
	// handed is the queue the last turn emptied, whose events the caller
	// holds until the next turn; free holds emptied queues for services
	// to come, at most maxFreeQueues: a burst into many services reuses
	// them rather than allocating a queue per event.
	handed *serviceEvents
	free   []*serviceEvents
}

// maxFreeQueues bounds the emptied queues a backlog keeps for reuse, and
// freeQueueEvents the events each keeps room for: 600 KB at most.
const (
	maxFreeQueues   = 1024
	freeQueueEvents = 8
)

// serviceEvents is the queue of one service.
type serviceEvents struct {
	service string
	events  []event
}

const (
	// turnEvents is the most events of one service applied in a turn:
	// about a millisecond of work.
	turnEvents = 128
	// maxBacklog bounds the events read ahead of the table: when the
	// backlog holds as many, the source applies turns without reading,
	// and later events wait in the etcd client's own buffer.
	maxBacklog = 1 << 16
	// arrivedResponses is how many watch responses wait between the
	// goroutine that takes them from the client and the loop that
	// queues them.
	arrivedResponses = 256
)

func newBacklog(split func(key string) (service, id string, err error)) *backlog {
	return &backlog{split: split, queues: map[string]*serviceEvents{}}
}

// add queues events behind those of their services.
func (b *backlog) add(events []*clientv3.Event) {
	for _, ev := range events {
		key := string(ev.Kv.Key)
		service, id, err := b.split(key)
		q := b.queues[service]
		if q == nil {
			if n := len(b.free); n > 0 {
				q, b.free = b.free[n-1], b.free[:n-1]
				q.service = service
			} else {
				q = &serviceEvents{service: service}
			}
			b.queues[service] = q
			b.turns = append(b.turns, q)
		}
		q.events = append(q.events, event{Event: ev, key: key, service: service, id: id, err: err})
	}
	b.events += len(events)
}

// turn returns the next turn's events, at most turnEvents of one service,
// or none when the backlog is empty. They are the caller's until the next
// call.
func (b *backlog) turn() []event {
	if q := b.handed; q != nil {
		// The caller is done with its events: the queue can be reused.
		b.handed = nil
		if len(b.free) < maxFreeQueues {
			clear(q.events[:cap(q.events)])
			q.events = q.events[:0]
			b.free = append(b.free, q)
		}
	}
	if b.head == len(b.turns) {
		return nil
	}
	q := b.turns[b.head]
	b.turns[b.head] = nil
	b.head++
	n := min(len(q.events), turnEvents)
	out := q.events[:n:n]
	q.events = q.events[n:]
	if len(q.events) > 0 {
		b.turns = append(b.turns, q)
	} else {
		delete(b.queues, q.service)
		q.events = nil
		if cap(out) <= freeQueueEvents {
			q.events = out[:0] // its room, reused with the queue
		}
		b.handed = q
	}
	if b.head > len(b.turns)/2 {
		// Move the turns to the front of the array rather than let
		// them creep through it.
		k := copy(b.turns, b.turns[b.head:])
		clear(b.turns[k:])
		b.turns = b.turns[:k]
		b.head = 0
	}
	b.events -= n
	return out
}

// backlogMetrics counts what an etcd source holds back.
type backlogMetrics struct {
	events prometheus.Gauge
	full   prometheus.Counter
}

// newBacklogMetrics registers the backlog metrics with the registry of m
// and creates the series of source at zero; with a nil m they count
// nothing.
func newBacklogMetrics(m *watcher.Metrics, source string) backlogMetrics {
	events := watcher.Register(m, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "discodns_watcher_etcd_backlog_events",
		Help: "Watch events an etcd source has read and not yet applied to the table, by source (at most 65,536).",
	}, []string{"source"}))
	full := watcher.Register(m, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "discodns_watcher_etcd_backlog_full_total",
		Help: "Times an etcd source's backlog held 65,536 events and it stopped reading ahead (later events wait in the etcd client), by source.",
	}, []string{"source"}))
	return backlogMetrics{events: events.WithLabelValues(source), full: full.WithLabelValues(source)}
}
