// Package clip bounds the values that reach a log line. Registry records,
// check outputs and config values come from other people's machines; a
// megabyte meta key must not turn into a megabyte log line. Every daemon
// logger goes through ReplaceAttr, so no call site has to remember:
//
//	h := slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: clip.ReplaceAttr})
//
// A long value keeps its head and its tail (an error message's cause is
// often at the end) around a marker saying how much was cut:
//
//	clip.String(strings.Repeat("x", 1<<20)) // "xxx…[1048441 bytes cut]…xxx"
package clip
