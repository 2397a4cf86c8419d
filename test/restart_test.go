package test

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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

// stateConfig is an etcd source under /services with a state file and a
// short startup_wait.
func stateConfig(endpoint, stateFile string) string {
	return fmt.Sprintf(`state_file = %q
[dns]
listen = ["{{DNS}}"]
startup_wait = "3s"
[http]
listen = "{{HTTP}}"
[[source]]
name = "etcd"
type = "etcd"
endpoints = [%q]
prefix = "/services"
dial_timeout = "1s"
`, stateFile, endpoint)
}

// stop ends discodns with SIGTERM and waits for it.
func (d *discodns) stop() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.t.Fatal("discodns still running 20 s after SIGTERM")
	}
	if d.err != nil {
		d.t.Fatalf("exit after SIGTERM: %v", d.err)
	}
}

// addrsOf answers name's A records over UDP and TCP, sorted; an error
// when the two differ or a query fails.
func (d *discodns) addrsOf(name string) ([]string, error) {
	var got []string
	for i, network := range []string{"udp", "tcp"} {
		m, err := d.exchange(name, dns.TypeA, network)
		if err != nil {
			return nil, fmt.Errorf("%s over %s: %w", name, network, err)
		}
		if m.Rcode != dns.RcodeSuccess {
			return nil, fmt.Errorf("%s over %s: %s", name, network, dns.RcodeToString[m.Rcode])
		}
		var ips []string
		for _, rr := range m.Answer {
			if a, ok := rr.(*dns.A); ok {
				ips = append(ips, a.A.String())
			}
		}
		slices.Sort(ips)
		if i > 0 && !slices.Equal(ips, got) {
			return nil, fmt.Errorf("%s: UDP %v, TCP %v", name, got, ips)
		}
		got = ips
	}
	return got, nil
}

// answersExactly waits until each name answers exactly its addresses.
func (d *discodns) answersExactly(within time.Duration, want map[string][]string) {
	d.t.Helper()
	eventually(d.t, within, fmt.Sprintf("answers %v", want), func() error {
		for name, ips := range want {
			got, err := d.addrsOf(name)
			if err != nil {
				return err
			}
			if !slices.Equal(got, ips) {
				return fmt.Errorf("%s = %v, want %v", name, got, ips)
			}
		}
		return nil
	})
}

// TestStateFileServesWhileRegistryDown: instances registered, discodns
// stopped, changes made, etcd stopped, discodns started: every instance it
// knew answers from the state file, stale, as the metrics and /readyz say;
// then etcd comes back and the table converges exactly to what etcd holds.
func TestStateFileServesWhileRegistryDown(t *testing.T) {
	need(t, "dig")
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", `{"tags":["blue"]}`)
	e.put("/services/web/10.0.0.2:80", ``)
	e.put("/services/db/10.0.1.1:5432", ``)
	stateFile := filepath.Join(t.TempDir(), "state")
	d := startDiscodns(t, stateConfig(e.endpoint(), stateFile))
	before := map[string][]string{
		"web.svc.internal.":      {"10.0.0.1", "10.0.0.2"},
		"blue.web.svc.internal.": {"10.0.0.1"},
		"db.svc.internal.":       {"10.0.1.1"},
	}
	d.answersExactly(10*time.Second, before)
	waitStateInstances(t, stateFile, 3)
	d.stop()

	// Meanwhile: one instance goes, one comes, a service comes.
	e.del("/services/web/10.0.0.2:80")
	e.put("/services/web/10.0.0.3:80", ``)
	e.put("/services/cache/10.0.2.1:6379", ``)
	e.stop()

	d.start()
	d.waitReady()
	d.answersExactly(10*time.Second, before)
	if got, err := digAnswers(t, d, "A", "web.svc.internal."); err != nil || !slices.Equal(got, before["web.svc.internal."]) {
		t.Errorf("dig from the state file: %v, %v", got, err)
	}
	if v, err := d.metric(`discodns_source_state{source="etcd",state="stale"}`); err != nil || v != "1" {
		t.Errorf("stale state metric = %q, %v", v, err)
	}
	if v, err := d.metric(`discodns_source_seeded_age_seconds{source="etcd"}`); err != nil || v == "0" {
		t.Errorf("seeded age metric = %q, %v", v, err)
	}
	_, body, err := d.get("/readyz")
	if err != nil || !strings.Contains(body, `"seeded_from_state_file"`) || !strings.Contains(body, `"state": "stale"`) {
		t.Errorf("/readyz does not say the source is stale and seeded: %v\n%s", err, body)
	}
	_, page, _ := d.get("/")
	if !strings.Contains(page, "from the state file") {
		t.Errorf("the status page does not say the source is served from the state file")
	}

	e.start()
	d.answersExactly(30*time.Second, map[string][]string{
		"web.svc.internal.":      {"10.0.0.1", "10.0.0.3"},
		"blue.web.svc.internal.": {"10.0.0.1"},
		"db.svc.internal.":       {"10.0.1.1"},
		"cache.svc.internal.":    {"10.0.2.1"},
	})
	eventually(t, 10*time.Second, "the source is connected and no longer seeded", func() error {
		if v, err := d.metric(`discodns_source_seeded_age_seconds{source="etcd"}`); err != nil || v != "0" {
			return fmt.Errorf("seeded age = %q, %v", v, err)
		}
		if v, err := d.metric(`discodns_source_state{source="etcd",state="connected"}`); err != nil || v != "1" {
			return fmt.Errorf("connected = %q, %v", v, err)
		}
		return nil
	})
}

