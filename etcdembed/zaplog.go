package etcdembed

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newZapLogger returns a zap logger that hands entries at or above min to
// log, so embedded etcd logs through the caller's slog.Logger, and drops
// everything once mute is set. A nil log gives a logger that discards
// everything.
func newZapLogger(log *slog.Logger, min zapcore.Level, mute *atomic.Bool) *zap.Logger {
	if log == nil {
		return zap.NewNop()
	}
	return zap.New(&slogCore{log: log, min: min, mute: mute})
}

// benign reports whether an etcd error message is expected in normal
// operation; such messages are logged at debug level.
func benign(msg string) bool {
	switch msg {
	case "failed to update storage version":
		// Logged once by a new member before its first raft entry is
		// applied; etcd retries and succeeds.
		return true
	}
	return false
}

// slogCore is a zapcore.Core writing to a slog.Logger.
type slogCore struct {
	log   *slog.Logger
	min   zapcore.Level
	mute  *atomic.Bool
	attrs []any
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= c.min && !c.mute.Load() }

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	clone := *c
	clone.attrs = append(append([]any(nil), c.attrs...), attrs(fields)...)
	return &clone
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	args := append(append([]any(nil), c.attrs...), attrs(fields)...)
	if e.LoggerName != "" {
		args = append(args, "logger", e.LoggerName)
	}
	level := slogLevel(e.Level)
	if benign(e.Message) {
		level = slog.LevelDebug
	}
	c.log.Log(context.Background(), level, "etcd: "+e.Message, args...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l >= zapcore.WarnLevel:
		return slog.LevelWarn
	case l >= zapcore.InfoLevel:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}

// attrs converts zap fields into slog key-value pairs.
func attrs(fields []zapcore.Field) []any {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]any, 0, 2*len(enc.Fields))
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		out = append(out, k, enc.Fields[k])
	}
	return out
}
