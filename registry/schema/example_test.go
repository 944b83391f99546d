package schema_test

import (
	"errors"
	"fmt"

	"github.com/rewire/rewire/registry/schema"
)

func ExampleKeys() {
	k := schema.Keys{Prefix: "/rewire"}
	fmt.Println(k.Instance("web", "web-1"))
	fmt.Println(k.Maintenance("web", ""))
	fmt.Println(k.Maintenance("web", "web-1"))
	fmt.Println(k.Expect("web"))

	for _, key := range []string{
		"/rewire/services/web/web-1",
		"/rewire/maintenance/web/web-1",
		"/rewire/config/haproxy/maxconn",
		"/rewire/services/Web/web-1",
	} {
		kind, service, id, err := k.Parse(key)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Printf("kind %d service %q id %q\n", kind, service, id)
	}
	// Output:
	// /rewire/services/web/web-1
	// /rewire/maintenance/web
	// /rewire/maintenance/web/web-1
	// /rewire/expect/web
	// kind 1 service "web" id "web-1"
	// kind 2 service "web" id "web-1"
	// kind 0 service "" id ""
	// error: key /rewire/services/Web/web-1: service: invalid name "Web": must match ^[a-z0-9][a-z0-9._-]{0,62}$
}

func ExampleDecodeInstance() {
	in, err := schema.DecodeInstance([]byte(`{
		"v": 1, "service": "web", "id": "web-1",
		"address": "10.0.0.5", "port": 8080,
		"health": {"shallow": "warning"},
		"zone": "eu-1"
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	// Missing fields get their defaults.
	fmt.Println(in.Address, in.Port, in.Weight, in.Health.Shallow, in.Health.Deep, in.Routable())
	// Unknown fields are written back.
	b, _ := in.Marshal()
	fmt.Println(string(b))

	// A record that fails validation names the field.
	_, err = schema.DecodeInstance([]byte(`{"v": 1, "service": "web", "id": "web-1",
		"address": "10.0.0.5\nserver evil 6.6.6.6:80", "port": 8080, "health": {"shallow": "passing"}}`))
	var fe *schema.FieldError
	if errors.As(err, &fe) {
		fmt.Println("invalid field:", fe.Field)
	}
	// Output:
	// 10.0.0.5 8080 100 warning warning true
	// {"address":"10.0.0.5","depends_on":[],"draining":false,"health":{"shallow":"warning","deep":"warning","checks":[]},"id":"web-1","meta":{},"port":8080,"service":"web","tags":[],"v":1,"weight":100,"zone":"eu-1"}
	// invalid field: address
}
