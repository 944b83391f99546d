package haproxy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rewire/rewire/haproxy"
)

// BenchmarkCommands compares one connection per command (Command) with
// one connection for the batch (Commands), on a real haproxy.
func BenchmarkCommands(b *testing.B) {
	l := newLab(b, clientBody)
	for _, n := range []int{10, 1000} {
		cmds := make([]string, n)
		for i := range cmds {
			cmds[i] = fmt.Sprintf("set server be/s1 weight %d", i%256+1)
		}
		b.Run(fmt.Sprintf("per-connection/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, cmd := range cmds {
					if _, err := l.client.Command(ctx(b), cmd); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(fmt.Sprintf("one-connection/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := l.client.Commands(ctx(b), cmds...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkApply adds 1,000 servers to a backend and deletes them again:
// two plans, 2,000 changes, 4,000 commands.
func BenchmarkApply(b *testing.B) {
	l := newLab(b, clientBody)
	var add, del haproxy.Plan
	for i := range 1000 {
		name := fmt.Sprintf("n%d", i)
		add.Changes = append(add.Changes, haproxy.Change{Kind: haproxy.KindAdd, Backend: "be", Server: name,
			Addr: "127.0.0.1", Port: 10000 + i, Weight: 1, State: haproxy.StateReady})
		del.Changes = append(del.Changes, haproxy.Change{Kind: haproxy.KindDel, Backend: "be", Server: name})
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.client.Apply(ctx(b), add); err != nil {
			b.Fatal(err)
		}
		if err := l.client.Apply(ctx(b), del); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDiff parses two configs with n servers in 10 backends and
// diffs them; one server in each backend changes weight, one is added.
func BenchmarkDiff(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		var old, next strings.Builder
		old.WriteString(diffBase)
		next.WriteString(diffBase)
		for be := range 10 {
			fmt.Fprintf(&old, "\nbackend b%d\n    balance roundrobin\n    default-server check inter 2s\n", be)
			fmt.Fprintf(&next, "\nbackend b%d\n    balance roundrobin\n    default-server check inter 2s\n", be)
			for i := range n / 10 {
				fmt.Fprintf(&old, "    server s%d 10.%d.%d.%d:8080 weight 100\n", i, be, i/256, i%256)
				w := 100
				if i == 0 {
					w = 50
				}
				fmt.Fprintf(&next, "    server s%d 10.%d.%d.%d:8080 weight %d\n", i, be, i/256, i%256, w)
			}
			fmt.Fprintf(&next, "    server extra 10.%d.255.255:8080 weight 100\n", be)
		}
		oldText, nextText := []byte(old.String()), []byte(next.String())
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				o, err := haproxy.Parse(oldText)
				if err != nil {
					b.Fatal(err)
				}
				nx, err := haproxy.Parse(nextText)
				if err != nil {
					b.Fatal(err)
				}
				plan, err := haproxy.Diff(o, nx)
				if err != nil || plan.Reload || len(plan.Changes) != 20 {
					b.Fatalf("Diff = %+v, %v", plan.Reason, err)
				}
			}
		})
	}
}
