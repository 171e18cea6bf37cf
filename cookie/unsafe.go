package cookie

import "unsafe"

// unsafeBytes views a string as bytes for read-only use (base64 decoding of header values),
// saving a copy per cookie on the hot path. The slice must never be written.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// unsafeString views bytes as a string for a comparison that does not keep it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
