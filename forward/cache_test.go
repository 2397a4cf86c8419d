package forward

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCacheTTL(t *testing.T) {
	soa := func(ttl, minTTL uint32) dns.RR {
		return &dns.SOA{Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl}, Minttl: minTTL}
	}
	a := func(ttl uint32) dns.RR {
		return &dns.A{Hdr: dns.RR_Header{Name: "a.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}}
	}
	tests := []struct {
		name  string
		msg   dns.Msg
		ttl   uint32
		cache bool
	}{
		{"answer", dns.Msg{Answer: []dns.RR{a(300), a(60), a(600)}}, 60, true},
		{"answer capped", dns.Msg{Answer: []dns.RR{a(1 << 30)}}, 86400, true},
		{"answer TTL 0", dns.Msg{Answer: []dns.RR{a(0)}}, 0, false},
		{"NXDOMAIN SOA TTL", dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeNameError}, Ns: []dns.RR{soa(30, 3600)}}, 30, true},
		{"NXDOMAIN SOA MINIMUM", dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeNameError}, Ns: []dns.RR{soa(3600, 120)}}, 120, true},
		{"NXDOMAIN capped", dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeNameError}, Ns: []dns.RR{soa(1<<30, 1<<30)}}, 86400, true},
		{"NXDOMAIN without SOA", dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeNameError}}, 0, false},
		{"NODATA SOA", dns.Msg{Ns: []dns.RR{soa(300, 60)}}, 60, true},
		{"NODATA without SOA", dns.Msg{}, 0, false},
		{"SERVFAIL", dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeServerFailure}, Ns: []dns.RR{soa(300, 60)}}, 0, false},
		{"REFUSED", dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeRefused}}, 0, false},
		{"FORMERR", dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeFormatError}}, 0, false},
		{"truncated", dns.Msg{MsgHdr: dns.MsgHdr{Truncated: true}, Answer: []dns.RR{a(300)}}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ttl, ok := cacheTTL(&tt.msg)
			if ok != tt.cache || (ok && ttl != tt.ttl) {
				t.Errorf("cacheTTL = %d, %v; want %d, %v", ttl, ok, tt.ttl, tt.cache)
			}
		})
	}
}

func TestCacheHitDecrementsTTL(t *testing.T) {
	up := startUpstream(t, answer(300, 600))
	f, _, clock := newTestForwarder(t, Config{Upstreams: []string{up.addr}, CacheSize: 10})
	m := mustForward(t, f, query("example.com.", dns.TypeA, false))
	if got := ttls(m.Answer); !slices.Equal(got, []uint32{300, 300}) {
		t.Errorf("first answer TTLs %v, want [300 300] (capped at the cache time)", got)
	}
	clock.advance(100 * time.Second)
	req := query("EXAMPLE.com.", dns.TypeA, false)
	req.Id = 777
	m = mustForward(t, f, req)
	if up.count() != 1 {
		t.Fatalf("%d upstream queries, want the second answer from the cache", up.count())
	}
	if got := ttls(m.Answer); !slices.Equal(got, []uint32{200, 200}) {
		t.Errorf("TTLs after 100 s %v, want [200 200]", got)
	}
	if m.Id != 777 || m.Question[0].Name != "EXAMPLE.com." || m.IsEdns0() == nil {
		t.Errorf("cached reply not made for the request: %v", m)
	}
	// Modifying a reply does not change the cache.
	m.Answer[0].Header().Ttl = 5
	m.Answer = nil
	clock.advance(199 * time.Second)
	m = mustForward(t, f, query("example.com.", dns.TypeA, false))
	if got := ttls(m.Answer); up.count() != 1 || !slices.Equal(got, []uint32{1, 1}) {
		t.Errorf("TTLs after 299 s %v from %d queries, want [1 1] from the cache", got, up.count())
	}
	if hits, misses := testutil.ToFloat64(f.metrics.cacheHits), testutil.ToFloat64(f.metrics.cacheMisses); hits != 2 || misses != 1 {
		t.Errorf("hits %v misses %v, want 2 1", hits, misses)
	}
	// Expired: asked again.
	clock.advance(time.Second)
	mustForward(t, f, query("example.com.", dns.TypeA, false))
	if up.count() != 2 {
		t.Errorf("%d upstream queries, want the expired entry refreshed", up.count())
	}
	// DO, type and class are part of the key.
	mustForward(t, f, query("example.com.", dns.TypeA, true))
	mustForward(t, f, query("example.com.", dns.TypeAAAA, false))
	if up.count() != 4 {
		t.Errorf("%d upstream queries, want DO and type in the cache key", up.count())
	}
}

