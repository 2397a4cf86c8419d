package forward

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	// maxTTL caps how long any response is cached.
	maxTTL = 24 * 60 * 60
	// staleTTL is the TTL of every record in a stale answer (RFC 8767
	// section 4 recommends 30 seconds).
	staleTTL = 30
	// maxEntrySize caps the memory one cached response may take, as
	// entrySize estimates it, so that the cache takes at most about
	// CacheSize times this. An upstream reply over TCP may be 64 KiB,
	// and with every name a compression pointer to a long name it takes
	// over a megabyte once parsed. Larger responses are answered but not
	// cached.
	maxEntrySize = 16 << 10
	// recordOverhead is about what a parsed record takes beyond its
	// uncompressed wire length (its struct, slices and interface value).
	recordOverhead = 100
)

// cacheKey identifies a cached response: the lowercase name, the type and
// class of the question, and the DO and CD bits of the query.
type cacheKey struct {
	name   string
	qtype  uint16
	qclass uint16
	do, cd bool
}

// String returns the key as a string for singleflight.
func (k cacheKey) String() string {
	b := make([]byte, 0, len(k.name)+5)
	b = append(b, k.name...)
	b = append(b, byte(k.qtype>>8), byte(k.qtype), byte(k.qclass>>8), byte(k.qclass))
	var flags byte
	if k.do {
		flags |= 1
	}
	if k.cd {
		flags |= 2
	}
	return string(append(b, flags))
}

// entry is a cached response. msg is never modified after it is stored; its
// records' TTLs are at most the entry's lifetime.
type entry struct {
	msg     *dns.Msg
	stored  time.Time
	expires time.Time
}

// cache holds upstream responses, including expired ones until they are
// evicted, so they can be served stale.
type cache struct {
	lru      *lru.Cache[cacheKey, *entry]
	maxStale time.Duration      // <= 0: never serve stale
	tooLarge prometheus.Counter // responses not cached for their size
}

func newCache(size int, maxStale time.Duration, tooLarge prometheus.Counter) (*cache, error) {
	l, err := lru.New[cacheKey, *entry](size)
	if err != nil {
		return nil, err
	}
	return &cache{lru: l, maxStale: maxStale, tooLarge: tooLarge}, nil
}

// fresh returns a copy of the unexpired response for k with its TTLs
// decremented by its age, or nil.
func (c *cache) fresh(k cacheKey, now time.Time) *dns.Msg {
	if c == nil {
		return nil
	}
	e, ok := c.lru.Get(k)
	if !ok || !now.Before(e.expires) {
		return nil
	}
	age := now.Sub(e.stored) / time.Second
	return clone(e.msg, uint32(max(age, 0)), 0)
}

// stale returns a copy of the expired response for k with every TTL set to
// staleTTL if it expired at most maxStale ago, or nil.
func (c *cache) stale(k cacheKey, now time.Time) *dns.Msg {
	if c == nil || c.maxStale <= 0 {
		return nil
	}
	e, ok := c.lru.Peek(k)
	if !ok || now.Before(e.expires) || now.Sub(e.expires) > c.maxStale {
		return nil
	}
	return clone(e.msg, 0, staleTTL)
}

// add caches m under k if it is cacheable and at most maxEntrySize. m
// must not be modified afterwards; add lowers its TTLs to the time it is
// cached for.
func (c *cache) add(k cacheKey, m *dns.Msg, now time.Time) {
	if c == nil {
		return
	}
	ttl, ok := cacheTTL(m)
	if !ok {
		return
	}
	if entrySize(m) > maxEntrySize {
		c.tooLarge.Inc()
		return
	}
	for _, s := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range s {
			if h := rr.Header(); h.Ttl > ttl {
				h.Ttl = ttl
			}
		}
	}
	c.lru.Add(k, &entry{msg: m, stored: now, expires: now.Add(time.Duration(ttl) * time.Second)})
}

// cacheTTL returns how long m may be cached: the smallest TTL in the answer
// of a positive response, min(SOA TTL, SOA MINIMUM) of a negative one (RFC
// 2308 section 5), at most maxTTL. Truncated responses, responses with
// other rcodes, negative responses without an SOA and zero TTLs are not
// cached.
func cacheTTL(m *dns.Msg) (uint32, bool) {
	if m.Truncated {
		return 0, false
	}
	var ttl uint32
	switch {
	case m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0:
		ttl = maxTTL
		for _, rr := range m.Answer {
			ttl = min(ttl, rr.Header().Ttl)
		}
	case m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError:
		soa := negativeSOA(m)
		if soa == nil {
			return 0, false
		}
		ttl = min(soa.Hdr.Ttl, soa.Minttl, maxTTL)
	default:
		return 0, false
	}
	return ttl, ttl > 0
}

// entrySize estimates the memory m takes once parsed: its wire length with
// every name spelled out, plus recordOverhead per record.
func entrySize(m *dns.Msg) int {
	u := *m // a shallow copy, to count the length uncompressed
	u.Compress = false
	return u.Len() + (len(m.Answer)+len(m.Ns)+len(m.Extra))*recordOverhead
}

// negativeSOA returns the SOA record in the authority section, or nil.
func negativeSOA(m *dns.Msg) *dns.SOA {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa
		}
	}
	return nil
}

// clone returns a deep copy of m, with room for one more record in Extra.
// Every TTL is set to fixed if it is not 0, or else decremented by a
// non-zero age but never below 1. OPT records are copied unchanged.
func clone(m *dns.Msg, age, fixed uint32) *dns.Msg {
	c := &dns.Msg{MsgHdr: m.MsgHdr, Compress: m.Compress}
	na, nns, ne := len(m.Answer), len(m.Ns), len(m.Extra)
	rrs := make([]dns.RR, 0, na+nns+ne+1)
	rrs = copyRRs(rrs, m.Answer, age, fixed)
	rrs = copyRRs(rrs, m.Ns, age, fixed)
	rrs = copyRRs(rrs, m.Extra, age, fixed)
	if na > 0 {
		c.Answer = rrs[:na:na]
	}
	if nns > 0 {
		c.Ns = rrs[na : na+nns : na+nns]
	}
	if ne > 0 {
		c.Extra = rrs[na+nns : na+nns+ne]
	} else {
		c.Extra = rrs[na+nns : na+nns]
	}
	return c
}

func copyRRs(dst, src []dns.RR, age, fixed uint32) []dns.RR {
	for _, rr := range src {
		rr = dns.Copy(rr)
		if h := rr.Header(); h.Rrtype != dns.TypeOPT {
			switch {
			case fixed != 0:
				h.Ttl = fixed
			case age == 0:
			case h.Ttl > age:
				h.Ttl -= age
			default:
				h.Ttl = 1
			}
		}
		dst = append(dst, rr)
	}
	return dst
}
