// Package sample is run by testsummary's tests: one test of each outcome.
package sample

import (
	"os"
	"testing"
)

func TestPasses(t *testing.T) { t.Log("logs nothing worth showing") }

func TestSkipsWithReason(t *testing.T) { t.Skip("haproxy not installed (apt-get install haproxy)") }

func TestSubtests(t *testing.T) {
	t.Run("passes", func(t *testing.T) {})
	t.Run("skips", func(t *testing.T) {
		t.Log("port 2379 taken")
		t.SkipNow()
	})
}

func TestFailsOnRequest(t *testing.T) {
	if os.Getenv("SAMPLE_FAIL") == "" {
		return
	}
	t.Run("inner", func(t *testing.T) { t.Error("inner went wrong") })
	t.Error("outer went wrong")
}

func TestSkipsLoudly(t *testing.T) { t.Skip("\n\n*** SKIPPING: etcd is not installed ***\n\n") }