func TestNegativeCaching(t *testing.T) {
	tests := []struct {
		name  string
		reply replyFunc
		ttl   time.Duration // 0: not cached
	}{
		{"NXDOMAIN, SOA MINIMUM", negative(dns.RcodeNameError, 300, 60), 60 * time.Second},
		{"NXDOMAIN, SOA TTL", negative(dns.RcodeNameError, 45, 3600), 45 * time.Second},
		{"NODATA", negative(dns.RcodeSuccess, 300, 60), 60 * time.Second},
		{"NXDOMAIN without SOA", negative(dns.RcodeNameError, 0, 0), 0},
		{"NODATA without SOA", negative(dns.RcodeSuccess, 0, 0), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := startUpstream(t, tt.reply)
			f, _, clock := newTestForwarder(t, Config{Upstreams: []string{up.addr}, CacheSize: 10})
			m := mustForward(t, f, query("nx.example.", dns.TypeA, false))
			if len(m.Answer) != 0 {
				t.Fatalf("reply %v", m)
			}
			clock.advance(tt.ttl - time.Second)
			m = mustForward(t, f, query("nx.example.", dns.TypeA, false))
			if tt.ttl == 0 {
				if up.count() != 2 {
					t.Errorf("%d upstream queries, want the negative answer not cached", up.count())
				}
				return
			}
			if up.count() != 1 {
				t.Fatalf("%d upstream queries, want the negative answer cached", up.count())
			}
			if m.Rcode != tt.reply(query("nx.example.", dns.TypeA, false), false).Rcode {
				t.Errorf("cached rcode %s", dns.RcodeToString[m.Rcode])
			}
			if got := ttls(m.Ns); !slices.Equal(got, []uint32{1}) {
				t.Errorf("SOA TTL %v, want [1]", got)
			}
			clock.advance(time.Second)
			mustForward(t, f, query("nx.example.", dns.TypeA, false))
			if up.count() != 2 {
				t.Errorf("%d upstream queries, want the negative answer expired after %v", up.count(), tt.ttl)
			}
		})
	}
}

func TestNoCachingOfFailures(t *testing.T) {
	for _, rcode := range []int{dns.RcodeServerFailure, dns.RcodeRefused} {
		t.Run(dns.RcodeToString[rcode], func(t *testing.T) {
			up := startUpstream(t, negative(rcode, 300, 300))
			f, _, _ := newTestForwarder(t, Config{Upstreams: []string{up.addr}, CacheSize: 10})
			for i := 1; i <= 2; i++ {
				if m, err := forward(t, f, query("example.com.", dns.TypeA, false)); err == nil {
					t.Fatalf("got %v, want an error", m)
				}
				if up.count() != i {
					t.Fatalf("%d upstream queries after %d, want no caching", up.count(), i)
				}
			}
			if f.cache.lru.Len() != 0 {
				t.Errorf("%d cache entries", f.cache.lru.Len())
			}
		})
	}
	// Nothing is cached when the cache is off.
	up := startUpstream(t, answer(300))
	f, _, _ := newTestForwarder(t, Config{Upstreams: []string{up.addr}})
	mustForward(t, f, query("example.com.", dns.TypeA, false))
	mustForward(t, f, query("example.com.", dns.TypeA, false))
	if up.count() != 2 {
		t.Errorf("%d upstream queries with the cache off, want 2", up.count())
	}
}

func TestServeStale(t *testing.T) {
	tests := []struct {
		name string
		kill func(*fakeUpstream)
	}{
		{"SERVFAIL", func(u *fakeUpstream) { u.setReply(rcodeReply(dns.RcodeServerFailure)) }},
		{"no reply", func(u *fakeUpstream) { u.setReply(func(*dns.Msg, bool) *dns.Msg { return nil }) }},
		{"stopped", (*fakeUpstream).stop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // the silent upstreams' timeouts overlap
			a := startUpstream(t, answer(60, 120))
			b := startUpstream(t, answer(60, 120))
			f, _, clock := newTestForwarder(t, Config{
				Upstreams: []string{a.addr, b.addr},
				CacheSize: 10,
				MaxStale:  time.Hour,
				Timeout:   silentUpstreamTimeout,
			})
			mustForward(t, f, query("example.com.", dns.TypeA, true))
			tt.kill(a)
			tt.kill(b)
			clock.advance(time.Minute + 30*time.Second)
			m := mustForward(t, f, query("example.com.", dns.TypeA, true))
			if got := ttls(m.Answer); m.Rcode != dns.RcodeSuccess || !slices.Equal(got, []uint32{30, 30}) {
				t.Errorf("stale reply %s with TTLs %v, want NOERROR with [30 30]", dns.RcodeToString[m.Rcode], got)
			}
			if o := m.IsEdns0(); o == nil || !o.Do() || o.UDPSize() != 1232 {
				t.Errorf("stale reply's OPT %v", o)
			}
			if got := testutil.ToFloat64(f.metrics.stale); got != 1 {
				t.Errorf("stale_answers_total = %v, want 1", got)
			}
			// At most MaxStale past expiry.
			clock.advance(time.Hour - 30*time.Second)
			mustForward(t, f, query("example.com.", dns.TypeA, true))
			clock.advance(time.Second)
			if m, err := forward(t, f, query("example.com.", dns.TypeA, true)); err == nil {
				t.Errorf("got %v more than MaxStale past expiry, want an error", m)
			}
			if got := testutil.ToFloat64(f.metrics.stale); got != 2 {
				t.Errorf("stale_answers_total = %v, want 2", got)
			}
		})
	}
}

