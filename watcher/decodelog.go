package watcher

import (
	"hash/maphash"
	"log/slog"
	"sync"
)

// MaxDecodeFailures bounds the failures a DecodeLog remembers, per source
// (and as many again during a list). Past it, a new failure is counted at
// every sighting, is not logged, and counts in
// discodns_watcher_decode_untracked_total.
const MaxDecodeFailures = 10000

// DecodeLog reports the registry entries of a source that do not decode.
// It counts and logs an entry's failure when the entry turns bad or fails
// differently; the same failure seen again, by a re-list or an event that
// rewrote the same value, is neither counted nor logged. It remembers the
// failures it reported by key (hashed, so keys of any size cost the same)
// and forgets a key when it decodes again or goes: Forget, Retain, and a
// completed list that did not see it fail. It remembers at most
// MaxDecodeFailures keys.
//
// Keys are of the source's choosing, grouped (by service, say) so that
// Retain can forget what a group no longer holds. Its zero Metrics counts
// nothing, and its zero Log is slog.Default(). It is safe for concurrent
// use.
type DecodeLog struct {
	// Source is the source's name.
	Source  string
	Metrics *Metrics
	Log     *slog.Logger
	// Msg is the warning logged for a failure.
	Msg string

	mu       sync.Mutex
	seed     maphash.Seed
	reported failures // failures counted and logged
	listing  failures // failures seen by the list under way; nil without one
	full     bool     // a failure found no room; logged once until one does
}

// failures maps group and key hashes to the hash of a failure's message.
type failures struct {
	groups map[uint64]map[uint64]uint64
	n      int
}

func (f *failures) get(g, k uint64) (uint64, bool) {
	h, ok := f.groups[g][k]
	return h, ok
}

// put records a failure, and reports false when there is no room for it.
func (f *failures) put(g, k, h uint64) bool {
	keys := f.groups[g]
	if _, ok := keys[k]; !ok {
		if f.n >= MaxDecodeFailures {
			return false
		}
		f.n++
	}
	if keys == nil {
		if f.groups == nil {
			f.groups = map[uint64]map[uint64]uint64{}
		}
		keys = map[uint64]uint64{}
		f.groups[g] = keys
	}
	keys[k] = h
	return true
}

func (f *failures) forget(g, k uint64) {
	keys := f.groups[g]
	if _, ok := keys[k]; !ok {
		return
	}
	delete(keys, k)
	f.n--
	if len(keys) == 0 {
		delete(f.groups, g)
	}
}

// retain forgets the keys of group g that keep does not hold.
func (f *failures) retain(g uint64, keep map[uint64]struct{}) {
	for k := range f.groups[g] {
		if _, ok := keep[k]; !ok {
			f.forget(g, k)
		}
	}
}

func (d *DecodeLog) hash(s string) uint64 {
	if d.seed == (maphash.Seed{}) {
		d.seed = maphash.MakeSeed()
	}
	return maphash.String(d.seed, s)
}

// Failed reports that the entry key of group did not decode, with err and
// attrs for the log. It counts and logs the failure unless the key failed
// with the same message before (and was not forgotten since).
func (d *DecodeLog) Failed(group, key string, err error, attrs ...any) {
	d.mu.Lock()
	g, k, h := d.hash(group), d.hash(key), d.hash(err.Error())
	if d.listing.groups != nil {
		if prev, ok := d.listing.get(g, k); ok && prev == h {
			d.mu.Unlock()
			return // seen twice in one list
		}
	}
	prev, ok := d.reported.get(g, k)
	fresh := !ok || prev != h
	into := &d.reported
	if d.listing.groups != nil {
		into = &d.listing
	}
	stored := into.put(g, k, h)
	warnFull := !stored && !d.full
	d.full = !stored
	d.mu.Unlock()

	if !stored {
		d.Metrics.decodeUntracked(d.Source)
	}
	if warnFull {
		d.log().Warn("too many registry entries that do not decode to remember; more are counted at every sighting and not logged",
			"limit", MaxDecodeFailures)
	}
	if fresh {
		d.Metrics.DecodeError(d.Source)
		if stored {
			d.log().Warn(d.Msg, append(attrs, "err", err)...)
		}
	}
}

func (d *DecodeLog) log() *slog.Logger {
	if d.Log == nil {
		return slog.Default()
	}
	return d.Log
}

// Forget drops key of group, which decoded or went: its next failure is
// counted and logged.
func (d *DecodeLog) Forget(group, key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g, k := d.hash(group), d.hash(key)
	d.reported.forget(g, k)
	d.listing.forget(g, k)
}

// Retain forgets every key of group but keep: the group's entries that
// are still there (or still fail).
func (d *DecodeLog) Retain(group string, keep []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	set := make(map[uint64]struct{}, len(keep))
	for _, k := range keep {
		set[d.hash(k)] = struct{}{}
	}
	g := d.hash(group)
	d.reported.retain(g, set)
	d.listing.retain(g, set)
}

// StartList begins a full list: until EndList, the failures it sees are
// noted apart.
func (d *DecodeLog) StartList() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.listing = failures{groups: map[uint64]map[uint64]uint64{}}
}

// EndList ends a full list. If it completed, the failures it saw replace
// those remembered, so a key that decoded in it or was not there is
// forgotten; otherwise they are added to those remembered.
func (d *DecodeLog) EndList(completed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if completed {
		d.reported = d.listing
	} else {
		for g, keys := range d.listing.groups {
			for k, h := range keys {
				d.reported.put(g, k, h)
			}
		}
	}
	d.listing = failures{}
}
