package test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/discodns/discodns/test/registries"
)

// Careless configurations: discodns refuses at start what would serve
// nothing, shadow public names, loop, or hold absurd values, with an error
// naming the file, the key and why.

// refusedAtStart writes config, with {{DNS}} and {{HTTP}} replaced by free
// loopback addresses, runs discodns on it and returns what it printed and
// the file's path. The test fails unless discodns exits with status 1
// before serving.
func refusedAtStart(t *testing.T, config string) (out, path string) {
	t.Helper()
	config = strings.NewReplacer(
		"{{DNS}}", fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t)),
		"{{HTTP}}", fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t)),
	).Replace(config)
	path = filepath.Join(t.TempDir(), "discodns.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "-config", path)
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
