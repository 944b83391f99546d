package haproxy_test

import (
	"fmt"

	"github.com/rewire/rewire/haproxy"
)

func ExampleDiff() {
	old, _ := haproxy.Parse([]byte(`
backend web
    balance roundrobin
    default-server check inter 2s
    server web-1 10.0.0.11:8080 weight 100
    server web-2 10.0.0.12:8080 weight 100
    server web-3 10.0.0.13:8080 weight 100 disabled
`))
	next, _ := haproxy.Parse([]byte(`
backend web
    balance roundrobin
    default-server check inter 2s
    server web-1 10.0.0.11:8080 weight 50
    server web-3 10.0.0.13:8080 weight 100  # now healthy
    server web-4 [2001:db8::14]:8080 weight 100
`))
	plan, _ := haproxy.Diff(old, next)
	for _, c := range plan.Changes {
		fmt.Println(c)
	}
	for _, cmd := range plan.Commands() {
		fmt.Println(">", cmd)
	}

	static, _ := haproxy.Parse([]byte(`
backend web
    balance static-rr
    server web-1 10.0.0.11:8080
`))
	plan, _ = haproxy.Diff(static, static)
	fmt.Println("empty:", plan.Empty())
	more, _ := haproxy.Parse([]byte(static.String() + "    server web-2 10.0.0.12:8080\n"))
	plan, _ = haproxy.Diff(static, more)
	fmt.Println("reload:", plan.Reason)
	// Output:
	// add web/web-4 [2001:db8::14]:8080 weight 100 ready check inter 2s
	// set-weight web/web-1 50
	// set-state web/web-3 ready
	// del web/web-2
	// > add server web/web-4 [2001:db8::14]:8080 weight 100 check inter 2s
	// > enable health web/web-4
	// > enable server web/web-4
	// > set server web/web-1 weight 50
	// > set server web/web-3 state ready
	// > set server web/web-2 state maint
	// > del server web/web-2
	// empty: true
	// reload: backend web: server web-2 added (line 4), and backend web uses static-rr: 2.6 cannot add servers at runtime
}
