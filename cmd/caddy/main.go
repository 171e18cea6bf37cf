// Command caddy is Caddy with its standard modules and signed_cookies, for development:
//
//	go run ./cmd/caddy run --config examples/Caddyfile
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/signedcookies/caddy-signedcookies"
)

func main() {
	caddycmd.Main()
}
