package signedcookies

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// Every example config adapts and validates, so the documentation cannot rot.
func TestExamplesValidate(t *testing.T) {
	t.Setenv("SIGNED_COOKIES_SECRET", testSecret)
	t.Setenv("SIGNED_COOKIES_SECRET_OLD", otherSecret)
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	files, _ := filepath.Glob("examples/*Caddyfile")
	jsons, _ := filepath.Glob("examples/*.json")
	if len(files) < 3 || len(jsons) < 1 {
		t.Fatalf("examples missing: %v %v", files, jsons)
	}
	for _, f := range append(files, jsons...) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Ext(f) != ".json" {
				b = adapt(t, string(b))
			}
			var cfg caddy.Config
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			// the cluster example's shared volume does not exist here
			if filepath.Base(f) == "cluster.Caddyfile" {
				cfg.StorageRaw = json.RawMessage(`{"module":"file_system","root":"` + t.TempDir() + `"}`)
			}
			if err := caddy.Validate(&cfg); err != nil {
				t.Errorf("%s does not validate: %v", f, err)
			}
		})
	}
}
