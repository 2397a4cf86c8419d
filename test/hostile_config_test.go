package test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/discodns/discodns/test/registries"
)

// Careless configurations: discodns refuses at start what would serve
// nothing, shadow public names, loop, or hold absurd values, with an error
// naming the file, the key and why.

// refusedAtStart writes config, with {{DNS}} and {{HTTP}} replaced by free
// loopback addresses, runs discodns on it with args and returns what it
// printed and the file's path. The test fails unless discodns exits with status 1
// before serving.
func refusedAtStart(t *testing.T, config string, args ...string) (out, path string) {
	t.Helper()
	config = strings.NewReplacer(
		"{{DNS}}", fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t)),
		"{{HTTP}}", fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t)),
	).Replace(config)
	path = filepath.Join(t.TempDir(), "discodns.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, append([]string{"-config", path}, args...)...)
	var buf lockedBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("exit: %v, want status 1\n%s", err, buf.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("discodns started on a configuration it should refuse:\n%s\n%s", config, buf.String())
	}
	return buf.String(), path
}

// mentions fails the test unless out contains every one of want.
func mentions(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output does not mention %q:\n%s", w, out)
		}
	}
}

// etcdSource is a [[source]] table for an etcd nobody runs: enough for a
// configuration to serve something.
const etcdSource = "\n[[source]]\ntype = \"etcd\"\nendpoints = [\"127.0.0.1:1\"]\n"

// TestAbsurdValuesRefused: durations and numbers far outside any sensible
// value stop discodns at start, the error stating the range.
func TestAbsurdValuesRefused(t *testing.T) {
	for _, tc := range []struct{ table, key, value, want string }{
		{"dns", "tcp_idle_timeout", `"1ns"`, "must be 1s to 1h, got 1ns"},
		{"dns", "max_tcp_connections", "100000000", "must be 1 to 100000, got 100000000"},
		{"dns", "startup_wait", `"10000h"`, "must be 0s to 1h, got 10000h"},
		{"forward", "timeout", `"1ns"`, "must be 10ms to 10s, got 1ns"},
		{"forward", "max_stale", `"100000h"`, "must be 0s to 168h, got 100000h"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			setting := tc.key + " = " + tc.value + "\n"
			config := "[http]\nlisten = \"{{HTTP}}\"\n[dns]\nlisten = [\"{{DNS}}\"]\n"
			if tc.table == "dns" {
				config += setting
			} else {
				config += "[" + tc.table + "]\n" + setting
			}
			out, path := refusedAtStart(t, config+etcdSource)
			mentions(t, out, path, tc.table+"."+tc.key+": "+tc.want)
		})
	}
}

// TestShadowingZonesRefused: a zone that would shadow public names (a
// top-level domain, the reverse trees) or one zone inside another stops
// discodns at start; private and sibling zones serve.
func TestShadowingZonesRefused(t *testing.T) {
	for _, tc := range []struct {
		name, dns, sources string
		want               []string
	}{
		{"top-level domain", `zone = "com."`, etcdSource,
			[]string{`dns.zone: "com." is a public suffix`}},
		{"reverse tree", `zone = "in-addr.arpa."`, etcdSource,
			[]string{`dns.zone: "in-addr.arpa." is at or under arpa.`, "reverse lookups"}},
		{"source under the reverse tree", "", etcdSource + `zone = "10.in-addr.arpa."`,
			[]string{`source[0] ("etcd").zone: "10.in-addr.arpa." is at or under arpa.`}},
		{"nested zones", `zone = "svc.internal."`, etcdSource + `zone = "internal."`,
			[]string{`zone "svc.internal." (dns.zone) is inside zone "internal." (source[0] ("etcd").zone)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, path := refusedAtStart(t, "[http]\nlisten = \"{{HTTP}}\"\n[dns]\nlisten = [\"{{DNS}}\"]\n"+tc.dns+"\n"+tc.sources+"\n")
			mentions(t, out, append(tc.want, path)...)
		})
	}

	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	e.put("/consul/db/10.0.0.2:5432", ``)
	d := startDiscodns(t, fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]
zone = "svc.internal."
[http]
listen = "{{HTTP}}"
[[source]]
name = "web"
type = "etcd"
endpoints = [%[1]q]
[[source]]
name = "db"
type = "etcd"
endpoints = [%[1]q]
prefix = "/consul"
zone = "consul.internal."
`, e.endpoint()))
	d.waitInstances("web.svc.internal.", 1)
	d.waitInstances("db.consul.internal.", 1)
	for name, want := range map[string]string{"web.svc.internal.": "10.0.0.1", "db.consul.internal.": "10.0.0.2"} {
		if m, err := d.exchange(name, dns.TypeA, "udp"); err != nil || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != want {
			t.Errorf("%s: %v %v, want %s", name, m, err, want)
		}
	}
}

// TestForwardLoopSpellings: an upstream that is discodns itself is refused
// however it is spelt: IPv4-mapped IPv6, through a resolv.conf (as when
// discodns takes systemd-resolved's 127.0.0.53 and resolv_conf still names
// it), or as a name.
func TestForwardLoopSpellings(t *testing.T) {
	port := registries.FreePort(t)
	resolvConf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte("nameserver 127.0.0.53\noptions edns0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, listen, forward string
		want                  []string
	}{
		{"IPv4-mapped", fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf(`upstreams = ["[::ffff:127.0.0.1]:%d"]`, port),
			[]string{fmt.Sprintf("forward.upstreams: 127.0.0.1:%d is one of dns.listen", port), "loop"}},
		{"resolv.conf", "127.0.0.53:53", fmt.Sprintf("resolv_conf = %q", resolvConf),
			[]string{"forward.resolv_conf: 127.0.0.53:53 is one of dns.listen", "loop", "/run/systemd/resolve/resolv.conf"}},
		{"name", fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf(`upstreams = ["localhost:%d"]`, port),
			[]string{"forward.upstreams:", `"localhost" is not an IP address`, "not a host name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, path := refusedAtStart(t, fmt.Sprintf("[dns]\nlisten = [%q]\n[http]\nlisten = \"{{HTTP}}\"\n[forward]\n%s\n%s", tc.listen, tc.forward, etcdSource))
			mentions(t, out, append(tc.want, path)...)
		})
	}
}

