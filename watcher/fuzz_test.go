package watcher_test

import (
	"testing"

	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

// FuzzDecoders feeds arbitrary registry values to the decoders of the
// layouts that several registries share (see watchertest.FuzzDecoders).
func FuzzDecoders(f *testing.F) {
	watchertest.FuzzDecoders(f, map[string]watcher.Decoder{"discox": watcher.DecodeDiscox})
}
