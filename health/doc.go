// Package health runs health checks (HTTP, TCP, gRPC health, commands,
// and TTL checks the application pushes through the registrar) and turns
// their results into a damped Status per check and an aggregate status per
// instance. It knows nothing about etcd: the registrar reads a Monitor and
// writes what it finds.
//
// A Checker probes once and must honour its context, which carries the
// timeout. A Monitor owns one goroutine per check, started by Run and gone
// when Run returns; cancel Run's context to stop it. Monitor methods are
// safe for concurrent use, and Changed signals the caller to re-read the
// states:
//
//	m := health.NewMonitor(health.MonitorOptions{
//		Checks: []health.Check{
//			{Name: "http", Checker: health.HTTP{URL: "http://127.0.0.1:8080/healthz"}, Fall: 3, Rise: 2},
//			{Name: "db", Kind: health.Deep, Checker: health.TCP{Addr: "127.0.0.1:5432"}},
//		},
//		Logger: logger,
//	})
//	var wg sync.WaitGroup
//	wg.Go(func() { _ = m.Run(ctx) })
//	defer wg.Wait()
//	for {
//		select {
//		case <-ctx.Done():
//			return
//		case <-m.Changed():
//			shallow, deep := m.Aggregate()
//			publish(shallow, deep, m.States())
//		}
//	}
//
// Outputs are short, one line, and stable from one probe to the next (no
// latencies, timestamps or ephemeral ports), because every change in a
// check's Status or Output is reported through Changed.
package health
