package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed static
var static embed.FS

// assets is the static folder as the root of the UI.
var assets = func() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the folder is embedded above: it exists
	}
	return sub
}()

// Handler serves the UI's files under any path containing "/ui/": the
// request path's part after the first "/ui/" names the file, and a path
// ending in "/" serves index.html. Each file carries an ETag (a hash of
// its contents) and "Cache-Control: no-cache", so browsers revalidate
// cheaply and an upgraded node never serves a stale page.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

// etags caches each file's ETag; the files never change while the binary
// runs.
var etags sync.Map // name → string

func serve(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Path
	if i := strings.Index(name, "/ui/"); i >= 0 {
		name = name[i+len("/ui/"):]
	}
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if name == "" || strings.HasSuffix(r.URL.Path, "/") {
		name = path.Join(name, "index.html")
	}
	b, err := fs.ReadFile(assets, name)
	if err != nil {
		// The API's error shape, as for every other unknown path.
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error": "not found"}`+"\n")
		return
	}
	tag, ok := etags.Load(name)
	if !ok {
		sum := sha256.Sum256(b)
		tag = `"` + hex.EncodeToString(sum[:8]) + `"`
		etags.Store(name, tag)
	}
	w.Header().Set("ETag", tag.(string))
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// ServeContent picks the Content-Type from the extension and answers
	// If-None-Match with 304.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}
