package etcd

import (
	"testing"

	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

// FuzzDecoders feeds arbitrary registry values to the decoders of the etcd
// layouts (see watchertest.FuzzDecoders).
func FuzzDecoders(f *testing.F) {
	watchertest.FuzzDecoders(f, map[string]watcher.Decoder{"grpc": DecodeGRPC,
		"gozero": DecodeGoZero, "gomicro": DecodeGoMicro, "rpcx": DecodeRPCX, "kitex": DecodeKitex,
		"kratos": watcher.DecodeKratos})
}
