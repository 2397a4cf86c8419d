// Package register keeps one service instance registered in a registry
// (etcd, Consul or ZooKeeper) in the layout discodns reads, so that a
// program in any language can register itself without a client library:
// the register side of discovery, as discodns is the discover side.
package register

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"time"
)

// Instance is what is registered.
type Instance struct {
	Service string
	// Host and Port are where the instance listens.
	Host string
	Port int
	// TTL is how long the registry keeps the instance after the
	// registrant dies: the etcd lease, the Consul TTL check.
	TTL    time.Duration
	Weight int
	Tags   []string
	Meta   map[string]string
	// Check is an HTTP URL Consul polls instead of a TTL check.
	Check string
}

// Validate checks the instance.
func (in *Instance) Validate() error {
	switch {
	case in.Service == "":
		return errors.New("-service is required")
	case in.Host == "" || in.Port < 1 || in.Port > 65535:
		return fmt.Errorf("-addr %q: want host:port with a port from 1 to 65535", net.JoinHostPort(in.Host, strconv.Itoa(in.Port)))
	case in.TTL < time.Second:
		return fmt.Errorf("-ttl %s: want at least 1s", in.TTL)
	case in.Weight < 0 || in.Weight > 65535:
		return fmt.Errorf("-weight %d: want 0 to 65535", in.Weight)
	}
	return nil
}

// addr is host:port.
func (in *Instance) addr() string { return net.JoinHostPort(in.Host, strconv.Itoa(in.Port)) }

// discoxValue is the discox layout's value: the attributes.
func (in *Instance) discoxValue() []byte {
	v := map[string]any{}
	if in.Weight > 0 {
		v["weight"] = in.Weight
	}
	if len(in.Tags) > 0 {
		v["tags"] = in.Tags
	}
	if len(in.Meta) > 0 {
		v["meta"] = in.Meta
	}
	b, _ := json.Marshal(v)
	return b
}

// A Registrar keeps an instance registered until ctx ends, then removes
// it. Keep re-registers after the registry lost the registration (an
// expired lease or session, a restarted agent) and returns only when ctx
// ends (nil) or on a setup error.
type Registrar interface {
	Keep(ctx context.Context, in Instance) error
}

// retry sleeps a growing, jittered delay; it returns false when ctx ended.
func retry(ctx context.Context, attempt int) bool {
	d := min(200*time.Millisecond<<min(attempt, 5), 5*time.Second)
	d -= time.Duration(rand.Int64N(int64(d) / 5))
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// cleanupContext is the context of the removal after ctx ended.
func cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

func logger(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.Default()
	}
	return log
}
