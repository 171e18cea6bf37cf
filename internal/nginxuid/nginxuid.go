// Package nginxuid reads and writes the cookie of nginx's userid module
// (ngx_http_userid_filter_module, as in nginx 1.22), so that a visitor who
// arrives with nginx's uid cookie can keep the same 128-bit ID.
//
// nginx keeps the ID as four uint32 words (uid[4]) and puts their 16 bytes,
// in memory order, into the cookie as base64. The same bytes are what Parse
// returns and Encode takes.
package nginxuid

// nginx's decode table (ngx_decode_base64): the standard alphabet only;
// '-', '_', whitespace and everything else are errors.
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

var decodeMap = func() (m [256]byte) {
	for i := range m {
		m[i] = 0xff
	}
	for i := 0; i < len(alphabet); i++ {
		m[alphabet[i]] = byte(i)
	}
	return m
}()

// Parse returns the 16 ID bytes of a uid cookie value (the text after
// "name="), or ok=false when nginx would not take it as an ID, in which case
// nginx leaves $uid_got empty and issues a new cookie.
//
// It follows ngx_http_userid_get_uid and ngx_decode_base64 exactly:
//   - fewer than 22 bytes: invalid ("client sent too short userid cookie");
//   - only the first 22 bytes are decoded, and whatever follows is ignored,
//     because nginx's own cookie ends in "==" or in the userid_mark
//     character followed by "=" (and, says nginx, many clients send garbage
//     there);
//   - within those 22 the decoder stops at the first '='; any other byte
//     outside the standard base64 alphabet before it is invalid, as is a
//     run whose length is 1 mod 4; bytes after that '=' are not looked at;
//     the unused low 4 bits of the 22nd character are ignored;
//   - a run shorter than 22 decodes fewer than 16 bytes and the rest stay
//     zero, as in nginx's zeroed context;
//   - an ID whose last word (bytes 12..15) is zero counts as no ID: nginx
//     tests uid_got[3] != 0 for $uid_got and before reusing the cookie.
//
// It looks at no more than the first 22 bytes of value and never allocates,
// so a hostile value costs constant time.
func Parse(value string) (id [16]byte, ok bool) {
	if len(value) < 22 {
		return id, false
	}
	src := value[:22]
	n := 0
	for ; n < len(src) && src[n] != '='; n++ {
		if decodeMap[src[n]] == 0xff {
			return id, false
		}
	}
	if n%4 == 1 {
		return id, false
	}
	// Same grouping as ngx_decode_base64_internal: full quads, then a tail
	// of 2 or 3 characters giving 1 or 2 bytes.
	d, s := 0, 0
	for ; n-s > 3; s += 4 {
		a, b, c, e := decodeMap[src[s]], decodeMap[src[s+1]], decodeMap[src[s+2]], decodeMap[src[s+3]]
		id[d], id[d+1], id[d+2] = a<<2|b>>4, b<<4|c>>2, c<<6|e
		d += 3
	}
	if n-s > 1 {
		id[d] = decodeMap[src[s]]<<2 | decodeMap[src[s+1]]>>4
	}
	if n-s > 2 {
		id[d+1] = decodeMap[src[s+1]]<<4 | decodeMap[src[s+2]]>>2
	}
	if id[12]|id[13]|id[14]|id[15] == 0 {
		return id, false
	}
	return id, true
}

// Encode returns the cookie value nginx writes for id when it issues a new
// cookie: ngx_encode_base64 of the 16 bytes, standard alphabet with padding,
// so always 24 characters ending in "==". (With userid_mark set nginx puts
// the mark character in place of the first '='; Parse ignores both.)
//
// nginx issues no cookie for an ID whose last word is zero, and Parse
// rejects one, so Encode of such an ID does not round-trip.
func Encode(id [16]byte) string {
	var b [24]byte
	d := 0
	for s := 0; s < 15; s += 3 {
		v := uint(id[s])<<16 | uint(id[s+1])<<8 | uint(id[s+2])
		b[d], b[d+1], b[d+2], b[d+3] = alphabet[v>>18&0x3f], alphabet[v>>12&0x3f], alphabet[v>>6&0x3f], alphabet[v&0x3f]
		d += 4
	}
	b[20], b[21], b[22], b[23] = alphabet[id[15]>>2], alphabet[id[15]&3<<4], '=', '='
	return string(b[:])
}

// Hex returns the ID as nginx prints $uid_got and $uid_set, without the
// "name=" prefix that nginx does include in those variables (they read
// "uid=0100007F…" for userid_name uid). nginx prints the four uint32
// words with "%08XD": upper-case hex, each word in the byte order of the
// host nginx runs on. Hex assumes a little-endian host (x86-64, arm64),
// where each group of 4 bytes prints reversed: bytes 7f 00 00 01 print as
// "0100007F". A big-endian nginx would have printed the bytes in order.
func Hex(id [16]byte) string { return string(AppendHex(nil, id)) }

// AppendHex appends Hex(id) to dst.
func AppendHex(dst []byte, id [16]byte) []byte {
	const digits = "0123456789ABCDEF"
	for w := 0; w < 4; w++ {
		for i := 0; i < 4; i++ {
			c := id[4*w+3-i]
			dst = append(dst, digits[c>>4], digits[c&0xf])
		}
	}
	return dst
}
