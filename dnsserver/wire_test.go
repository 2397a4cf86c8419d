package dnsserver

import (
	"context"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/discodns/discodns/cache"
)

// sortedRRs describes a section without order (answers rotate).
func sortedRRs(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.ToLower(rr.String()))
	}
	slices.Sort(out)
	return out
}

// TestWireAnswerMatchesFullPath: every answer from the wire cache is the
// full path's answer with the ID, flags and spelling of the question.
func TestWireAnswerMatchesFullPath(t *testing.T) {
	h, _ := fixture(t, Options{UDPSize: 1232})
	for _, tc := range []struct {
		name  string
		qtype uint16
	}{
		{"web.svc.internal.", dns.TypeA}, {"WeB.Svc.Internal.", dns.TypeA}, {"_web._tcp.svc.internal.", dns.TypeSRV},
		{"web.svc.internal.", dns.TypeAAAA}, {"nope.svc.internal.", dns.TypeA}, {"big.svc.internal.", dns.TypeA},
		{"a.web.svc.internal.", dns.TypeTXT}, {"svc.internal.", dns.TypeSOA}, {"1.0.0.10.in-addr.arpa.", dns.TypePTR},
		{"_http._tcp.web.svc.internal.", dns.TypeSRV}, {"ext.svc.internal.", dns.TypeSRV},
	} {
		for _, v := range []struct {
			tcp, edns, do, rd, cd bool
			size                  uint16
		}{{}, {edns: true, size: 1232}, {edns: true, size: 4096, do: true}, {tcp: true, rd: true}, {edns: true, size: 512, cd: true}} {
			req := query(tc.name, tc.qtype)
			req.Id = 4242
			req.RecursionDesired, req.CheckingDisabled = v.rd, v.cd
			if v.edns {
				req.SetEdns0(v.size, v.do)
			}
			out, _ := h.wireAnswer(req, v.tcp)
			if out == nil {
				t.Errorf("%s %s %+v: not answered from the wire cache", tc.name, dns.TypeToString[tc.qtype], v)
				continue
			}
			got := new(dns.Msg)
			if err := got.Unpack(out); err != nil {
				t.Fatalf("%s: unpack: %v", tc.name, err)
			}
			want := h.Answer(req, v.tcp, loopback)
			if got.Id != 4242 || got.MsgHdr != want.MsgHdr || got.Question[0] != req.Question[0] ||
				!slices.Equal(sortedRRs(got.Answer), sortedRRs(want.Answer)) && !want.Truncated ||
				!slices.Equal(sortedRRs(got.Ns), sortedRRs(want.Ns)) ||
				len(got.Extra) != len(want.Extra) {
				t.Errorf("%s %s %+v:\nwire %v\nfull %v", tc.name, dns.TypeToString[tc.qtype], v, got, want)
			}
			if limit := maxSize(req.IsEdns0(), v.tcp, 1232); len(out) > limit {
				t.Errorf("%s: %d octets over %d", tc.name, len(out), limit)
			}
		}
	}
	// Forwarded and refused names take the full path.
	if out, _ := h.wireAnswer(query("example.com.", dns.TypeA), false); out != nil {
		t.Error("an answer outside the zones came from the wire cache")
	}
}

// TestWireCacheFollowsSnapshots: a new snapshot starts a new cache.
func TestWireCacheFollowsSnapshots(t *testing.T) {
	h, tb := fixture(t, Options{UDPSize: 1232})
	req := query("web.svc.internal.", dns.TypeA)
	out, _ := h.wireAnswer(req, false)
	before := new(dns.Msg)
	before.Unpack(out)
	tb.Delete("etcd", "web", "a")
	h.Update(tb.Snapshot())
	out, _ = h.wireAnswer(req, false)
	after := new(dns.Msg)
	after.Unpack(out)
	if len(before.Answer) != 3 || len(after.Answer) != 2 {
		t.Errorf("answers %d then %d, want 3 then 2", len(before.Answer), len(after.Answer))
	}
}

// len counts the entries of c.
func (c *wireCache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += len(c.shards[i].m)
		c.shards[i].mu.RUnlock()
	}
	return n
}

// entry returns the cached entry of a question, or nil.
func (h *Handler) entry(name string, qtype uint16) *wireEntry {
	c := h.wire.Load()
	q := wireQuestion{qtype: qtype, limit: dns.MinMsgSize}
	return c.get(c.sum(name, q), name, q)
}

