package registrar

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks for leaked goroutines after all tests. Nothing is
// ignored: every test stops its Agent (Run returns only after its
// goroutines exit), closes its etcd clients before the embedded etcd, and
// closes its httptest servers, and neither the etcd client nor the
// embedded server (etcdtest) leaves goroutines behind once closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
