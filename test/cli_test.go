package test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/discodns/discodns/test/registries"
)

// TestBadConfig checks that every kind of bad configuration stops discodns
// before it serves, with an error naming the file, the key and the reason.
func TestBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         []string // substrings of the error, besides the file
	}{
		{"unknown key", "[dns]\nlisten = [\"127.0.0.1:0\"]\nzoen = \"x.\"\n", []string{"dns.zoen", "unknown key"}},
		{"wrong type", "[dns]\nttl = 5\n", []string{"dns.ttl"}},
		{"bad duration", "[dns]\nttl = \"5 parsecs\"\n", []string{"dns.ttl", "duration"}},
		{"bad address", "[dns]\nlisten = [\"localhost\"]\n", []string{"dns.listen", "localhost"}},
		{"unknown source type", "[[source]]\ntype = \"redis\"\n", []string{"source[0].type", "redis"}},
		{"unknown format", "[[source]]\ntype = \"etcd\"\nformat = \"yaml\"\n", []string{"source[0] (\"etcd\").format", "yaml"}},
		{"not TOML", "[dns\n", []string{"syntax error", "line "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.toml")
			if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(binary, "-config", path, "-http-listen", fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t)))
			done := make(chan struct{})
			var out []byte
			var err error
			go func() { out, err = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatal("discodns started on a bad config")
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("exit: %v, want status 1", err)
			}
			msg := string(out)
			for _, want := range append(tc.want, path) {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", strings.TrimSpace(msg), want)
				}
			}
		})
	}
}

// TestSIGTERM checks that SIGTERM drains and exits 0.
func TestSIGTERM(t *testing.T) {
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	d.waitInstances("web.svc.internal.", 1)
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("still running 15 s after SIGTERM:\n%s", d.logs())
	}
	if d.err != nil {
		t.Errorf("exit after SIGTERM: %v, want 0\n%s", d.err, d.logs())
	}
	if !strings.Contains(d.logs(), "draining") {
		t.Errorf("no drain logged:\n%s", d.logs())
	}
}

// TestDev runs `discodns -dev` as a newcomer would and follows its printed
// instructions.
func TestDev(t *testing.T) {
	dnsAddr := fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t))
	cmd := exec.Command(binary, "-dev", "-dns-listen", dnsAddr, "-http-listen", httpAddr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var stderr bytes.Buffer
	cmd.Stderr = &lockedWriter{&mu, &stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			mu.Lock()
			t.Logf("stderr:\n%s", stderr.String())
			mu.Unlock()
		}
	})

	var digLine string
	timeout := time.After(60 * time.Second)
	for digLine == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("-dev exited before printing a dig line: %v", <-exited)
			}
			if strings.Contains(line, "dig ") && strings.Contains(line, "SRV _demo._tcp.") {
				digLine = strings.TrimSpace(line)
			}
		case <-timeout:
			t.Fatal("-dev printed no dig line within 60 s")
		}
	}
	need(t, "dig")
	// Run the printed line exactly as printed.
	var r *digResult
	eventually(t, 10*time.Second, "the printed dig line answers", func() error {
		args := strings.Fields(digLine)[1:]
		r, err = dig(t, "", args...)
		if err != nil {
			return err
		}
		if r.status != "NOERROR" || len(r.answer) != 1 {
			return fmt.Errorf("%s: %s", digLine, r.raw)
		}
		return nil
	})
	if srv, ok := r.answer[0].(*dns.SRV); !ok || srv.Port != 8080 {
		t.Errorf("demo SRV: %v", r.answer[0])
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("-dev exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("-dev still running 15 s after SIGTERM")
	}
}

// TestStartupWait: discodns does not answer DNS before its sources have
// listed (an empty table would say NXDOMAIN for services that exist), at
// most for dns.startup_wait; then it answers with what it has.
func TestStartupWait(t *testing.T) {
	const startupWait = 8 * time.Second
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	e.stop()
	config := strings.Replace(etcdConfig(e.endpoint()), `negative_ttl = "3s"`,
		fmt.Sprintf("negative_ttl = \"3s\"\nstartup_wait = %q", startupWait), 1)
	launched := time.Now()
	d := launchDiscodns(t, config)
	eventually(t, 30*time.Second, "HTTP up", func() error {
		code, _, err := d.get("/readyz")
		if err == nil && code != 503 {
			return fmt.Errorf("/readyz %d before any source listed", code)
		}
		return err
	})
	// An answer is wrong only while startup_wait has not passed (a loaded
	// machine may take that long to get here).
	if m, err := d.exchange("web.svc.internal.", dns.TypeA, "udp"); err == nil && time.Since(launched) < startupWait {
		t.Fatalf("answered %v after %v, before the sources listed and before startup_wait", m, time.Since(launched))
	}
	// After startup_wait it answers with what it has: nothing yet.
	eventually(t, startupWait+30*time.Second, "answers after startup_wait", func() error {
		m, err := d.exchange("svc.internal.", dns.TypeSOA, "udp")
		if err != nil {
			return err
		}
		if len(m.Answer) != 1 {
			return fmt.Errorf("%v", m)
		}
		return nil
	})
	e.start()
	d.waitInstances("web.svc.internal.", 1)
	d.waitReady()
}