// TestStateFileBad: a corrupted, truncated, empty or garbage state file is
// logged and ignored while the registry is down (nothing of it served, no
// crash), and discodns serves from the registry once it is up.
func TestStateFileBad(t *testing.T) {
	good := stateFileBytes(fmt.Sprintf(`{"written":%q,"sources":{"etcd":{"as_of":%[1]q,"instances":[
		{"Service":"ghost","ID":"10.9.9.9:1","Address":"10.9.9.9","Port":1}]}}}`, time.Now().Format(time.RFC3339Nano)))
	if _, err := decodeStateFile(good); err != nil {
		t.Fatalf("the good file the bad ones come from: %v", err)
	}
	corrupted := slices.Clone(good)
	corrupted[len(corrupted)-20] ^= 1
	for _, tt := range []struct {
		name string
		data []byte
		log  string
	}{
		{"corrupted", corrupted, "checksum does not match"},
		{"truncated", good[:len(good)/2], "truncated"},
		{"empty", nil, "no header"},
		{"garbage", []byte("\x00\x01\x02 not a state file\n{}"), "not a discodns state header"},
		{"other version", []byte(strings.Replace(string(good), "discodns-state 1 ", "discodns-state 99 ", 1)), "format version 99"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := startEtcd(t)
			e.put("/services/web/10.0.0.1:80", ``)
			e.stop()
			stateFile := filepath.Join(t.TempDir(), "state")
			if err := os.WriteFile(stateFile, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			d := launchDiscodns(t, stateConfig(e.endpoint(), stateFile))
			eventually(t, 20*time.Second, "the bad file is logged and DNS answers", func() error {
				if !strings.Contains(d.logs(), "state file not used") || !strings.Contains(d.logs(), tt.log) {
					return fmt.Errorf("not logged yet")
				}
				m, err := d.exchange("ghost.svc.internal.", dns.TypeA, "udp")
				if err != nil {
					return err
				}
				if m.Rcode != dns.RcodeNameError {
					return fmt.Errorf("ghost: %s, want NXDOMAIN (nothing from the bad file)", dns.RcodeToString[m.Rcode])
				}
				return nil
			})
			if code, _, _ := d.get("/readyz"); code == 200 {
				t.Errorf("ready with the registry down and no usable state file")
			}
			e.start()
			d.waitReady()
			d.answersExactly(30*time.Second, map[string][]string{"web.svc.internal.": {"10.0.0.1"}})
			eventually(t, 10*time.Second, "a good state file replaces the bad one", func() error {
				_, err := readStateFile(stateFile)
				return err
			})
		})
	}
}

