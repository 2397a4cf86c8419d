package watcher_test

import (
	"testing"

	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

// FuzzDecoders feeds arbitrary registry values to the decoders of the
// layouts that several registries share (discox, dubbo) (see watchertest.FuzzDecoders).
func FuzzDecoders(f *testing.F) {
	f.Add("org.apache.dubbo.demo.DemoService", demoProvider, []byte{})
	watchertest.FuzzDecoders(f, map[string]watcher.Decoder{"discox": watcher.DecodeDiscox, "dubbo": watcher.DecodeDubbo})
}
