package registrar

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/rewire/rewire/health"
)

// Register adds the local API to mux:
//
//	GET    /v1/services                        this registrar's instances (last published records)
//	PUT    /v1/checks/{service}/{check}[?id=]  push a ttl check's status: {"status":"passing","output":"..."}
//	PUT    /v1/maintenance/{service}[/{id}]    put this registrar's own instances of service (or one) in maintenance: {"reason":"..."}
//	DELETE /v1/maintenance/{service}[/{id}]    take them out again (only entries the local API set)
//
// Reads are open to whoever reaches the listener. Writes need an
// authenticated caller: a peer on the unix socket (api_socket, whose file
// mode and group are the access control; the kernel tells who it is), or
// the token of api_token_file as "Authorization: Bearer <token>". The
// maintenance entry's "by" names that caller; it is never taken from the
// request. Service-wide maintenance is an operator action (`registrar
// maint`, with etcd credentials): the local API never sets or clears it,
// nor an operator's entry for an instance.
//
// Bodies are strict JSON: one object, no unknown fields, nothing after it.
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
	mux.HandleFunc("PUT /v1/checks/{service}/{check}", a.authorized(a.putCheck))
	for _, p := range []string{"/v1/maintenance/{service}", "/v1/maintenance/{service}/{id}"} {
		mux.HandleFunc("PUT "+p, a.authorized(a.putMaintenance))
		mux.HandleFunc("DELETE "+p, a.authorized(a.deleteMaintenance))
	}
}

// errForbidden is the answer to a write from an unauthenticated caller.
var errForbidden = errors.New("registrar: local API writes need the unix socket (api_socket) or the api_token_file token in an \"Authorization: Bearer\" header")

// authorized wraps a write handler: it runs only for an authenticated
// caller, and gets the caller's name for "by".
func (a *Agent) authorized(h func(w http.ResponseWriter, r *http.Request, by string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		by, ok := a.caller(r)
		if !ok {
			writeError(w, http.StatusForbidden, errForbidden)
			return
		}
		h(w, r, by)
	}
}

// apiBy starts the "by" of every maintenance entry the local API writes:
// the API removes only entries that carry it.
const apiBy = "registrar-api@"

// caller authenticates the request: the unix socket peer's credentials
// (put in the context by ServeSocket), or the bearer token.
func (a *Agent) caller(r *http.Request) (string, bool) {
	if p, ok := peerFrom(r.Context()); ok {
		return apiBy + a.node + " " + p.String(), true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && a.token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.token)) == 1 {
		return apiBy + a.node + " token", true
	}
	return "", false
}

type checkUpdate struct {
	Status health.Status `json:"status"`
	Output string        `json:"output"`
}

func (a *Agent) putCheck(w http.ResponseWriter, r *http.Request, _ string) {
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

// maxBody bounds a request body.
const maxBody = 64 << 10

// decodeBody decodes a small JSON body strictly: one object with known
// fields and nothing after it; an empty body is {}.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("request body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("request body: data after the JSON object")
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