// TestResolvConfForwards: forward.resolv_conf takes the upstreams from a
// resolv.conf and forwards to them (it used to stop discodns at start: the
// upstreams read from the file counted as set together with it when main
// validated the configuration again).
func TestResolvConfForwards(t *testing.T) {
	if syscall.Geteuid() != 0 {
		t.Fatal("this test serves an upstream on port 53, the port resolv.conf implies: run it as root (CI does)")
	}
	const upstreamIP = "127.0.0.154"
	pc, err := net.ListenPacket("udp", upstreamIP+":53")
	if err != nil {
		t.Fatal(err)
	}
	upstream := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A: net.ParseIP("192.0.2.10")})
		w.WriteMsg(m)
	})}
	go upstream.ActivateAndServe()
	t.Cleanup(func() { upstream.Shutdown() })
	resolvConf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte("nameserver "+upstreamIP+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := startEtcd(t)
	d := startDiscodns(t, fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]
[http]
listen = "{{HTTP}}"
[forward]
resolv_conf = %q
[[source]]
type = "etcd"
endpoints = [%q]
`, resolvConf, e.endpoint()))
	m, err := d.exchange("www.example.test.", dns.TypeA, "udp")
	if err != nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "192.0.2.10" {
		t.Fatalf("forwarded through the resolv.conf upstream: %v %v", m, err)
	}
}

// TestServesNothingRefused: a configuration with no source and no
// forwarding (an empty file above all: valid TOML, and what a half-written
// one looks like) is refused at start, and at reload, where a
// configuration that would remove every source is refused too; the
// running one stays and /readyz stays true.
func TestServesNothingRefused(t *testing.T) {
	free := func() string { return fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t)) }
	t.Run("empty file at start", func(t *testing.T) {
		out, path := refusedAtStart(t, "", "-dns-listen", free(), "-http-listen", free())
		mentions(t, out, path, "serves nothing: no [[source]] and no forwarding")
	})
	t.Run("tables but nothing to serve at start", func(t *testing.T) {
		out, path := refusedAtStart(t, "[dns]\nlisten = [\"{{DNS}}\"]\n[http]\nlisten = \"{{HTTP}}\"\n[forward]\nupstreams = []\n")
		mentions(t, out, path, "serves nothing")
	})

	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	d.waitInstances("web.svc.internal.", 1)
	upstream := registries.StartDnsmasq(t, map[string]string{"www.example.test": "192.0.2.10"}, 1)
	for i, tc := range []struct{ name, config, why string }{
		{"empty file", "", "serves nothing"},
		{"forwarding, no source", fmt.Sprintf("[dns]\nlisten = [%q]\n[http]\nlisten = %q\n[forward]\nupstreams = [%q]\n",
			d.dns, strings.TrimPrefix(d.http, "http://"), upstream.Addr()), "a reload that removes every source is refused"},
	} {
		t.Run("reload: "+tc.name, func(t *testing.T) {
			if err := os.WriteFile(d.config, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			d.cmd.Process.Signal(syscall.SIGHUP)
			eventually(t, 30*time.Second, "the reload rejected and counted", func() error {
				if v, err := d.metric(`discodns_config_reloads_total{result="error"}`); err != nil || v != fmt.Sprint(i+1) {
					return fmt.Errorf("errors = %q %v", v, err)
				}
				return nil
			})
			mentions(t, d.logs(), "configuration reload rejected", d.config, tc.why)
			if m, err := d.exchange("web.svc.internal.", dns.TypeA, "udp"); err != nil || len(m.Answer) != 1 {
				t.Errorf("web after the rejected reload: %v %v", m, err)
			}
			if code, body, err := d.get("/readyz"); err != nil || code != 200 || !strings.Contains(body, `"etcd"`) {
				t.Errorf("/readyz after the rejected reload: %d %s %v", code, body, err)
			}
		})
	}
	if v, err := d.metric(`discodns_config_reloads_total{result="ok"}`); err != nil || v != "0" {
		t.Errorf("ok reloads = %q %v, want 0", v, err)
	}
}

// TestForwardOnly: a configuration that forwards and has no source starts
// at once (no startup_wait: there is nothing to list), says so, forwards,
// and /readyz says it is ready as a forwarder.
func TestForwardOnly(t *testing.T) {
	upstream := registries.StartDnsmasq(t, map[string]string{"www.example.test": "192.0.2.10"}, 1)
	d := launchDiscodns(t, fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]
startup_wait = "1h"
[http]
listen = "{{HTTP}}"
[forward]
upstreams = [%q]
`, upstream.Addr()))
	d.waitReady() // 30 s, well under startup_wait
	if m, err := d.exchange("www.example.test.", dns.TypeA, "udp"); err != nil || len(m.Answer) != 1 {
		t.Errorf("forwarded: %v %v", m, err)
	}
	if m, err := d.exchange("web.svc.internal.", dns.TypeA, "udp"); err != nil || m.Rcode != dns.RcodeNameError {
		t.Errorf("in the zone: %v %v, want NXDOMAIN", m, err)
	}
	_, body, err := d.get("/readyz")
	if err != nil || !strings.Contains(body, `"forward_only": true`) {
		t.Errorf("/readyz: %s %v, want forward_only", body, err)
	}
	mentions(t, d.logs(), "forward-only")
}

