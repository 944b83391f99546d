package registry

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/rewire/rewire/registry/schema"
	etcd "go.etcd.io/etcd/client/v3"
)

// SetMaintenance puts a service (id "") or one instance in maintenance.
// The key has no lease: it survives registrar restarts until cleared.
func SetMaintenance(ctx context.Context, cli *etcd.Client, keys schema.Keys, service, id string, m schema.Maintenance) error {
	if err := validateTarget(service, id); err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	key := keys.Maintenance(service, id)
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if _, err := cli.Put(ctx, key, string(b)); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// ClearMaintenance removes a maintenance entry and reports whether there
// was one.
func ClearMaintenance(ctx context.Context, cli *etcd.Client, keys schema.Keys, service, id string) (bool, error) {
	if err := validateTarget(service, id); err != nil {
		return false, err
	}
	key := keys.Maintenance(service, id)
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	resp, err := cli.Delete(ctx, key)
	if err != nil {
		return false, fmt.Errorf("delete %s: %w", key, err)
	}
	return resp.Deleted > 0, nil
}

// SetExpect records how many instances of service the operator expects;
// n == 0 removes the expectation.
func SetExpect(ctx context.Context, cli *etcd.Client, keys schema.Keys, service string, n int) error {
	if err := schema.ValidateName(service); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if n < 0 {
		return fmt.Errorf("expected instances: %d is negative", n)
	}
	key := keys.Expect(service)
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var err error
	if n == 0 {
		_, err = cli.Delete(ctx, key)
	} else {
		b, _ := json.Marshal(schema.Expect{Instances: n})
		_, err = cli.Put(ctx, key, string(b))
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

func validateTarget(service, id string) error {
	if err := schema.ValidateName(service); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if id != "" {
		if err := schema.ValidateName(id); err != nil {
			return fmt.Errorf("instance id: %w", err)
		}
	}
	return nil
}