// TestServeStaleDisabled: max_stale 0 (and less) never serves stale.
func TestServeStaleDisabled(t *testing.T) {
	for _, maxStale := range []time.Duration{0, -1} {
		up := startUpstream(t, answer(60))
		f, _, clock := newTestForwarder(t, Config{Upstreams: []string{up.addr}, CacheSize: 10, MaxStale: maxStale})
		mustForward(t, f, query("example.com.", dns.TypeA, false))
		up.setReply(rcodeReply(dns.RcodeServerFailure))
		clock.advance(61 * time.Second)
		if m, err := forward(t, f, query("example.com.", dns.TypeA, false)); err == nil {
			t.Errorf("max stale %v: got %v with serve-stale off, want an error", maxStale, m)
		}
	}
}

func TestErrorWhenNothingCached(t *testing.T) {
	up := startUpstream(t, answer(60))
	f, _, _ := newTestForwarder(t, Config{Upstreams: []string{up.addr}, CacheSize: 10})
	mustForward(t, f, query("cached.example.", dns.TypeA, false))
	up.stop()
	m, err := forward(t, f, query("other.example.", dns.TypeA, false))
	if err == nil || m != nil {
		t.Errorf("got %v, %v; want only an error", m, err)
	}
	// A fresh entry is still served.
	mustForward(t, f, query("cached.example.", dns.TypeA, false))
}

// TestCacheEntrySizeCap: a response that would take more than
// maxEntrySize of memory is answered but not cached (counted), however
// small it is on the wire; a hostile upstream or zone cannot make each
// cache entry a megabyte.
func TestCacheEntrySizeCap(t *testing.T) {
	long := strings.Repeat(strings.Repeat("a", 63)+".", 3) + "example."
	// records replies with n A records for the question, over TCP when
	// tcp is set (truncated over UDP).
	records := func(n int, overTCP bool) replyFunc {
		return func(r *dns.Msg, tcp bool) *dns.Msg {
			m := new(dns.Msg).SetReply(r)
			m.Compress = true
			if overTCP && !tcp {
				m.Truncated = true
				return m
			}
			for i := range n {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300},
					A:   net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)),
				})
			}
			return m
		}
	}
	tests := []struct {
		name    string
		qname   string
		records int
		overTCP bool
		cached  bool
	}{
		{"a few records", "example.com.", 5, false, true},
		{"40 records", "example.com.", 40, false, true},
		{"100 records over TCP", "example.com.", 100, true, true},
		{"200 records", "example.com.", 200, true, false},
		{"64 KiB of pointers to a long name", long, 3900, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := startUpstream(t, records(tt.records, tt.overTCP))
			f, _, _ := newTestForwarder(t, Config{Upstreams: []string{up.addr}, CacheSize: 10})
			for range 2 {
				if m := mustForward(t, f, query(tt.qname, dns.TypeA, false)); len(m.Answer) != tt.records {
					t.Fatalf("%d records answered, want %d", len(m.Answer), tt.records)
				}
			}
			want := 1 // upstream queries per lookup: UDP, and TCP after TC
			if tt.overTCP {
				want = 2
			}
			if !tt.cached {
				want *= 2
			}
			if up.count() != want {
				t.Errorf("%d upstream queries for 2 lookups, want %d (cached: %v)", up.count(), want, tt.cached)
			}
			tooLarge := 0.0
			if !tt.cached {
				tooLarge = 2
			}
			if got := testutil.ToFloat64(f.metrics.cacheTooLarge); got != tooLarge {
				t.Errorf("cache_too_large_total %v, want %v", got, tooLarge)
			}
		})
	}
}
