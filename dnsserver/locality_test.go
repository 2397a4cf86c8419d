package dnsserver

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/discodns/discodns/cache"
)

// localityFixture returns a handler in zone a, region r, over:
//
//	api:   a1 10.0.0.1 zone=a (tags v2 eu canary), a2 10.0.0.2 zone=a (v2 eu),
//	       b1 10.0.0.3 zone=b region=r (v2), b2 10.0.0.4
//	       topology.kubernetes.io/zone=b (eu blue), c1 10.0.0.5 region=r (v2 eu)
//	plain: p1 10.0.1.1, p2 10.0.1.2, no locality data
//	node:  n1 10.0.2.1 node meta zone=a, n2 10.0.2.2 node meta zone=b
//	dual:  d1 2001:db8::1 zone=a, d2 10.0.3.2 zone=b
func localityFixture(t testing.TB, loc Locality) *Handler {
	t.Helper()
	tb := cache.NewTable(quiet)
	tb.AddSource("etcd", testZone)
	inst := func(svc, id, addr string, prio uint16, tags []string, meta ...string) cache.Instance {
		in := cache.Instance{Service: svc, ID: id, Address: addr, Port: 80, Priority: prio, Weight: 7, Tags: tags}
		for i := 0; i+1 < len(meta); i += 2 {
			if in.Meta == nil {
				in.Meta = map[string]string{}
			}
			in.Meta[meta[i]] = meta[i+1]
		}
		return in
	}
	n1, n2 := inst("node", "n1", "10.0.2.1", 1, nil), inst("node", "n2", "10.0.2.2", 1, nil)
	n1.NodeMeta, n2.NodeMeta = map[string]string{"zone": "A"}, map[string]string{"zone": "b"}
	tb.Replace("etcd", []cache.Instance{
		inst("api", "a1", "10.0.0.1", 1, []string{"v2", "eu", "canary"}, "zone", "a"),
		inst("api", "a2", "10.0.0.2", 1, []string{"v2", "eu"}, "zone", "a"),
		inst("api", "b1", "10.0.0.3", 1, []string{"v2"}, "zone", "b", "region", "r"),
		inst("api", "b2", "10.0.0.4", 1, []string{"eu", "blue"}, "topology.kubernetes.io/zone", "b"),
		inst("api", "c1", "10.0.0.5", 1, []string{"v2", "eu"}, "region", "r"),
		inst("plain", "p1", "10.0.1.1", 1, nil),
		inst("plain", "p2", "10.0.1.2", 1, nil),
		n1, n2,
		inst("dual", "d1", "2001:db8::1", 1, nil, "zone", "a"),
		inst("dual", "d2", "10.0.3.2", 1, nil, "zone", "b"),
	})
	if loc.DefaultKeys.Zone == nil {
		loc.DefaultKeys = LocalityKeys{Zone: []string{"zone", "topology.kubernetes.io/zone"}, Region: []string{"region"}}
	}
	h := NewHandler(Options{Zone: testZone, TTL: 5 * time.Second, NegativeTTL: 5 * time.Second, UDPSize: 1232, Locality: loc}, nil, quiet)
	h.Update(tb.Snapshot())
	return h
}

// ask answers one question through Respond, the whole answer path with
// the wire cache.
func ask(t testing.TB, h *Handler, name string, qtype uint16) (*dns.Msg, Outcome) {
	t.Helper()
	out, o := h.Respond(query(name, qtype), false, loopback)
	m := new(dns.Msg)
	if err := m.Unpack(out); err != nil {
		t.Fatal(err)
	}
	return m, o
}

// summary renders an answer, sorted: A and AAAA as their address, SRV as
// priority/weight/target label.
func summary(m *dns.Msg) string {
	var out []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		case *dns.SRV:
			out = append(out, fmt.Sprintf("%d/%d/%s", rr.Priority, rr.Weight, strings.SplitN(rr.Target, ".", 2)[0]))
		default:
			out = append(out, rr.String())
		}
	}
	slices.Sort(out)
	return dns.RcodeToString[m.Rcode] + " " + strings.Join(out, " ")
}

