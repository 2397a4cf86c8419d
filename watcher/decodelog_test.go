package watcher_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/discodns/discodns/watcher"
)

// TestDecodeLog: every failure is counted, a key is logged once until it
// decodes again, and a completed list forgets the keys that did not fail
// in it while an aborted one changes nothing.
func TestDecodeLog(t *testing.T) {
	var out strings.Builder
	d := &watcher.DecodeLog{Source: "s", Log: slog.New(slog.NewTextHandler(&out, nil)), Msg: "bad entry"}
	logged := func(key string) int { return strings.Count(out.String(), "key="+key+" ") }
	bad := errors.New("bad")
	fail := func(key string) { d.Failed(key, bad, "key", key) }

	fail("a")
	fail("a")
	if n := logged("a"); n != 1 {
		t.Fatalf("a logged %d times, want 1", n)
	}
	d.Forget("a")
	fail("a")
	if n := logged("a"); n != 2 {
		t.Fatalf("a logged %d times after it decoded once, want 2", n)
	}

	// A list in which a fails again and b fails: a stays logged.
	d.StartList()
	fail("a")
	fail("b")
	d.EndList(true)
	if logged("a") != 2 || logged("b") != 1 {
		t.Fatalf("after a list: a %d, b %d, want 2 and 1", logged("a"), logged("b"))
	}
	// An aborted list in which a decodes changes nothing.
	d.StartList()
	d.EndList(false)
	fail("a")
	if n := logged("a"); n != 2 {
		t.Fatalf("a logged %d times after an aborted list, want 2", n)
	}
	// A list in which a decodes: its next failure is logged.
	d.StartList()
	fail("b")
	d.EndList(true)
	fail("a")
	fail("b")
	if logged("a") != 3 || logged("b") != 1 {
		t.Fatalf("after a list without a: a %d, b %d, want 3 and 1", logged("a"), logged("b"))
	}
}
