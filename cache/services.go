package cache

import (
	"hash/maphash"
	"iter"
	"maps"
)

// serviceShards is the number of shards of Services: a change copies one
// shard (about 1/256 of the table) and the array of shard pointers.
const serviceShards = 256

// shardSeed makes ShardOf stable for the life of the process.
var shardSeed = maphash.MakeSeed()

// ShardOf returns the shard of Services that holds fqdn.
func ShardOf(fqdn string) int { return int(maphash.String(shardSeed, fqdn) % serviceShards) }

// Services is an immutable set of services by FQDN. It is split in shards
// so that publishing a change copies one shard, not the table; a shard
// that did not change keeps its pointer from one snapshot to the next.
type Services struct {
	shards [serviceShards]*ServiceShard
}

// ServiceShard is one shard of Services; immutable once published.
type ServiceShard struct {
	m map[string]*Service
}

// All yields the shard's services by FQDN.
func (s *ServiceShard) All() iter.Seq2[string, *Service] {
	return func(yield func(string, *Service) bool) {
		if s == nil {
			return
		}
		for k, v := range s.m {
			if !yield(k, v) {
				return
			}
		}
	}
}

// Get returns the service with fqdn in the shard, or nil.
func (s *ServiceShard) Get(fqdn string) *Service {
	if s == nil {
		return nil
	}
	return s.m[fqdn]
}

// Len is the number of services in the shard.
func (s *ServiceShard) Len() int {
	if s == nil {
		return 0
	}
	return len(s.m)
}

// Get returns the service with fqdn, or nil.
func (s *Services) Get(fqdn string) *Service {
	if s == nil {
		return nil
	}
	return s.shards[ShardOf(fqdn)].Get(fqdn)
}

// Len is the number of services.
func (s *Services) Len() int {
	n := 0
	if s != nil {
		for _, sh := range s.shards {
			n += sh.Len()
		}
	}
	return n
}

// All yields every service by FQDN, in no order.
func (s *Services) All() iter.Seq2[string, *Service] {
	return func(yield func(string, *Service) bool) {
		if s == nil {
			return
		}
		for _, sh := range s.shards {
			for k, v := range sh.All() {
				if !yield(k, v) {
					return
				}
			}
		}
	}
}

// Shard returns shard i (0 to 255), nil when empty.
func (s *Services) Shard(i int) *ServiceShard {
	if s == nil {
		return nil
	}
	return s.shards[i]
}

// NumShards is the number of shards of a Services.
const NumShards = serviceShards

// with returns a copy of s with the services of changes set (nil
// removes), copying only the shards they fall in.
func (s *Services) with(changes map[string]*Service) *Services {
	next := &Services{}
	if s != nil {
		next.shards = s.shards
	}
	copied := map[int]bool{}
	for fqdn, svc := range changes {
		i := ShardOf(fqdn)
		if !copied[i] {
			copied[i] = true
			m := map[string]*Service{}
			if old := next.shards[i]; old != nil {
				m = maps.Clone(old.m) // copies the map's groups whole: far cheaper than inserting anew
			}
			next.shards[i] = &ServiceShard{m: m}
		}
		if svc == nil {
			delete(next.shards[i].m, fqdn)
		} else {
			next.shards[i].m[fqdn] = svc
		}
	}
	for i := range copied {
		if len(next.shards[i].m) == 0 {
			next.shards[i] = nil
		}
	}
	return next
}
