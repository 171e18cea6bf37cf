// The owner of a file is a Unix notion: apart so that the module builds everywhere Caddy does.

//go:build unix

package signedcookies

import (
	"io/fs"
	"syscall"
)

// fileOwner is the user ID that owns a file, where the platform has one.
func fileOwner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
