package signedcookies

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
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

// docs/caddyfile.md shows examples/production.Caddyfile's site as it is; the README, a product
// page, shows the demo's and the tests' commands and links the changelog and upgrading notes.
func TestReadmeShowsTheExamples(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := os.ReadFile("docs/caddyfile.md")
	if err != nil {
		t.Fatal(err)
	}
	prod, err := os.ReadFile("examples/production.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	site := string(prod[strings.Index(string(prod), "app.example.com {"):])
	_, after, ok := strings.Cut(string(ref), "Production (`examples/production.Caddyfile`")
	if !ok {
		t.Fatal("docs/caddyfile.md has no production example")
	}
	_, block, _ := strings.Cut(after, "```caddyfile\n")
	block, _, _ = strings.Cut(block, "```")
	if block != site {
		t.Errorf("docs/caddyfile.md's production example differs from examples/production.Caddyfile:\n%s\nwant:\n%s", block, site)
	}
	for _, want := range []string{"go run ./cmd/caddy run --config examples/Caddyfile", "go test ./...",
		"](CHANGELOG.md)", "](docs/upgrading.md)", "xcaddy build --with github.com/signedcookies/caddy-signedcookies\n", "](examples/Dockerfile)"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README lacks %q", want)
		}
	}
	if n := strings.Count(string(readme), "\n"); n > 250 {
		t.Errorf("README.md has %d lines: it is the product page; the reference goes in docs/", n)
	}
}

// examples/Dockerfile builds this module with xcaddy on Caddy's builder image, and runs it on
// the image of the Caddy version the module is built and tested with (go.mod's).
func TestDockerfileBuildsThisModule(t *testing.T) {
	df, err := os.ReadFile("examples/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/caddyserver/caddy/v2 v(\S+)$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod requires no Caddy")
	}
	for _, want := range []string{
		"ARG CADDY_VERSION=" + string(m[1]) + "\n",
		"FROM caddy:${CADDY_VERSION}-builder AS builder\n",
		"RUN xcaddy build --with github.com/signedcookies/caddy-signedcookies\n",
		"FROM caddy:${CADDY_VERSION}\n",
		"COPY --from=builder /usr/bin/caddy /usr/bin/caddy\n",
	} {
		if !strings.Contains(string(df), want) {
			t.Errorf("examples/Dockerfile lacks %q", want)
		}
	}
}
