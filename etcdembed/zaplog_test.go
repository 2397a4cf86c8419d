package etcdembed

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestZapLogger(t *testing.T) {
	var buf bytes.Buffer
	var mute atomic.Bool
	lg := newZapLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), zapcore.ErrorLevel, &mute)

	lg.Info("chatter")
	lg.With(zap.String("member", "m1")).Error("disk failed", zap.Error(errors.New("boom")), zap.Int("n", 3))
	lg.Error("failed to update storage version")
	mute.Store(true)
	lg.Error("after close")

	out := buf.String()
	if strings.Contains(out, "chatter") || strings.Contains(out, "after close") || strings.Contains(out, "storage version") {
		t.Errorf("logged what it should drop:\n%s", out)
	}
	for _, want := range []string{"level=ERROR", `msg="etcd: disk failed"`, "member=m1", "error=boom", "n=3"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
