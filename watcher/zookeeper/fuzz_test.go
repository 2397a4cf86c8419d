package zookeeper

import (
	"testing"

	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

// FuzzDecoders feeds arbitrary registry values to the decoders of the
// ZooKeeper layouts (see watchertest.FuzzDecoders).
func FuzzDecoders(f *testing.F) {
	watchertest.FuzzDecoders(f, map[string]watcher.Decoder{"curator": DecodeCurator, "serverset": DecodeServerset})
}
