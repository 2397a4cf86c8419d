package register

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/consul/api"
)

// Consul registers an agent service with a TTL check that it passes every
// third of the TTL (or, with Instance.Check, an HTTP check the agent
// polls). The agent deregisters it a minute after the check went critical;
// when the agent forgot it (restarted), it registers again.
type Consul struct {
	Address, Datacenter, Token string
	CAFile, CertFile, KeyFile  string
	Log                        *slog.Logger
}

// Keep implements Registrar.
func (c *Consul) Keep(ctx context.Context, in Instance) error {
	log := logger(c.Log)
	client, err := api.NewClient(&api.Config{
		Address: c.Address, Datacenter: c.Datacenter, Token: c.Token,
		TLSConfig: api.TLSConfig{CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile},
	})
	if err != nil {
		return fmt.Errorf("consul %s: %w", c.Address, err)
	}
	agent := client.Agent()
	id := fmt.Sprintf("%s-%s", in.Service, in.addr())
	checkID := "service:" + id
	reg := &api.AgentServiceRegistration{
		ID: id, Name: in.Service, Address: in.Host, Port: in.Port, Tags: in.Tags, Meta: in.Meta,
		Check: &api.AgentServiceCheck{
			CheckID: checkID, TTL: in.TTL.String(), Status: api.HealthPassing,
			DeregisterCriticalServiceAfter: "1m",
		},
	}
	if in.Weight > 0 {
		reg.Weights = &api.AgentWeights{Passing: in.Weight, Warning: 1}
	}
	if in.Check != "" {
		reg.Check = &api.AgentServiceCheck{
			CheckID: checkID, HTTP: in.Check, Interval: "5s", Timeout: "2s",
			DeregisterCriticalServiceAfter: "1m",
		}
	}
	registered := false
	for attempt := 0; ; attempt++ {
		if !registered {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := agent.ServiceRegisterOpts(reg, api.ServiceRegisterOpts{}.WithContext(rctx))
			cancel()
			if err == nil {
				registered, attempt = true, 0
				log.Info("registered", "registry", "consul", "id", id)
			} else if ctx.Err() == nil {
				log.Warn("consul registration failed; retrying", "id", id, "err", err)
			}
		} else if in.Check == "" {
			// Pass the TTL check; an agent that lost the check (restarted)
			// gets the whole registration again.
			if err := agent.UpdateTTLOpts(checkID, "alive", api.HealthPassing, (&api.QueryOptions{}).WithContext(ctx)); err != nil && ctx.Err() == nil {
				log.Warn("consul check update failed; registering again", "id", id, "err", err)
				registered = false
			}
		}
		wait := in.TTL / 3
		if !registered {
			wait = min(200*time.Millisecond<<min(attempt, 5), 5*time.Second)
		} else if in.Check != "" {
			wait = 10 * time.Second // the agent polls; check it still knows us
			if _, _, err := agent.Service(id, (&api.QueryOptions{}).WithContext(ctx)); err != nil && ctx.Err() == nil {
				registered = false
				continue
			}
		}
		select {
		case <-ctx.Done():
			rctx, cancel := cleanupContext()
			defer cancel()
			err := agent.ServiceDeregisterOpts(id, (&api.QueryOptions{}).WithContext(rctx))
			var status api.StatusError
			if err != nil && !(errors.As(err, &status) && status.Code == 404) { // 404: the agent forgot it already
				return fmt.Errorf("consul deregister %s: %w", id, err)
			}
			log.Info("deregistered", "registry", "consul", "id", id)
			return nil
		case <-time.After(wait):
		}
	}
}
