package api_test

import (
	"testing"
	"time"

	"github.com/mozpool/mozpool/api"
)

func TestFormatTime(t *testing.T) {
	cases := []struct {
		name string
		in   time.Time
		want string
	}{
		{"whole seconds", time.Date(1978, 6, 15, 0, 0, 0, 0, time.UTC), "1978-06-15T00:00:00"},
		{"microseconds", time.Date(2013, 2, 22, 22, 29, 6, 412207000, time.UTC), "2013-02-22T22:29:06.412207"},
		{"trailing zero kept", time.Date(2013, 2, 22, 22, 29, 6, 412200000, time.UTC), "2013-02-22T22:29:06.412200"},
		{"nanoseconds dropped", time.Date(2013, 2, 22, 22, 29, 6, 999, time.UTC), "2013-02-22T22:29:06"},
		{"converted to UTC", time.Date(2013, 2, 22, 23, 0, 0, 0, time.FixedZone("CET", 3600)), "2013-02-22T22:00:00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := api.FormatTime(tc.in)
			if got != tc.want {
				t.Fatalf("FormatTime = %q, want %q", got, tc.want)
			}
			back, err := api.ParseTime(got)
			if err != nil {
				t.Fatal(err)
			}
			if !back.Equal(tc.in.Truncate(time.Microsecond)) {
				t.Fatalf("ParseTime(%s) = %s", got, back)
			}
		})
	}
	if _, err := api.ParseTime("2013-02-22T22:29:06Z"); err == nil {
		t.Fatal("ParseTime accepted a zone suffix")
	}
}
