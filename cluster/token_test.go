package cluster

import (
	"errors"
	"net/http"
	"testing"

	"github.com/mozpool/mozpool/api"
)

func TestCheckToken(t *testing.T) {
	cases := []struct {
		name   string
		header http.Header
		ok     bool
	}{
		{"token header", http.Header{api.HeaderToken: {"s3cret"}}, true},
		{"bearer", http.Header{"Authorization": {"Bearer s3cret"}}, true},
		{"bearer in lower case, spaces", http.Header{"Authorization": {"bearer  s3cret "}}, true},
		{"missing", http.Header{}, false},
		{"wrong token header", http.Header{api.HeaderToken: {"guess"}}, false},
		{"wrong bearer", http.Header{"Authorization": {"Bearer guess"}}, false},
		{"prefix of the token", http.Header{api.HeaderToken: {"s3cre"}}, false},
		{"no scheme", http.Header{"Authorization": {"s3cret"}}, false},
		{"basic scheme", http.Header{"Authorization": {"Basic s3cret"}}, false},
		{"empty bearer", http.Header{"Authorization": {"Bearer "}}, false},
		// The token header wins: a wrong one is not rescued by a bearer.
		{"wrong token header, right bearer", http.Header{api.HeaderToken: {"guess"}, "Authorization": {"Bearer s3cret"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckToken(tc.header, "s3cret")
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("got %v, want ErrUnauthorized", err)
			}
		})
	}
	if err := CheckToken(http.Header{}, ""); err != nil {
		t.Fatalf("no token configured: %v", err)
	}
}
