package signedcookies

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
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
			// The cluster example's shared volume stands in an empty directory here, which
			// validating must leave empty: the key ring is created when a config runs.
			shared := t.TempDir()
			if filepath.Base(f) == "cluster.Caddyfile" {
				cfg.StorageRaw = json.RawMessage(`{"module":"file_system","root":"` + shared + `"}`)
			}
			if err := caddy.Validate(&cfg); err != nil {
				t.Errorf("%s does not validate: %v", f, err)
			}
			if entries, err := os.ReadDir(shared); err != nil || len(entries) != 0 {
				t.Errorf("validating %s wrote to storage: %v %v", f, entries, err)
			}
		})
	}
}

// The README shows examples/production.Caddyfile's site as it is, and the demo's commands.
func TestReadmeShowsTheExamples(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	prod, err := os.ReadFile("examples/production.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	site := string(prod[strings.Index(string(prod), "app.example.com {"):])
	_, after, ok := strings.Cut(string(readme), "Production (`examples/production.Caddyfile`")
	if !ok {
		t.Fatal("README has no production example")
	}
	_, block, _ := strings.Cut(after, "```caddyfile\n")
	block, _, _ = strings.Cut(block, "```")
	if block != site {
		t.Errorf("README's production example differs from examples/production.Caddyfile:\n%s\nwant:\n%s", block, site)
	}
	for _, cmd := range []string{"go run ./cmd/caddy run --config examples/Caddyfile", "go test ./..."} {
		if !strings.Contains(string(readme), cmd) {
			t.Errorf("README lacks %q", cmd)
		}
	}
}
