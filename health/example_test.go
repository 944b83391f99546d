package health_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rewire/rewire/health"
)

func ExampleMonitor() {
	m := health.NewMonitor(health.MonitorOptions{
		Checks: []health.Check{{
			Name: "self",
			Checker: health.CheckerFunc(func(context.Context) health.Result {
				return health.Result{Status: health.Passing, Output: "ok"}
			}),
		}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = m.Run(ctx) })
	defer wg.Wait()
	defer cancel()

	select {
	case <-m.Changed():
	case <-time.After(10 * time.Second):
		fmt.Println("no change")
		return
	}
	for _, s := range m.States() {
		fmt.Println(s.Name, s.Kind, s.Status, s.Output)
	}
	fmt.Println(m.Aggregate())
	// Output:
	// self shallow passing ok
	// passing passing
}

func ExampleCleanOutput() {
	fmt.Printf("%q\n", health.CleanOutput("  disk 91% full\n\tsee df -h\n"))
	// Output:
	// "disk 91% full  see df -h"
}

func ExampleWorst() {
	fmt.Println(health.Worst())
	fmt.Println(health.Worst(health.Passing, health.Warning))
	fmt.Println(health.Worst(health.Critical, health.Warning))
	// Output:
	// passing
	// warning
	// critical
}
