package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/registry/schema"
)

// Register adds the local API to mux:
//
//	GET    /v1/services                        this registrar's instances (last published records)
//	PUT    /v1/checks/{service}/{check}[?id=]  push a ttl check's status: {"status":"passing","output":"..."}
//	PUT    /v1/maintenance/{service}[/{id}]    put an own service or instance in maintenance: {"reason":"..."}
//	DELETE /v1/maintenance/{service}[/{id}]    take it out again
//
// Errors are JSON {"error": "..."} with a 4xx or 5xx status.
func (a *Agent) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		// Each record as stored in etcd (and as `ls --json` shows it):
		// defaults filled in, so "meta": {} rather than null.
		list := []json.RawMessage{}
		for _, in := range a.Instances() {
			if b, err := in.Marshal(); err == nil {
				list = append(list, b)
			}
		}
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("PUT /v1/checks/{service}/{check}", a.putCheck)
	for _, p := range []string{"/v1/maintenance/{service}", "/v1/maintenance/{service}/{id}"} {
		mux.HandleFunc("PUT "+p, a.maintenance)
		mux.HandleFunc("DELETE "+p, a.maintenance)
	}
}

type checkUpdate struct {
	Status health.Status `json:"status"`
	Output string        `json:"output"`
}

func (a *Agent) putCheck(w http.ResponseWriter, r *http.Request) {
	var u checkUpdate
	if err := decodeBody(r, &u); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if !u.Status.Valid() {
		writeError(w, http.StatusBadRequest, fmt.Errorf("status %q: want passing, warning or critical", u.Status))
		return
	}
	service, check, id := r.PathValue("service"), r.PathValue("check"), r.URL.Query().Get("id")
	ins := a.find(service, id)
	if len(ins) == 0 {
		writeError(w, http.StatusNotFound, fmt.Errorf("no local instance of service %q (id %q)", service, id))
		return
	}
	for _, in := range ins {
		if err := in.pushTTL(check, u.Status, u.Output); err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, errNotFound) {
				code = http.StatusNotFound
			}
			writeError(w, code, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"updated": len(ins)})
}

func (a *Agent) maintenance(w http.ResponseWriter, r *http.Request) {
	service, id := r.PathValue("service"), r.PathValue("id")
	if len(a.find(service, id)) == 0 {
		writeError(w, http.StatusNotFound, fmt.Errorf("no local instance of service %q (id %q): the local API manages only this registrar's own instances", service, id))
		return
	}
	if r.Method == http.MethodDelete {
		had, err := registry.ClearMaintenance(r.Context(), a.cli, a.keys, service, id)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"removed": had})
		return
	}
	var body struct {
		Reason string `json:"reason"`
		By     string `json:"by"`
	}
	if err := decodeBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if body.By == "" {
		host, _ := os.Hostname()
		body.By = "registrar-api@" + host
	}
	m := schema.Maintenance{Reason: body.Reason, By: body.By, Since: time.Now().UTC().Truncate(time.Second)}
	if err := registry.SetMaintenance(r.Context(), a.cli, a.keys, service, id, m); err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// decodeBody decodes a small JSON body strictly; an empty body is {}.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
