package main

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/render"
	"github.com/rewire/rewire/templater"
	"github.com/urfave/cli/v2"
)

// Status is what /v1/status returns and `templater status` prints.
type Status struct {
	Etcd         string  `json:"etcd"`
	Revision     int64   `json:"revision"`      // of the in-memory registry
	EtcdRevision int64   `json:"etcd_revision"` // newest etcd reported
	StaleSeconds float64 `json:"stale_seconds"` // since etcd last confirmed it
	ConfigError  string  `json:"config_error,omitempty"`
	// StoreChange is the last time etcd turned out to be another store
	// than the one the registry was read from (wiped, restored, replaced).
	StoreChange   registry.StoreChange  `json:"store_change,omitzero"`
	Templates     []render.TargetStatus `json:"templates"`
	GeneratedTime time.Time             `json:"time"`
}

// statusPage is the human view of Status.
var statusPage = template.Must(template.New("status").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>templater status</title>
<meta http-equiv="refresh" content="2">
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
.bad{background:#fdd}.held{background:#ffd}</style></head><body>
<h1>templater</h1>
<p>etcd {{.Etcd}} · registry revision {{.Revision}} (etcd at {{.EtcdRevision}}) · confirmed current {{printf "%.1f" .StaleSeconds}}s ago</p>
{{with .ConfigError}}<p class="bad">config reload rejected, the running config stays: {{.}}</p>{{end}}
{{if .StoreChange.Count}}<p class="held">etcd changed store {{.StoreChange.Count}} times, last at {{.StoreChange.Time.Format "2006-01-02 15:04:05"}}: {{.StoreChange.Reason}}</p>{{end}}
<table><tr><th>template</th><th>destination</th><th>revision</th><th>last change</th><th>services</th><th>state</th></tr>
{{range .Templates}}<tr class="{{if or .Error .ParseError .Drift}}bad{{else if .Held}}held{{end}}">
<td>{{.Name}}</td><td>{{.Destination}}</td><td>{{.Revision}}</td>
<td>{{if .LastChange.IsZero}}—{{else}}{{.LastChange.Format "2006-01-02 15:04:05"}}{{with .LastApply}}<br><small>{{.}}</small>{{end}}{{end}}</td>
<td>{{range $i, $s := .Services}}{{if $i}}, {{end}}{{$s}}{{end}}</td>
<td>{{if .Held}}held by {{.HeldBy}}: {{.Held}}{{if not .HeldUntil.IsZero}} (until {{.HeldUntil.Format "15:04:05"}}){{end}}<br>{{end}}
{{if .Error}}failing since {{.FailingSince.Format "15:04:05"}}: {{.Error}}<br>{{end}}{{with .ParseError}}source does not parse (previous template in use): {{.}}<br>{{end}}
{{with .Drift}}haproxy differs from the file: {{.}}{{end}}
{{if not (or .Held .Error .ParseError .Drift)}}ok{{end}}</td></tr>
{{end}}</table></body></html>
`))

func serveStatus(mux *http.ServeMux, status func() Status) {
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(status())
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		statusPage.Execute(w, status())
	})
}

// cmdStatus asks a running templater for its status, at --listen, else
// at the listen address of the config file given with -c.
func cmdStatus(c *cli.Context) error {
	addr, from := c.String("listen"), "--listen"
	if path := c.String("config"); path != "" && !c.IsSet("listen") {
		cfg, _, err := templater.LoadConfig(path)
		if err != nil {
			return cli.Exit(fmt.Sprintf("invalid config:\n%v", err), 2)
		}
		addr, from = cfg.Listen, path
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/v1/status")
	if err != nil {
		return fmt.Errorf("no templater answering on %s (from %s; pass -c with its config file or --listen with its address): %w", addr, from, err)
	}
	defer resp.Body.Close()
	if c.Bool("json") {
		_, err := io.Copy(c.App.Writer, resp.Body)
		return err
	}
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return fmt.Errorf("status from %s: %w", addr, err)
	}
	printStatus(c.App.Writer, st)
	var failing []string
	for _, t := range st.Templates {
		if t.Error != "" || t.ParseError != "" {
			failing = append(failing, t.Name)
		}
	}
	if len(failing) > 0 {
		return cli.Exit(fmt.Sprintf("%d of %d templates failing: %s", len(failing), len(st.Templates), strings.Join(failing, ", ")), 1)
	}
	return nil
}

func printStatus(w io.Writer, st Status) {
	fmt.Fprintf(w, "etcd %s: registry revision %d (etcd at %d), confirmed current %.1fs ago\n", st.Etcd, st.Revision, st.EtcdRevision, st.StaleSeconds)
	if st.ConfigError != "" {
		fmt.Fprintf(w, "config reload rejected (the running config stays): %s\n", st.ConfigError)
	}
	if sc := st.StoreChange; sc.Count > 0 {
		fmt.Fprintf(w, "etcd turned out to be another store %d times, last at %s: %s\n", sc.Count, sc.Time.Local().Format("2006-01-02 15:04:05"), sc.Reason)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TEMPLATE\tREVISION\tLAST CHANGE\tSTATE\tDESTINATION")
	for _, t := range st.Templates {
		state := "ok"
		var notes []string
		if t.Held != "" {
			h := "held by " + t.HeldBy + ": " + t.Held
			if !t.HeldUntil.IsZero() {
				h += " (until " + t.HeldUntil.Local().Format("15:04:05") + ")"
			}
			notes = append(notes, h)
		}
		if t.Error != "" {
			since := ""
			if !t.FailingSince.IsZero() {
				since = " since " + t.FailingSince.Local().Format("15:04:05")
			}
			notes = append(notes, "failing"+since+": "+firstLine(t.Error))
		}
		if t.ParseError != "" {
			notes = append(notes, "source does not parse: "+firstLine(t.ParseError))
		}
		if t.Drift != "" {
			notes = append(notes, "haproxy differs from the file: "+firstLine(t.Drift))
		}
		if len(notes) > 0 {
			state = strings.Join(notes, "; ")
		}
		last := "-"
		if !t.LastChange.IsZero() {
			last = t.LastChange.Local().Format("2006-01-02 15:04:05")
			if t.LastApply != "" {
				last += " (" + firstLine(t.LastApply) + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", t.Name, t.Revision, last, state, t.Destination)
	}
	tw.Flush()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
