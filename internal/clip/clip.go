package clip

import (
	"fmt"
	"log/slog"
	"strconv"
	"unicode/utf8"
)

// Max is the most bytes String keeps of a value, marker included.
const Max = 160

// tail is how many bytes of a clipped value's end String keeps; the head
// gets the rest of Max.
const tail = 40

// String returns s, or, if it is longer than Max bytes, its first and last
// bytes around a marker with the number of bytes cut, Max bytes in all.
// Cuts fall on UTF-8 character boundaries.
func String(s string) string {
	if len(s) <= Max {
		return s
	}
	// The marker's length depends on the count it shows; sizing it for
	// len(s) is enough, since fewer bytes are cut than that.
	h := Max - tail - len("…[ bytes cut]…") - len(strconv.Itoa(len(s)))
	for h > 0 && !utf8.RuneStart(s[h]) {
		h--
	}
	t := len(s) - tail
	for t < len(s) && !utf8.RuneStart(s[t]) {
		t++
	}
	return s[:h] + "…[" + strconv.Itoa(t-h) + " bytes cut]…" + s[t:]
}

// Value bounds one slog value: strings directly, errors, Stringers and
// other values by their text. Numbers, booleans, times and durations pass
// through, they are bounded already.
func Value(v slog.Value) slog.Value {
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); len(s) > Max {
			return slog.StringValue(String(s))
		}
		return v
	case slog.KindAny:
		var s string
		switch x := v.Any().(type) {
		case error:
			s = x.Error()
		case fmt.Stringer:
			s = x.String()
		default:
			s = fmt.Sprint(x)
		}
		if len(s) > Max {
			return slog.StringValue(String(s))
		}
		return v
	case slog.KindGroup:
		attrs := v.Group()
		out := make([]slog.Attr, len(attrs))
		for i, a := range attrs {
			out[i] = Attr(a)
		}
		return slog.GroupValue(out...)
	default:
		return v
	}
}

// Attr bounds an attribute's key and value.
func Attr(a slog.Attr) slog.Attr {
	return slog.Attr{Key: String(a.Key), Value: Value(a.Value.Resolve())}
}

// ReplaceAttr is Attr with the signature of slog.HandlerOptions.ReplaceAttr.
func ReplaceAttr(_ []string, a slog.Attr) slog.Attr { return Attr(a) }
