// Command upstream is the app behind every server in the load test: it answers "ok", and on
// one path also sets a cookie the module manages, so the upstream-sign path can be measured.
// It does as little as a Go HTTP server can, so that the servers in front are what is measured.
//
//	go run ./bench/upstream -addr 127.0.0.1:18400 -sign /sign
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18400", "listen address")
	signPath := flag.String("sign", "/sign", "path whose response sets the managed cookie")
	cookie := flag.String("cookie", "session=alice; Path=/; HttpOnly; SameSite=Lax", "Set-Cookie line sent on -sign")
	flag.Parse()

	ok := []byte("ok\n")
	contentType := []string{"text/plain; charset=utf-8"}
	setCookie := []string{*cookie}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = contentType
		if r.URL.Path == *signPath {
			h["Set-Cookie"] = setCookie
		}
		_, _ = w.Write(ok)
	})

	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal((&http.Server{Handler: handler}).Serve(l))
}
