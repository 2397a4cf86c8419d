package test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/discodns/discodns/test/registries"
)

// startCoreDNS runs CoreDNS with the etcd plugin on zone svc.internal.,
// reading /skydns of the etcd at endpoint, and with cache when cacheTTL > 0.
func startCoreDNS(t testing.TB, endpoint string, cacheTTL int) string {
	t.Helper()
	bin, err := registries.CoreDNSBinary()
	if err != nil {
		t.Fatal(err)
	}
	port := registries.FreePort(t)
	cache := ""
	if cacheTTL > 0 {
		cache = fmt.Sprintf("cache %d", cacheTTL)
	}
	corefile := filepath.Join(t.TempDir(), "Corefile")
	os.WriteFile(corefile, []byte(fmt.Sprintf(`svc.internal.:%d {
	bind 127.0.0.1
	%s
	etcd svc.internal {
		endpoint http://%s
		path /skydns
	}
}
`, port, cache, endpoint)), 0o644)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	registries.StartCommand(t, "coredns", nil, 30*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, bin, "-conf", corefile, "-quiet")
	return addr
}

// skydnsConfig serves the skydns layout under /skydns.
func skydnsConfig(endpoint string) string {
	return fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]
zone = "svc.internal."

[http]
listen = "{{HTTP}}"

[[source]]
name = "skydns"
type = "etcd"
endpoints = [%q]
prefix = "/skydns"
format = "skydns"
`, endpoint)
}

// answerSet describes a response's answer records without TTLs, sorted.
func answerSet(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		rr = dns.Copy(rr)
		rr.Header().Ttl = 0
		out = append(out, strings.ToLower(rr.String()))
	}
	slices.Sort(out)
	return out
}

// TestSkyDNSMatchesCoreDNS serves the same etcd records with CoreDNS's etcd
// plugin and with discodns's skydns layout: plain A, AAAA and SRV lookups
// get the same answers, and so do the SRV lookups of a record's own name and
// of a record stored at the service level.
func TestSkyDNSMatchesCoreDNS(t *testing.T) {
	e := startEtcd(t)
	for key, value := range map[string]string{
		"/skydns/internal/svc/web/a":  `{"host":"10.0.0.1","port":8080,"priority":10,"weight":100}`,
		"/skydns/internal/svc/web/b":  `{"host":"10.0.0.2","port":8080,"priority":10,"weight":300}`,
		"/skydns/internal/svc/web/c":  `{"host":"10.0.0.3","port":9090,"priority":20}`,
		"/skydns/internal/svc/dual/a": `{"host":"10.0.1.1","port":53}`,
		"/skydns/internal/svc/dual/b": `{"host":"2001:db8::1","port":53}`,
		"/skydns/internal/svc/solo":   `{"host":"10.0.2.1","port":80}`,
	} {
		e.put(key, value)
	}
	coredns := startCoreDNS(t, e.endpoint(), 0)
	d := startDiscodns(t, skydnsConfig(e.endpoint()))
	d.waitInstances("web.svc.internal.", 3)

	ask := func(server, name string, qtype uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.SetEdns0(4096, false)
		c := &dns.Client{Timeout: 5 * time.Second}
		resp, _, err := c.Exchange(m, server)
		if err != nil {
			t.Fatalf("%s %s at %s: %v", dns.TypeToString[qtype], name, server, err)
		}
		return resp
	}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"web.svc.internal.", dns.TypeA},
		{"web.svc.internal.", dns.TypeSRV},
		{"a.web.svc.internal.", dns.TypeA},
		{"dual.svc.internal.", dns.TypeA},
		{"dual.svc.internal.", dns.TypeAAAA},
		{"dual.svc.internal.", dns.TypeSRV},
		{"b.dual.svc.internal.", dns.TypeAAAA},
		{"solo.svc.internal.", dns.TypeA},
		// A record's own name answers SRV, and a record stored at the
		// service level is its own SRV target (solo.svc.internal., not
		// solo.solo.svc.internal.).
		{"c.web.svc.internal.", dns.TypeSRV},
		{"solo.svc.internal.", dns.TypeSRV},
		{"solo.solo.svc.internal.", dns.TypeA},
	} {
		want, got := ask(coredns, q.name, q.qtype), ask(d.dns, q.name, q.qtype)
		if want.Rcode != got.Rcode || !slices.Equal(answerSet(want), answerSet(got)) {
			t.Errorf("%s %s:\nCoreDNS  %s %v\ndiscodns %s %v", dns.TypeToString[q.qtype], q.name,
				dns.RcodeToString[want.Rcode], answerSet(want), dns.RcodeToString[got.Rcode], answerSet(got))
		}
	}
}
