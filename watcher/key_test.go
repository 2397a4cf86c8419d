package watcher_test

import (
	"strings"
	"testing"

	"github.com/discodns/discodns/watcher"
)

func TestSplitKey(t *testing.T) {
	for _, tc := range []struct {
		key, service, id string
		err              string
	}{
		{"/services/web/10.0.0.1:80", "web", "10.0.0.1:80", ""},
		{"/services/web/a/b", "web", "a/b", ""},
		{"/services/web", "", "", "without an instance ID"},
		{"/services/web/", "", "", "without an instance ID"},
		{"/services//10.0.0.1:80", "", "", "without a service name"},
		{"/services/", "", "", "without a service name"},
		{"/services2/web/10.0.0.1:80", "", "", "outside the prefix"},
		{"/other/web/10.0.0.1:80", "", "", "outside the prefix"},
	} {
		service, id, err := watcher.SplitKey("/services/", tc.key)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if service != tc.service || id != tc.id || (tc.err == "") != (err == nil) || !strings.Contains(msg, tc.err) {
			t.Errorf("SplitKey(%q) = %q, %q, %v; want %q, %q, %q", tc.key, service, id, err, tc.service, tc.id, tc.err)
		}
	}
}
