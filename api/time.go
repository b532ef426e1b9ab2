package api

import "time"

// Time layouts of the wire format: naive ISO-8601 in UTC, no zone suffix,
// with six digits of microseconds when they are not zero (as Python's
// datetime.isoformat, which the original's clients were written against).
const (
	timeLayout      = "2006-01-02T15:04:05"
	timeLayoutMicro = "2006-01-02T15:04:05.000000"
)

// FormatTime renders t in the wire format.
func FormatTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format(timeLayout)
	}
	return t.Format(timeLayoutMicro)
}

// ParseTime parses a wire-format time (any number of fractional digits)
// as UTC.
func ParseTime(s string) (time.Time, error) {
	return time.ParseInLocation(timeLayout, s, time.UTC)
}
