package cache

import (
	"hash/maphash"
	"iter"

	"github.com/discodns/discodns/cache/shardmap"
)

// serviceShards is the number of shards of Services. A change copies the
// array of shard pointers, and in its shard a bucket of about 1/16,384 of
// the table (see shardmap); what is derived per shard (the dnsserver's
// reverse map and zone statistics) is rebuilt for the shards that changed.
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
	m *shardmap.Map[*Service]
}

// All yields the shard's services by FQDN.
func (s *ServiceShard) All() iter.Seq2[string, *Service] {
	return func(yield func(string, *Service) bool) {
		if s == nil {
			return
		}
		for k, v := range s.m.All() {
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
	svc, _ := s.m.Get(fqdn)
	return svc
}

// Len is the number of services in the shard.
func (s *ServiceShard) Len() int {
	if s == nil {
		return 0
	}
	return s.m.Len()
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
// removes), copying only the buckets they fall in.
func (s *Services) with(changes map[string]*Service) *Services {
	next := &Services{}
	if s != nil {
		next.shards = s.shards
	}
	edits := map[int]*shardmap.Builder[*Service]{}
	for fqdn, svc := range changes {
		i := ShardOf(fqdn)
		e := edits[i]
		if e == nil {
			var old *shardmap.Map[*Service]
			if next.shards[i] != nil {
				old = next.shards[i].m
			}
			e = old.Edit()
			edits[i] = e
		}
		if svc == nil {
			e.Delete(fqdn)
		} else {
			e.Set(fqdn, svc)
		}
	}
	for i, e := range edits {
		if e.Len() == 0 {
			next.shards[i] = nil
		} else {
			next.shards[i] = &ServiceShard{m: e.Map()}
		}
	}
	return next
}
