package cache

import (
	"fmt"
	"time"
)

// Seed sets the instances of a source that has not listed yet from a
// state file written at written: they are served, the source counts as
// listed (so the table can be ready), and it is marked stale, with
// SourceStatus.Seeded set, until its first Replace replaces them. It
// does nothing, and returns false, when the source is unknown or has
// listed already: a live list always wins over the file. The seeded
// instances are in the snapshot when Seed returns.
func (t *Table) Seed(source string, instances []Instance, written time.Time) bool {
	seeded := false
	t.write(true, func() bool {
		src := t.source(source)
		if src == nil || src.status.Listed {
			return false
		}
		t.replace(source, src, instances)
		src.status.LastList = written
		src.status.Seeded = written
		t.setState(src, StateStale, fmt.Errorf("serving %d instances from the state file written %s, until the registry lists",
			src.count, written.UTC().Format(time.RFC3339)), t.now())
		seeded = true
		return true
	})
	return seeded
}
