// Package test holds discodns's end-to-end tests: the real binary, a real
// (embedded) etcd, and real clients (dig, Go's resolver).
package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discodns/discodns/etcdembed"
	"github.com/discodns/discodns/test/registries"
)

// binary is the discodns executable built once for the whole run.
var binary string

func TestMain(m *testing.M) {
	if runHelperProcess() {
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "discodns-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "discodns")
	// Tests run the binary with the race detector; benchmarks, and long
	// soaks with DISCODNS_NO_RACE=1, measure it as users run it.
	flag.Parse()
	args := []string{"build", "-race", "-o", binary, ".."}
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" || os.Getenv("DISCODNS_NO_RACE") != "" {
		args = slices.Delete(args, 1, 2)
	}
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build discodns:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need fails the test when a required tool is missing: ./test/run.sh
// installs every tool the tests use.
func need(t testing.TB, tool string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s is required (./test/run.sh installs it): %v", tool, err)
	}
	return path
}

// etcd is a real embedded etcd that a test can stop and start again on the
// same ports and data.
type etcd struct {
	t    testing.TB
	opts etcdembed.Options
	srv  *etcdembed.Server
	cli  *clientv3.Client
}

func startEtcd(t testing.TB) *etcd {
	t.Helper()
	e := &etcd{t: t, opts: etcdembed.Options{
		Dir:        t.TempDir(),
		ClientAddr: fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t)),
		PeerAddr:   fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t)),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}
	e.start()
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.srv.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.cli = cli
	t.Cleanup(func() {
		cli.Close()
		if e.srv != nil {
			e.srv.Close()
		}
	})
	return e
}

func (e *etcd) start() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := etcdembed.Start(ctx, e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv = srv
}

func (e *etcd) stop() {
	e.srv.Close()
	e.srv = nil
}

func (e *etcd) endpoint() string { return e.opts.ClientAddr }

func (e *etcd) put(key, value string, opts ...clientv3.OpOption) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.cli.Put(ctx, key, value, opts...); err != nil {
		e.t.Fatalf("etcd put %s: %v", key, err)
	}
}

func (e *etcd) del(key string, opts ...clientv3.OpOption) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.cli.Delete(ctx, key, opts...); err != nil {
		e.t.Fatalf("etcd delete %s: %v", key, err)
	}
}

// discodns is a running discodns process.
type discodns struct {
	t      testing.TB
	cmd    *exec.Cmd
	dns    string // host:port
	http   string // http://host:port
	mu     sync.Mutex
	output bytes.Buffer
	config string // the configuration file
	done   chan struct{}
	err    error
}

// startDiscodns writes config (with DNS and HTTP addresses filled in for
// the placeholders {{DNS}} and {{HTTP}}), runs discodns on it until the
// test ends, and waits until it is ready.
func startDiscodns(t testing.TB, config string) *discodns {
	t.Helper()
	d := launchDiscodns(t, config)
	d.waitReady()
	return d
}

// launchDiscodns is startDiscodns without waiting for readiness.
func launchDiscodns(t testing.TB, config string) *discodns {
	t.Helper()
	d := &discodns{
		t:   t,
		dns: fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t)),
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t))
	d.http = "http://" + httpAddr
	config = strings.NewReplacer("{{DNS}}", d.dns, "{{HTTP}}", httpAddr).Replace(config)
	path := filepath.Join(t.TempDir(), "discodns.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	d.config = path
	d.start()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("discodns output:\n%s", d.logs())
		}
	})
	return d
}

// start runs the binary on d.config.
func (d *discodns) start() {
	d.t.Helper()
	d.done = make(chan struct{})
	d.cmd = exec.Command(binary, "-config", d.config)
	d.cmd.Stdout = &lockedWriter{&d.mu, &d.output}
	d.cmd.Stderr = d.cmd.Stdout
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	go func(cmd *exec.Cmd, done chan struct{}) { d.err = cmd.Wait(); close(done) }(d.cmd, d.done)
}

// restart stops discodns with SIGTERM, which must exit 0, and starts it
// again on the same configuration and addresses.
func (d *discodns) restart() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		d.t.Fatal("discodns still running 15 s after SIGTERM")
	}
	if d.err != nil {
		d.t.Fatalf("exit after SIGTERM: %v", d.err)
	}
	d.start()
}

func (d *discodns) logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.output.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (d *discodns) waitReady() {
	d.t.Helper()
	eventually(d.t, 30*time.Second, "discodns ready", func() error {
		select {
		case <-d.done:
			return fmt.Errorf("exited: %v\n%s", d.err, d.logs())
		default:
		}
		code, body, err := d.get("/readyz")
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("/readyz %d %s", code, body)
		}
		return nil
	})
}

func (d *discodns) get(path string) (int, string, error) {
	resp, err := http.Get(d.http + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// services returns /v1/services as service FQDN -> sorted "address:port".
func (d *discodns) services() (map[string][]string, error) {
	_, body, err := d.get("/v1/services")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Services []struct {
			FQDN      string `json:"fqdn"`
			Instances []struct {
				Address string `json:"address"`
				Port    int    `json:"port"`
			} `json:"instances"`
		} `json:"services"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, s := range doc.Services {
		for _, in := range s.Instances {
			out[s.FQDN] = append(out[s.FQDN], net.JoinHostPort(in.Address, fmt.Sprint(in.Port)))
		}
	}
	return out, nil
}

// metric returns the value of the sample line that starts with prefix.
func (d *discodns) metric(prefix string) (string, error) {
	_, body, err := d.get("/metrics")
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, prefix+" ") {
			return strings.TrimPrefix(line, prefix+" "), nil
		}
	}
	return "", fmt.Errorf("no metric %s", prefix)
}

// exchange sends one query with miekg/dns over net ("udp" or "tcp").
func (d *discodns) exchange(name string, qtype uint16, network string) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, d.dns)
	return resp, err
}

// eventually retries check until it returns nil or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for {
		if err = check(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gauge returns the value of an unlabelled metric, or -1.
func (d *discodns) gauge(name string) float64 {
	v, err := d.metric(name)
	if err != nil {
		return -1
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return -1
	}
	return f
}

// cpu returns the CPU time discodns has used so far (its
// process_cpu_seconds_total, in the kernel's ticks of 10 ms).
func (d *discodns) cpu() time.Duration {
	d.t.Helper()
	s := d.gauge("process_cpu_seconds_total")
	if s < 0 {
		d.t.Fatal("discodns: no process_cpu_seconds_total")
	}
	return time.Duration(s * float64(time.Second))
}

// lockedBuffer is a bytes.Buffer safe for a child's output and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// queryLoop asks name (A over UDP) every interval until the returned stop
// is called, which reports how many queries were sent, how many failed (no
// NOERROR answer with records) and the last failure.
func (d *discodns) queryLoop(name string, interval time.Duration) (stop func() (queries, failures int64, last string)) {
	var sent, failed atomic.Int64
	var lastFailure atomic.Value
	lastFailure.Store("")
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(interval):
			}
			sent.Add(1)
			m, err := d.exchange(name, dns.TypeA, "udp")
			if err != nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0 {
				failed.Add(1)
				lastFailure.Store(fmt.Sprintf("%v %v", m, err))
			}
		}
	}()
	return func() (int64, int64, string) {
		close(quit)
		<-done
		return sent.Load(), failed.Load(), lastFailure.Load().(string)
	}
}
