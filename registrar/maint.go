package registrar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/registry/schema"
	etcd "go.etcd.io/etcd/client/v3"
)

// errOperator refuses to change a maintenance entry the local API did not
// write: an operator's, set with `registrar maint`.
var errOperator = errors.New("registrar: in maintenance by an operator; only `registrar maint disable` (with etcd credentials) changes that")

// putMaintenance puts this registrar's own instances of a service (or the
// one named) in maintenance, each with its own instance entry.
func (a *Agent) putMaintenance(w http.ResponseWriter, r *http.Request, by string) {
	var body struct {
		Reason string `json:"reason"`
	}
	if err := decodeBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ids, ok := a.ownIDs(w, r)
	if !ok {
		return
	}
	m := schema.Maintenance{Reason: body.Reason, By: by, Since: time.Now().UTC().Truncate(time.Second)}
	val, err := json.Marshal(m)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	service := r.PathValue("service")
	for _, id := range ids {
		err := a.changeMaintenance(r.Context(), service, id, etcd.OpPut(a.keys.Maintenance(service, id), string(val)))
		if err != nil {
			writeMaintError(w, service, id, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"service": service, "ids": ids, "maintenance": m})
}

// deleteMaintenance takes this registrar's own instances of a service (or
// the one named) out of the maintenance the local API put them in.
func (a *Agent) deleteMaintenance(w http.ResponseWriter, r *http.Request, _ string) {
	ids, ok := a.ownIDs(w, r)
	if !ok {
		return
	}
	service := r.PathValue("service")
	removed := false
	for _, id := range ids {
		key := a.keys.Maintenance(service, id)
		err := a.changeMaintenance(r.Context(), service, id, etcd.OpDelete(key))
		if errors.Is(err, errAbsent) {
			continue
		}
		if err != nil {
			writeMaintError(w, service, id, err)
			return
		}
		removed = true
	}
	writeJSON(w, http.StatusOK, map[string]any{"service": service, "ids": ids, "removed": removed})
}

// ownIDs returns the ids of this registrar's instances the request names,
// or answers 404.
func (a *Agent) ownIDs(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	service, id := r.PathValue("service"), r.PathValue("id")
	var ids []string
	for _, in := range a.find(service, id) {
		ids = append(ids, in.configSnapshot().ID)
	}
	if len(ids) == 0 {
		writeError(w, http.StatusNotFound, fmt.Errorf("no local instance of service %q (id %q): the local API manages only this registrar's own instances", service, id))
		return nil, false
	}
	slices.Sort(ids)
	return ids, true
}

var errAbsent = errors.New("registrar: no maintenance entry")

// changeMaintenance applies op to an instance's maintenance key if the key
// is absent (puts only) or holds an entry the local API wrote, in one
// transaction, so an operator's entry written meanwhile is never touched.
func (a *Agent) changeMaintenance(ctx context.Context, service, id string, op etcd.Op) error {
	key := a.keys.Maintenance(service, id)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := a.cli.Get(ctx, key)
	if err != nil {
		return err
	}
	cmp := etcd.Compare(etcd.ModRevision(key), "=", 0)
	if len(resp.Kvs) > 0 {
		var m schema.Maintenance
		if json.Unmarshal(resp.Kvs[0].Value, &m) != nil || !strings.HasPrefix(m.By, apiBy) {
			return fmt.Errorf("%w (by %q)", errOperator, m.By)
		}
		cmp = etcd.Compare(etcd.ModRevision(key), "=", resp.Kvs[0].ModRevision)
	} else if op.IsDelete() {
		return errAbsent
	}
	tr, err := a.cli.Txn(ctx).If(cmp).Then(op).Commit()
	if err != nil {
		return err
	}
	if !tr.Succeeded {
		return fmt.Errorf("%w: it changed while we looked; try again", errOperator)
	}
	return nil
}

func writeMaintError(w http.ResponseWriter, service, id string, err error) {
	code := http.StatusServiceUnavailable
	switch {
	case errors.Is(err, errOperator):
		code = http.StatusConflict
	case registry.IsPermission(err):
		code = http.StatusForbidden
	}
	writeError(w, code, fmt.Errorf("maintenance of %s/%s: %w", service, id, err))
}
