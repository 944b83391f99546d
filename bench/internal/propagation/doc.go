// Package propagation holds what the propagation benchmarks
// (bench/templater and bench/traffic) measure alike, so their numbers
// compare: the raw etcd watch floor (a put → its watch event on the same
// etcd, with a client of its own, as a templater has), and waiting for a
// rendered file to show a change (fsnotify on the rename of the staged
// file, then a read).
//
//	floor, err := propagation.NewFloor(ctx, endpoints)
//	defer floor.Close()
//	d, err := floor.Sample(ctx, writer, record) // writer: another client
//
//	ev, stop, err := propagation.WatchDir(dir)
//	defer stop()
//	propagation.Drain(ev)
//	// ... the change ...
//	err = propagation.WaitFile(ev, dest, 10*time.Second, func(b []byte) bool { return bytes.Contains(b, want) })
//
// A Floor runs one goroutine, from NewFloor until Close.
package propagation