func TestLocalityAnswers(t *testing.T) {
	here := Locality{Zone: "a", Region: "r", MinLocalCount: 1}
	tests := []struct {
		name  string
		loc   Locality
		qname string
		qtype uint16
		want  string
		res   localResult
	}{
		{"A same zone alone", here, "api", dns.TypeA, "NOERROR 10.0.0.1 10.0.0.2", localLocal},
		{"SRV by tier, weights kept", here, "_api._tcp", dns.TypeSRV, "NOERROR 0/7/a1 0/7/a2 1/7/b1 1/7/c1 2/7/b2", localLocal},
		{"SRV at the service name", here, "api", dns.TypeSRV, "NOERROR 0/7/a1 0/7/a2 1/7/b1 1/7/c1 2/7/b2", localLocal},
		{"bypass A", here, "_all.api", dns.TypeA, "NOERROR 10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5", localNone},
		{"bypass SRV", here, "_all.api", dns.TypeSRV, "NOERROR 1/7/a1 1/7/a2 1/7/b1 1/7/b2 1/7/c1", localNone},
		{"tag", here, "v2.api", dns.TypeA, "NOERROR 10.0.0.1 10.0.0.2", localLocal},
		{"bypass tag", here, "_all.v2.api", dns.TypeA, "NOERROR 10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.5", localNone},
		{"no locality data", here, "plain", dns.TypeA, "NOERROR 10.0.1.1 10.0.1.2", localNone},
		{"no locality data SRV", here, "_plain._tcp", dns.TypeSRV, "NOERROR 1/7/p1 1/7/p2", localNone},
		{"node meta", here, "node", dns.TypeA, "NOERROR 10.0.2.1", localLocal},
		{"A by family: none here, spilled", here, "dual", dns.TypeA, "NOERROR 10.0.3.2", localSpilled},
		{"AAAA by family", here, "dual", dns.TypeAAAA, "NOERROR 2001:db8::1", localLocal},
		{"SRV of both families", here, "dual", dns.TypeSRV, "NOERROR 0/7/d1 1/7/d2", localLocal},
		{"TXT: no locality", here, "api", dns.TypeTXT, "NOERROR ", localNone},
		{"locality off", Locality{}, "api", dns.TypeA, "NOERROR 10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5", localNone},
		{"locality off SRV", Locality{}, "api", dns.TypeSRV, "NOERROR 1/7/a1 1/7/a2 1/7/b1 1/7/b2 1/7/c1", localNone},
		{"count unmet: spilled", Locality{Zone: "a", Region: "r", MinLocalCount: 3}, "api", dns.TypeA,
			"NOERROR 10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5", localSpilled},
		{"count unmet: zone joins region", Locality{Zone: "a", Region: "r", MinLocalCount: 3}, "api", dns.TypeSRV,
			"NOERROR 0/7/a1 0/7/a2 0/7/b1 0/7/c1 1/7/b2", localSpilled},
		{"fraction unmet", Locality{Zone: "a", Region: "r", MinLocalFraction: 0.5}, "api", dns.TypeA,
			"NOERROR 10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5", localSpilled},
		{"fraction met", Locality{Zone: "a", Region: "r", MinLocalFraction: 0.4}, "api", dns.TypeA, "NOERROR 10.0.0.1 10.0.0.2", localLocal},
		{"per set: tag meets it", Locality{Zone: "a", Region: "r", MinLocalFraction: 0.5}, "v2.api", dns.TypeA, "NOERROR 10.0.0.1 10.0.0.2", localLocal},
		{"no zone here", Locality{Zone: "z", Region: "r", MinLocalCount: 1}, "api", dns.TypeSRV,
			"NOERROR 0/7/b1 0/7/c1 1/7/a1 1/7/a2 1/7/b2", localSpilled},
		{"source keys", Locality{Zone: "a", MinLocalCount: 1, Keys: map[string]LocalityKeys{"etcd": {Zone: []string{"topology.kubernetes.io/zone"}}}},
			"api", dns.TypeSRV, "NOERROR 0/7/a1 0/7/a2 0/7/b1 0/7/b2 0/7/c1", localSpilled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := localityFixture(t, tt.loc)
			for range 2 { // built, then from the wire cache
				m, o := ask(t, h, tt.qname+"."+testZone, tt.qtype)
				if got := summary(m); got != tt.want || o.Locality != tt.res {
					t.Fatalf("%s %s: %s (locality %d), want %s (%d)", tt.qname, dns.TypeToString[tt.qtype], got, o.Locality, tt.want, tt.res)
				}
			}
		})
	}
}

