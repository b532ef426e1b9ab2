package ui

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func get(t *testing.T, h http.Handler, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandlerServesFiles(t *testing.T) {
	h := Handler()
	cases := []struct {
		path, contentType, contains string
	}{
		{"/ui/", "text/html; charset=utf-8", `<script type="module" src="js/app.js">`},
		{"/ui/index.html", "text/html; charset=utf-8", "<title>Mozpool</title>"},
		{"/ui/js/app.js", "text/javascript; charset=utf-8", "import"},
		{"/ui/style.css", "text/css; charset=utf-8", ".vt-row"},
		{"/ui/favicon.svg", "image/svg+xml", "<svg"},
		{"/ui/lifeguard.html", "text/html; charset=utf-8", "#/devices"},
		// Behind a reverse proxy that keeps a prefix.
		{"/mozpool/ui/js/table.js", "text/javascript; charset=utf-8", "VirtualTable"},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			w := get(t, h, tc.path)
			require.Equal(t, http.StatusOK, w.Code)
			require.Equal(t, tc.contentType, w.Header().Get("Content-Type"))
			require.Equal(t, "no-cache", w.Header().Get("Cache-Control"))
			require.NotEmpty(t, w.Header().Get("ETag"))
			require.Contains(t, w.Body.String(), tc.contains)
		})
	}
}

func TestHandlerRevalidates(t *testing.T) {
	h := Handler()
	tag := get(t, h, "/ui/js/app.js").Header().Get("ETag")
	w := get(t, h, "/ui/js/app.js", "If-None-Match", tag)
	require.Equal(t, http.StatusNotModified, w.Code)
	require.Empty(t, w.Body.String())
	require.NotEqual(t, tag, get(t, h, "/ui/js/api.js").Header().Get("ETag"), "two files share an ETag")
}

func TestHandlerNotFound(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/ui/nosuch.js", "/ui/js/", "/ui/../ui.go", "/ui/%2e%2e/ui.go", "/ui/../../etc/passwd", "/ui/%00"} {
		w := get(t, h, p)
		require.Equal(t, http.StatusNotFound, w.Code, p)
		// The API's error shape, as every unknown path.
		require.Equal(t, "application/json; charset=utf-8", w.Header().Get("Content-Type"), p)
		require.JSONEq(t, `{"error": "not found"}`, w.Body.String(), p)
	}
}

// TestReferencesResolve checks, without a browser, that every file the
// pages name (scripts, styles, module imports, preloads) is embedded: a
// typo would otherwise show only as a blank page.
func TestReferencesResolve(t *testing.T) {
	ref := regexp.MustCompile(`(?:src|href)="([^"#:]+)"|from '([^']+)'`)
	err := fs.WalkDir(assets, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !strings.HasSuffix(name, ".html") && !strings.HasSuffix(name, ".js") {
			return nil
		}
		b, err := fs.ReadFile(assets, name)
		require.NoError(t, err)
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			target := m[1] + m[2]
			if strings.HasPrefix(target, "../api/") {
				continue
			}
			p := path.Join(path.Dir(name), target)
			_, err := fs.Stat(assets, p)
			require.NoError(t, err, "%s refers to %s, which is not embedded", name, target)
		}
		return nil
	})
	require.NoError(t, err)
}
