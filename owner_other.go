// The owner of a file is a Unix notion: apart so that the module builds everywhere Caddy does.

//go:build !unix

package signedcookies

import "io/fs"

// fileOwner is the user ID that owns a file, where the platform has one.
func fileOwner(fs.FileInfo) (int, bool) { return 0, false }
