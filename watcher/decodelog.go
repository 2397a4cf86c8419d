package watcher

import (
	"log/slog"
	"sync"
)

// DecodeLog reports the registry entries of a source that do not decode:
// it counts every failure and logs a key's failure once, until the key
// decodes again or goes. Entries are named by keys of the source's
// choosing. Its zero Metrics counts nothing, and its zero Log is
// slog.Default(). It is safe for concurrent use.
type DecodeLog struct {
	// Source is the source's name.
	Source  string
	Metrics *Metrics
	Log     *slog.Logger
	// Msg is the warning logged for a failure.
	Msg string

	mu       sync.Mutex
	reported map[string]struct{} // keys whose failure was logged
	listing  map[string]struct{} // keys failed in the list under way, if any
}

// Failed counts an entry that did not decode and logs it with err and
// attrs unless its key was logged before.
func (d *DecodeLog) Failed(key string, err error, attrs ...any) {
	d.Metrics.DecodeError(d.Source)
	d.mu.Lock()
	_, logged := d.reported[key]
	if d.listing != nil {
		d.listing[key] = struct{}{}
	} else {
		d.remember(key)
	}
	d.mu.Unlock()
	if !logged {
		log := d.Log
		if log == nil {
			log = slog.Default()
		}
		log.Warn(d.Msg, append(attrs, "err", err)...)
	}
}

func (d *DecodeLog) remember(key string) {
	if d.reported == nil {
		d.reported = map[string]struct{}{}
	}
	d.reported[key] = struct{}{}
}

// Forget drops key, which decoded or went: its next failure is logged.
func (d *DecodeLog) Forget(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.reported, key)
}

// StartList begins a full list: until EndList, failures are logged as
// before, and noted apart.
func (d *DecodeLog) StartList() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.listing = map[string]struct{}{}
}

// EndList ends a full list. If it completed, the keys that failed in it
// replace the keys logged before, so a key that decoded in it is logged at
// its next failure; otherwise what the list found is dropped.
func (d *DecodeLog) EndList(completed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if completed {
		d.reported = d.listing
	}
	d.listing = nil
}