func TestTagIntersections(t *testing.T) {
	tests := []struct {
		qname string
		qtype uint16
		want  string
	}{
		{"v2_eu.api", dns.TypeA, "NOERROR 10.0.0.1 10.0.0.2"},
		{"eu_v2.api", dns.TypeA, "NOERROR 10.0.0.1 10.0.0.2"},
		{"_all.v2_eu.api", dns.TypeA, "NOERROR 10.0.0.1 10.0.0.2 10.0.0.5"},
		{"v2_eu.api", dns.TypeSRV, "NOERROR 0/7/a1 0/7/a2 1/7/c1"},
		{"_api._v2_eu", dns.TypeSRV, "NOERROR 0/7/a1 0/7/a2 1/7/c1"},
		{"_api._v2_eu", dns.TypeA, "NOERROR "}, // SRV-only name: NODATA
		{"_all._api._v2_eu", dns.TypeSRV, "NOERROR 1/7/a1 1/7/a2 1/7/c1"},
		{"v2_eu_canary.api", dns.TypeA, "NOERROR 10.0.0.1"},
		{"canary_eu_v2.api", dns.TypeSRV, "NOERROR 0/7/a1"},
		{"eu_blue.api", dns.TypeA, "NOERROR 10.0.0.4"},
		{"v2_eu.api", dns.TypeAAAA, "NOERROR "},     // instances, none with IPv6: NODATA
		{"v2_eu.api", dns.TypeTXT, "NOERROR "},      // a set has no TXT: NODATA
		{"canary_blue.api", dns.TypeA, "NXDOMAIN "}, // no instance carries both
		{"v2_red.api", dns.TypeA, "NXDOMAIN "},      // no such tag
		{"v2_.api", dns.TypeA, "NXDOMAIN "},         // an empty tag
		{"_v2_eu.api", dns.TypeA, "NXDOMAIN "},      // not an intersection
		{"v2_eu.plain", dns.TypeA, "NXDOMAIN "},     // a service without tags
		{"v2_eu.nosuch", dns.TypeA, "NXDOMAIN "},    // no such service
		{"a1_a2.api", dns.TypeA, "NXDOMAIN "},       // instance labels are no tags
		{"_all.canary_blue.api", dns.TypeA, "NXDOMAIN "},
		{"_all._all.api", dns.TypeA, "NXDOMAIN "},
		{"_all", dns.TypeA, "NXDOMAIN "},
		{"_v2_eu", dns.TypeA, "NOERROR "},    // above _api._v2_eu: an empty non-terminal
		{"_v2_red", dns.TypeA, "NXDOMAIN "},  // no service carries red
		{"_v2_eu.x", dns.TypeA, "NXDOMAIN "}, // no service x
	}
	h := localityFixture(t, Locality{Zone: "a", Region: "r", MinLocalCount: 1})
	for _, tt := range tests {
		m, _ := ask(t, h, tt.qname+"."+testZone, tt.qtype)
		if got := summary(m); got != tt.want {
			t.Errorf("%s %s: %s, want %s", tt.qname, dns.TypeToString[tt.qtype], got, tt.want)
		}
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0 {
			if len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA {
				t.Errorf("%s %s: negative answer without the SOA: %v", tt.qname, dns.TypeToString[tt.qtype], m.Ns)
			}
		}
	}
}

// TestLocalityFollowsOptions checks that answers kept in the wire cache
// follow the host's locality when SetOptions changes it, and a change of
// the service's instances.
func TestLocalityFollowsOptions(t *testing.T) {
	h := localityFixture(t, Locality{Zone: "a", MinLocalCount: 1})
	if m, _ := ask(t, h, "api."+testZone, dns.TypeA); summary(m) != "NOERROR 10.0.0.1 10.0.0.2" {
		t.Fatalf("zone a: %s", summary(m))
	}
	opt := h.set.Options
	opt.Locality.Zone = "b"
	h.SetOptions(opt)
	if m, _ := ask(t, h, "api."+testZone, dns.TypeA); summary(m) != "NOERROR 10.0.0.3 10.0.0.4" {
		t.Fatalf("zone b: %s", summary(m))
	}
	opt.Locality.MinLocalCount = 3
	h.SetOptions(opt)
	if m, o := ask(t, h, "api."+testZone, dns.TypeA); len(m.Answer) != 5 || o.Locality != localSpilled {
		t.Fatalf("zone b, min 3: %s (%d)", summary(m), o.Locality)
	}
}

func TestLocalityRotates(t *testing.T) {
	h := localityFixture(t, Locality{Zone: "a", MinLocalCount: 1})
	firsts := map[netip.Addr]bool{}
	for range 4 {
		m, _ := ask(t, h, "api."+testZone, dns.TypeA)
		ip, _ := netip.AddrFromSlice(m.Answer[0].(*dns.A).A.To4())
		firsts[ip] = true
	}
	if len(firsts) != 2 {
		t.Errorf("first addresses %v, want both same-zone instances in turn", firsts)
	}
}