// stateFile is the body of a state file, as the README documents it.
type stateFile struct {
	Written time.Time `json:"written"`
	Sources map[string]struct {
		AsOf      time.Time         `json:"as_of"`
		Instances []json.RawMessage `json:"instances"`
	} `json:"sources"`
}

// stateFileBytes makes a state file of its JSON body: the header line
// "discodns-state 1 sha256:<hex of body> <length of body>", then the body.
func stateFileBytes(body string) []byte {
	sum := sha256.Sum256([]byte(body))
	return fmt.Appendf(nil, "discodns-state 1 sha256:%x %d\n%s", sum, len(body), body)
}

// decodeStateFile checks a state file's header and decodes its body.
func decodeStateFile(b []byte) (*stateFile, error) {
	head, body, ok := strings.Cut(string(b), "\n")
	var sum string
	var n int
	if _, err := fmt.Sscanf(head, "discodns-state 1 sha256:%s %d", &sum, &n); !ok || err != nil {
		return nil, fmt.Errorf("header %q: %v", head, err)
	}
	if got := sha256.Sum256([]byte(body)); n != len(body) || fmt.Sprintf("%x", got) != sum {
		return nil, fmt.Errorf("header %q does not match the body", head)
	}
	var f stateFile
	return &f, json.Unmarshal([]byte(body), &f)
}

func readStateFile(path string) (*stateFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeStateFile(b)
}