// nonLoopbackIP returns an IPv4 address of this machine that is not
// loopback, to listen on; without one the test fails.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
				return ip.Unmap().String()
			}
		}
	}
	// Like a missing registry or tool: the test fails, never skips.
	t.Fatalf("no IPv4 address beyond loopback to listen on (interfaces: %v)", addrs)
	return ""
}

// burst sends n A queries for name over UDP to server from 32 workers, as
// fast as answers come, and returns how many answers were truncated and
// how many never came.
func burst(server, name string, n int) (truncated, lost int64) {
	var tc, none atomic.Int64
	var wg sync.WaitGroup
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	for range 32 {
		wg.Go(func() {
			c := &dns.Client{Net: "udp", Timeout: 300 * time.Millisecond}
			m := new(dns.Msg)
			m.SetQuestion(name, dns.TypeA)
			for range jobs {
				resp, _, err := c.Exchange(m, server)
				switch {
				case err != nil:
					none.Add(1)
				case resp.Truncated:
					tc.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return tc.Load(), none.Load()
}

// TestDefaultRateLimitBeyondLoopback: listening beyond loopback with no
// dns.client_rate_limit turns a per-client limit on and says so; a burst
// from one client is rate-limited (truncated and dropped answers, counted).
// client_rate_limit = 0 turns it off, with a warning. It also measures the
// amplification the limit bounds: the largest answer against its query.
func TestDefaultRateLimitBeyondLoopback(t *testing.T) {
	ip := nonLoopbackIP(t)
	need(t, "dig")
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	const instances = 100
	for i := range instances {
		e.put(fmt.Sprintf("/services/big/10.1.%d.%d:8080", i/250, i%250+1), ``)
	}
	config := func(extra string) string {
		return fmt.Sprintf(`
[dns]
listen = ["{{DNS}}", "%s:%d"]
%s
[http]
listen = "{{HTTP}}"
[[source]]
type = "etcd"
endpoints = [%q]
`, ip, registries.FreePort(t), extra, e.endpoint())
	}
	public := func(d *discodns) string {
		listen := regexp.MustCompile(`listen = \["[^"]+", "([^"]+)"\]`).FindStringSubmatch(readFile(t, d.config))
		return listen[1]
	}
	rateLimited := func(d *discodns) float64 {
		v, err := d.metric(`discodns_dns_rejected_total{reason="rate_limited"}`)
		if err != nil {
			return 0 // not yet counted
		}
		f, _ := strconv.ParseFloat(v, 64)
		return f
	}

	t.Run("default", func(t *testing.T) {
		d := startDiscodns(t, config(""))
		d.waitInstances("big.svc.internal.", instances)
		server := public(d)
		mentions(t, d.logs(), "dns.client_rate_limit is not set and a listen address is not loopback", "client_rate_limit=1000")
		var truncated, lost int64
		eventually(t, 120*time.Second, "a burst from one client rate-limited", func() error {
			tc, none := burst(server, "web.svc.internal.", 5000)
			truncated, lost = truncated+tc, lost+none
			if n := rateLimited(d); n == 0 || truncated == 0 {
				return fmt.Errorf("rate-limited %v, truncated answers %d, lost %d", n, truncated, lost)
			}
			return nil
		})
		t.Logf("rate-limited %v queries: %d truncated answers, %d lost", rateLimited(d), truncated, lost)

		// The default limit spares loopback clients: nobody off the host
		// can spoof their address, and a busy local program (the usual
		// client) must not be cut to 1000 queries a second.
		before := rateLimited(d)
		if tc, _ := burst(d.dns, "web.svc.internal.", 5000); tc > 0 || rateLimited(d) != before {
			t.Errorf("a loopback client under the default limit: %d truncated answers, rate-limited %v -> %v", tc, before, rateLimited(d))
		}

		largestAnswer(t, server, 1232)
	})

	t.Run("udp_size 4096", func(t *testing.T) {
		d := startDiscodns(t, config("udp_size = 4096"))
		d.waitInstances("big.svc.internal.", instances)
		largestAnswer(t, public(d), 4096)
	})

	t.Run("off", func(t *testing.T) {
		d := startDiscodns(t, config("client_rate_limit = 0"))
		mentions(t, d.logs(), "dns.client_rate_limit = 0 on a listen address beyond loopback", "amplification")
		if tc, _ := burst(public(d), "web.svc.internal.", 5000); tc > 0 || rateLimited(d) > 0 {
			t.Errorf("with client_rate_limit = 0: %d truncated answers, %v rate-limited", tc, rateLimited(d))
		}
	})
}

// largestAnswer asks server, over UDP with an EDNS buffer of udpSize as a
// spoofed query would, for the names of service big (many instances)
// whose answers are the largest: every answer must fit udpSize (one that
// does not is cut to the records that fit, or sent empty and truncated),
// and the largest against its query (the smallest a query can be: no
// cookie) is the amplification that dns.client_rate_limit bounds.
func largestAnswer(t *testing.T, server string, udpSize int) {
	t.Helper()
	var largest, query int
	var largestQuery string
	for _, q := range [][]string{{"SRV", "_big._tcp.svc.internal."}, {"A", "big.svc.internal."}, {"ANY", "big.svc.internal."}} {
		eventually(t, 30*time.Second, "an answer to "+strings.Join(q, " "), func() error {
			r, err := dig(t, server, append([]string{fmt.Sprintf("+bufsize=%d", udpSize), "+nocookie", "+qr", "+ignore"}, q...)...)
			if err != nil {
				return err
			}
			size := msgSize(r.raw, "rcvd")
			if r.status != "NOERROR" || size == 0 {
				return fmt.Errorf("%s", r.raw)
			}
			if size > udpSize {
				t.Errorf("%s: a %d-byte UDP answer over udp_size %d", strings.Join(q, " "), size, udpSize)
			}
			if size > largest {
				largest, query, largestQuery = size, msgSize(r.raw, "sent"), strings.Join(q, " ")
			}
			return nil
		})
	}
	t.Logf("amplification at udp_size %d: dig +bufsize=%[1]d +nocookie +qr +ignore %s: query %d bytes, answer %d bytes, %.1fx",
		udpSize, largestQuery, query, largest, float64(largest)/float64(query))
}

// msgSize returns the size dig reports for its query ("sent", with +qr) or
// the answer ("rcvd"), or 0.
func msgSize(digOutput, which string) int {
	re := `;; QUERY SIZE: (\d+)`
	if which == "rcvd" {
		re = `;; MSG SIZE\s+rcvd: (\d+)`
	}
	m := regexp.MustCompile(re).FindStringSubmatch(digOutput)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHTTPBeyondLoopbackWarns: an admin endpoint beyond loopback serves,
// with a warning naming what it exposes.
func TestHTTPBeyondLoopbackWarns(t *testing.T) {
	httpAddr := fmt.Sprintf("%s:%d", nonLoopbackIP(t), registries.FreePort(t))
	e := startEtcd(t)
	d := launchDiscodns(t, fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]
[http]
listen = %q
[[source]]
type = "etcd"
endpoints = [%q]
`, httpAddr, e.endpoint()))
	d.http = "http://" + httpAddr
	d.waitReady()
	mentions(t, d.logs(), "http.listen is not loopback", "/v1/services", "status page", "/debug/pprof/")
}
