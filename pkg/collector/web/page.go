package web

import (
	"io/fs"
	"strings"
)

// IsPage reports whether path is the page or one of its static files: what
// the collector serves without authentication.
func IsPage(path string) bool {
	if path == "/" {
		return true
	}
	name := strings.TrimPrefix(path, "/")
	if name == "" || !fs.ValidPath(name) {
		return false
	}
	fi, err := fs.Stat(static, "static/"+name)
	return err == nil && !fi.IsDir()
}