// hotProc is discodns run so that it can hot-restart: its output goes to a
// file, which the process a hot restart starts inherits (with a pipe,
// Wait would wait for that process too).
type hotProc struct {
	t       *testing.T
	dns     string
	http    string
	config  string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// launchHot starts bin on config (placeholders as launchDiscodns), and
// kills whatever process serves at the end of the test.
func launchHot(t *testing.T, bin, config string) *hotProc {
	t.Helper()
	h := &hotProc{t: t, dns: fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t))}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t))
	h.http = httpAddr
	config = strings.NewReplacer("{{DNS}}", h.dns, "{{HTTP}}", httpAddr).Replace(config)
	dir := t.TempDir()
	h.config = filepath.Join(dir, "discodns.toml")
	if err := os.WriteFile(h.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	h.logPath = filepath.Join(dir, "discodns.log")
	out, err := os.Create(h.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	h.cmd = exec.Command(bin, "-config", h.config)
	h.cmd.Stdout, h.cmd.Stderr = out, out
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.done = make(chan struct{})
	go func() { h.err = h.cmd.Wait(); close(h.done) }()
	t.Cleanup(func() {
		for _, pid := range h.pids() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		<-h.done
		if t.Failed() {
			t.Logf("discodns output:\n%s", h.logs())
		}
	})
	return h
}

func (h *hotProc) logs() string {
	b, _ := os.ReadFile(h.logPath)
	return string(b)
}

var takeOver = regexp.MustCompile(`taking over the sockets of the process before" pid=(\d+) parent=(\d+)`)

// pids returns every process that took over, the first one first.
func (h *hotProc) pids() []int {
	pids := []int{h.cmd.Process.Pid}
	sc := bufio.NewScanner(strings.NewReader(h.logs()))
	for sc.Scan() {
		if m := takeOver.FindStringSubmatch(sc.Text()); m != nil {
			pid, _ := strconv.Atoi(m[1])
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid runs (and is not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// hotRestart sends SIGUSR2 to the serving process and waits until a new
// one has taken over and the old one has exited 0; it returns the new pid.
func (h *hotProc) hotRestart() int {
	h.t.Helper()
	pids := h.pids()
	old := pids[len(pids)-1]
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		h.t.Fatalf("SIGUSR2 to %d: %v", old, err)
	}
	var next int
	eventually(h.t, 60*time.Second, fmt.Sprintf("a new process takes over from %d and it exits", old), func() error {
		pids := h.pids()
		if slices.Index(pids, old) == len(pids)-1 {
			return fmt.Errorf("no new process yet")
		}
		next = pids[len(pids)-1]
		if alive(old) {
			return fmt.Errorf("process %d still runs", old)
		}
		if !alive(next) {
			return fmt.Errorf("the new process %d is gone", next)
		}
		return nil
	})
	if old == h.cmd.Process.Pid {
		<-h.done
		if h.err != nil {
			h.t.Errorf("the first process exited with %v after its hot restart", h.err)
		}
	}
	return next
}

// metric returns a sample of /metrics.
func (h *hotProc) metric(prefix string) (string, error) {
	d := &discodns{t: h.t, http: "http://" + h.http}
	return d.metric(prefix)
}

// loadLoop sends queries for name over network back to back, each on its
// own exchange, until stop; stop reports the queries sent and the ones
// that failed (no NOERROR answer with records), with the last failure.
func loadLoop(server, name, network string) (stop func() (queries, failures int64, last string)) {
	var sent, failed atomic.Int64
	var mu sync.Mutex
	last := ""
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		c := &dns.Client{Net: network, Timeout: 5 * time.Second}
		for {
			select {
			case <-quit:
				return
			default:
			}
			m := new(dns.Msg)
			m.SetQuestion(name, dns.TypeA)
			sent.Add(1)
			r, _, err := c.Exchange(m, server)
			if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
				failed.Add(1)
				mu.Lock()
				last = fmt.Sprintf("%v %v", r, err)
				mu.Unlock()
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return func() (int64, int64, string) {
		close(quit)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return sent.Load(), failed.Load(), last
	}
}

// hotConfig is an etcd source with two UDP sockets per address.
func hotConfig(endpoint string) string {
	return fmt.Sprintf(`[dns]
listen = ["{{DNS}}"]
sockets = 2
[http]
listen = "{{HTTP}}"
[[source]]
name = "etcd"
type = "etcd"
endpoints = [%q]
prefix = "/services"
`, endpoint)
}

// waitServing waits until h answers web.svc.internal. over UDP and TCP.
func (h *hotProc) waitServing() {
	h.t.Helper()
	d := &discodns{t: h.t, dns: h.dns}
	eventually(h.t, 30*time.Second, "discodns answers", func() error {
		_, err := d.addrsOf("web.svc.internal.")
		return err
	})
}

// underLoad runs UDP and TCP query loops (two each) around f, and fails
// the test for every query lost.
func underLoad(t *testing.T, server string, f func()) {
	t.Helper()
	var stops []func() (int64, int64, string)
	for _, network := range []string{"udp", "tcp", "udp", "tcp"} {
		stops = append(stops, loadLoop(server, "web.svc.internal.", network))
	}
	time.Sleep(200 * time.Millisecond)
	f()
	time.Sleep(200 * time.Millisecond)
	for i, stop := range stops {
		q, failed, last := stop()
		network := []string{"udp", "tcp"}[i%2]
		t.Logf("%s loop: %d queries, %d failed", network, q, failed)
		if q < 10 {
			t.Errorf("%s loop sent only %d queries", network, q)
		}
		if failed > 0 {
			t.Errorf("%s loop: %d of %d queries failed across the hot restart; last: %s", network, failed, q, last)
		}
	}
}

// TestHotRestart: under UDP and TCP load, SIGUSR2 makes a new process take
// over every socket; no query is lost, the new process answers, the old
// one exits 0; a second hot restart works too.
func TestHotRestart(t *testing.T) {
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	h := launchHot(t, binary, hotConfig(e.endpoint()))
	h.waitServing()
	first := h.cmd.Process.Pid
	var second, third int
	underLoad(t, h.dns, func() { second = h.hotRestart() })
	if second == first {
		t.Fatalf("the same process serves after a hot restart")
	}
	// The new process answers alone, and follows the registry.
	e.put("/services/web/10.0.0.2:80", ``)
	d := &discodns{t: t, dns: h.dns}
	d.answersExactly(10*time.Second, map[string][]string{"web.svc.internal.": {"10.0.0.1", "10.0.0.2"}})
	underLoad(t, h.dns, func() { third = h.hotRestart() })
	if third == second || alive(second) {
		t.Fatalf("the second hot restart did not replace process %d (now %d)", second, third)
	}
	d.answersExactly(10*time.Second, map[string][]string{"web.svc.internal.": {"10.0.0.1", "10.0.0.2"}})
	if v, err := h.metric(`discodns_build_info{version="devel"}`); err != nil || v != "1" {
		t.Errorf("build info after two hot restarts: %q, %v", v, err)
	}
}

// TestHotRestartUpgrade: the executable is replaced by a build of another
// version; SIGUSR2 starts the new one, which takes over with no query
// lost.
func TestHotRestartUpgrade(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "discodns")
	copyFile(t, binary, bin)
	upgraded := filepath.Join(dir, "discodns.new")
	build := exec.Command("go", "build", "-race", "-ldflags", "-X main.buildVersion=v99.0.0-upgraded", "-o", upgraded, "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the upgrade: %v\n%s", err, out)
	}
	if out, err := exec.Command(upgraded, "version").Output(); err != nil || !strings.Contains(string(out), "v99.0.0-upgraded") {
		t.Fatalf("the upgrade says %q, %v", out, err)
	}

	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	h := launchHot(t, bin, hotConfig(e.endpoint()))
	h.waitServing()
	if v, err := h.metric(`discodns_build_info{version="devel"}`); err != nil || v != "1" {
		t.Fatalf("build info before the upgrade: %q, %v", v, err)
	}
	// As a package manager does: the new file renamed over the old one.
	if err := os.Rename(upgraded, bin); err != nil {
		t.Fatal(err)
	}
	underLoad(t, h.dns, func() { h.hotRestart() })
	eventually(t, 10*time.Second, "the upgraded binary serves", func() error {
		v, err := h.metric(`discodns_build_info{version="v99.0.0-upgraded"}`)
		if err != nil || v != "1" {
			return fmt.Errorf("%q %v", v, err)
		}
		return nil
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestHotRestartFailedChild: a new process that cannot start (its
// configuration now broken) leaves the old one serving, and counted.
func TestHotRestartFailedChild(t *testing.T) {
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	h := launchHot(t, binary, hotConfig(e.endpoint()))
	h.waitServing()
	if err := os.WriteFile(h.config, []byte("bogus = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	underLoad(t, h.dns, func() {
		h.cmd.Process.Signal(syscall.SIGUSR2)
		eventually(t, 60*time.Second, "the failed hot restart is counted", func() error {
			if v, err := h.metric(`discodns_hot_restarts_total{result="error"}`); err != nil || v != "1" {
				return fmt.Errorf("%q %v", v, err)
			}
			return nil
		})
	})
	if !alive(h.cmd.Process.Pid) || !strings.Contains(h.logs(), "hot restart failed; this process keeps serving") {
		t.Errorf("the old process does not serve on, or does not say so")
	}
}

// TestSocketActivation: discodns takes the UDP and TCP sockets passed as
// systemd does (LISTEN_FDS, LISTEN_PID, descriptors from 3) instead of
// binding; while it is stopped a query waits in the socket, and the next
// discodns on the same sockets answers it.
func TestSocketActivation(t *testing.T) {
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	port := registries.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udpFile, err := udp.File()
	if err != nil {
		t.Fatal(err)
	}
	tcpFile, err := tcp.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	config := strings.Replace(hotConfig(e.endpoint()), "{{DNS}}", addr, 1)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "discodns.toml")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t))
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(config, "{{HTTP}}", httpAddr, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	start := func() (*exec.Cmd, chan error) {
		t.Helper()
		// systemd sets LISTEN_PID to the pid it execs; the shell's exec
		// keeps its own.
		cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=dns-udp:dns-tcp exec "$0" -config "$1"`, binary, cfgPath)
		cmd.ExtraFiles = []*os.File{udpFile, tcpFile}
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() { cmd.Process.Kill() })
		return cmd, done
	}
	d := &discodns{t: t, dns: addr, http: "http://" + httpAddr}
	cmd, done := start()
	eventually(t, 30*time.Second, "discodns answers on the passed sockets", func() error {
		select {
		case err := <-done:
			return fmt.Errorf("exited: %v\n%s", err, out.String())
		default:
		}
		_, err := d.addrsOf("web.svc.internal.")
		return err
	})
	if !strings.Contains(out.String(), "socket from systemd") {
		t.Errorf("discodns does not say it took systemd's sockets")
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-done; err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	// Nobody serves now; the query waits in the UDP socket's buffer.
	answered := make(chan error, 1)
	go func() {
		m := new(dns.Msg)
		m.SetQuestion("web.svc.internal.", dns.TypeA)
		r, _, err := (&dns.Client{Net: "udp", Timeout: 30 * time.Second}).Exchange(m, addr)
		if err == nil && len(r.Answer) == 0 {
			err = fmt.Errorf("no answer: %v", r)
		}
		answered <- err
	}()
	time.Sleep(100 * time.Millisecond) // let it be sent before the next start
	start()
	if err := <-answered; err != nil {
		t.Errorf("the query sent while discodns was stopped: %v\n%s", err, out.String())
	}
}

// TestHotRestartOpenTCPConnection: a client that keeps one TCP connection
// busy across a hot restart is answered on it by the old process, which
// exits once the connection closes; the new process answers new ones.
func TestHotRestartOpenTCPConnection(t *testing.T) {
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	h := launchHot(t, binary, hotConfig(e.endpoint()))
	h.waitServing()
	conn, err := dns.DialTimeout("tcp", h.dns, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	asked := 0
	ask := func() {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion("web.svc.internal.", dns.TypeA)
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		asked++
		if err := conn.WriteMsg(m); err != nil {
			t.Fatalf("query %d on the open connection: %v", asked, err)
		}
		r, err := conn.ReadMsg()
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("query %d on the open connection: %v %v", asked, r, err)
		}
	}
	ask()
	old := h.cmd.Process.Pid
	h.cmd.Process.Signal(syscall.SIGUSR2)
	eventually(t, 60*time.Second, "a new process takes over", func() error {
		ask() // the connection stays busy, so the old process keeps it
		if pids := h.pids(); pids[len(pids)-1] == old || !strings.Contains(h.logs(), "this one stops reading") {
			return errors.New("not yet")
		}
		return nil
	})
	for range 5 {
		ask()
		// HTTP is the new process's alone (the old one counted its hot
		// restart; the new one has none).
		if v, err := h.metric(`discodns_hot_restarts_total{result="ok"}`); err != nil || v != "0" {
			t.Errorf("/metrics while the old process drains: hot restarts %q, %v; want the new process's 0", v, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !alive(old) {
		t.Errorf("the old process exited while a connection it serves was busy")
	}
	conn.Close()
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the old process still runs 30 s after its last connection closed")
	}
	if h.err != nil {
		t.Errorf("the old process exited with %v", h.err)
	}
	d := &discodns{t: t, dns: h.dns}
	if _, err := d.addrsOf("web.svc.internal."); err != nil {
		t.Errorf("the new process: %v", err)
	}
	t.Logf("%d queries on the connection kept across the hot restart", asked)
}

// TestHotRestartRegistryDown: with etcd down, the new process of a hot
// restart cannot list; it is ready once seeded from the state file, and
// takes over with no query lost.
func TestHotRestartRegistryDown(t *testing.T) {
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	stateFile := filepath.Join(t.TempDir(), "state")
	h := launchHot(t, binary, strings.Replace(stateConfig(e.endpoint(), stateFile), "[dns]\n", "[dns]\nsockets = 2\n", 1))
	h.waitServing()
	waitStateInstances(t, stateFile, 1)
	e.stop()
	underLoad(t, h.dns, func() { h.hotRestart() })
	if !strings.Contains(h.logs(), "source serves its instances from the state file") {
		t.Errorf("the new process does not say it serves from the state file")
	}
	if v, err := h.metric(`discodns_source_state{source="etcd",state="stale"}`); err != nil || v != "1" {
		t.Errorf("the new process's etcd source: stale = %q, %v", v, err)
	}
}

// waitStateInstances waits until the state file holds n instances of the
// source etcd.
func waitStateInstances(t *testing.T, stateFile string, n int) {
	t.Helper()
	eventually(t, 10*time.Second, "the state file holds the table", func() error {
		f, err := readStateFile(stateFile)
		if err != nil {
			return err
		}
		if got := len(f.Sources["etcd"].Instances); got != n {
			return fmt.Errorf("%d instances of etcd in the file", got)
		}
		return nil
	})
}