// TestWireCacheOutlivesSnapshots: a change costs the packed answers of the
// service it changed; the others' stay, and a negative answer never
// outlives its snapshot.
func TestWireCacheOutlivesSnapshots(t *testing.T) {
	h, tb := fixture(t, Options{UDPSize: 1232})
	ask := func(name string, qtype uint16) *dns.Msg {
		t.Helper()
		out, _ := h.wireAnswer(query(name, qtype), false)
		if out == nil {
			t.Fatalf("%s: not answered from the wire cache", name)
		}
		m := new(dns.Msg)
		if err := m.Unpack(out); err != nil {
			t.Fatal(err)
		}
		return m
	}
	names := []struct {
		name  string
		qtype uint16
	}{{"web.svc.internal.", dns.TypeA}, {"mid.svc.internal.", dns.TypeA}, {"_mid._tcp.svc.internal.", dns.TypeSRV}, {"a.web.svc.internal.", dns.TypeTXT}, {"new.svc.internal.", dns.TypeA}}
	before := map[string]*wireEntry{}
	for _, n := range names {
		ask(n.name, n.qtype)
		if before[n.name] = h.entry(n.name, n.qtype); before[n.name] == nil {
			t.Fatalf("%s: no entry", n.name)
		}
	}
	if m := ask("new.svc.internal.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Fatalf("new: %v before it is registered", m)
	}
	tb.Delete("etcd", "web", "b")
	tb.Put("etcd", cache.Instance{Service: "new", ID: "x", Address: "10.9.9.9", Port: 80})
	h.Update(tb.Snapshot())
	if m := ask("new.svc.internal.", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Errorf("new after it is registered: %v", m)
	}
	if m := ask("web.svc.internal.", dns.TypeA); len(m.Answer) != 2 {
		t.Errorf("web after a delete: %d answers, want 2", len(m.Answer))
	}
	for _, n := range names {
		ask(n.name, n.qtype)
		kept := h.entry(n.name, n.qtype) == before[n.name]
		if unchanged := strings.HasPrefix(n.name, "mid.") || strings.HasPrefix(n.name, "_mid."); kept != unchanged {
			t.Errorf("%s: entry kept %v, want %v", n.name, kept, unchanged)
		}
	}
}

// TestWireCachePinsNothingStale: the entries of a negative answer and of
// a service's answer keep neither the index nor the compiled service they
// were packed from once a newer snapshot replaced them.
func TestWireCachePinsNothingStale(t *testing.T) {
	h, tb := fixture(t, Options{UDPSize: 1232})
	var collected atomic.Int32
	func() {
		idx := h.idx.Load()
		runtime.AddCleanup(idx, func(int) { collected.Add(1) }, 0)
		runtime.AddCleanup(idx.service("web.svc.internal."), func(int) { collected.Add(1) }, 0)
	}()
	for _, name := range []string{"web.svc.internal.", "nope.svc.internal."} {
		if out, _ := h.wireAnswer(query(name, dns.TypeA), false); out == nil || h.entry(name, dns.TypeA) == nil {
			t.Fatalf("%s: not answered from the wire cache", name)
		}
	}
	tb.Delete("etcd", "web", "b")
	h.Update(tb.Snapshot())
	for i := 0; collected.Load() < 2; i++ {
		if i == 100 {
			t.Fatalf("%d of the index and the service replaced were collected, want both", collected.Load())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if h.entry("web.svc.internal.", dns.TypeA) == nil || h.entry("nope.svc.internal.", dns.TypeA) == nil {
		t.Fatal("the entries left the cache: the test shows nothing")
	}
}

// countingForwarder counts the questions forwarded.
type countingForwarder struct{ n atomic.Int32 }

func (f *countingForwarder) Forward(ctx context.Context, req *dns.Msg, client netip.Addr) (*dns.Msg, error) {
	f.n.Add(1)
	return fakeForwarder{}.Forward(ctx, req, client)
}

// TestWireSkipsForwarding: a name outside the zones never reaches the
// forwarder from the wire cache, and is never cached.
func TestWireSkipsForwarding(t *testing.T) {
	f := &countingForwarder{}
	h, _ := fixture(t, Options{Forwarder: f})
	for range 3 {
		if out, _ := h.wireAnswer(query("example.com.", dns.TypeA), false); out != nil {
			t.Fatal("a forwarded name came from the wire cache")
		}
	}
	if n := f.n.Load(); n != 0 {
		t.Errorf("the wire cache forwarded %d questions", n)
	}
	if n := h.wire.Load().len(); n != 0 {
		t.Errorf("forwarded names kept in the wire cache: %d", n)
	}
}

// TestWireRotatesEveryInstance: repeated questions answered from the wire
// cache put every instance first in turn, as the full path does, for
// services with more instances than one answer rotation, and for answers
// trimmed to fit (big, 200 instances over plain UDP).
func TestWireRotatesEveryInstance(t *testing.T) {
	h, _ := fixture(t, Options{UDPSize: 1232})
	for _, tc := range []struct {
		name      string
		qtype     uint16
		instances int
	}{
		{"mid.svc.internal.", dns.TypeA, 10},
		{"_mid._tcp.svc.internal.", dns.TypeSRV, 10},
		{"_admin._tcp.mid.svc.internal.", dns.TypeSRV, 10},
		{"big.svc.internal.", dns.TypeA, 200},
	} {
		first := map[string]int{}
		for range 3 * tc.instances {
			out, _ := h.wireAnswer(query(tc.name, tc.qtype), false)
			if out == nil {
				t.Fatalf("%s: not answered from the wire cache", tc.name)
			}
			m := new(dns.Msg)
			if err := m.Unpack(out); err != nil || len(m.Answer) == 0 {
				t.Fatalf("%s: %v %v", tc.name, err, m)
			}
			switch rr := m.Answer[0].(type) {
			case *dns.A:
				first[rr.A.String()]++
			case *dns.SRV:
				first[rr.Target]++
			}
		}
		if len(first) != tc.instances {
			t.Errorf("%s %s: %d distinct first records over %d queries, want %d: %v",
				tc.name, dns.TypeToString[tc.qtype], len(first), 3*tc.instances, tc.instances, first)
		}
		for rr, n := range first {
			if n != 3 {
				t.Errorf("%s: %s first %d times in %d queries, want 3", tc.name, rr, n, 3*tc.instances)
			}
		}
	}
}
