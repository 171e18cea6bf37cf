// The documentation as a test reads it: every config block of README.md and docs/ loads, and
// every link between them leads somewhere, so that neither can rot.

package signedcookies

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// notAConfig marks, on the line before a fence, a block that is deliberately no config (the
// syntax with <placeholders>, say), with why: <!-- docs-test: not a config (why) -->.
const notAConfig = "<!-- docs-test: not a config"

// docBlock is a fenced block of a Markdown file.
type docBlock struct {
	file   string
	line   int // of the opening fence
	lang   string
	text   string // its lines, without the fence's indentation
	marker string // the line before the fence
}

var fence = regexp.MustCompile("^(\\s*)```(\\w*)\\s*$")

// docFiles are the Markdown files whose config blocks must load.
func docFiles(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob("docs/*.md")
	if err != nil || len(docs) < 10 {
		t.Fatalf("docs/ has %d files: %v", len(docs), err)
	}
	return append([]string{"README.md"}, docs...)
}

// readBlocks returns the fenced blocks of a Markdown file.
func readBlocks(t *testing.T, file string) []docBlock {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var out []docBlock
	for i := 0; i < len(lines); i++ {
		m := fence.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		blk := docBlock{file: file, line: i + 1, lang: m[2]}
		for j := i - 1; j >= 0; j-- {
			if s := strings.TrimSpace(lines[j]); s != "" {
				blk.marker = s
				break
			}
		}
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, strings.TrimPrefix(lines[i], m[1]))
		}
		if i == len(lines) {
			t.Fatalf("%s:%d: a fence that is never closed", file, blk.line)
		}
		blk.text = strings.Join(body, "\n") + "\n"
		out = append(out, blk)
	}
	return out
}

var envPlaceholder = regexp.MustCompile(`\{env\.([A-Za-z_][A-Za-z0-9_]*)\}`)

// wholeCaddyfile reports whether a block is a whole Caddyfile (global options or a site
// address first) rather than directives for a site.
func wholeCaddyfile(text string) bool {
	for l := range strings.SplitSeq(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		first := strings.Fields(l)[0]
		return first == "{" || strings.ContainsAny(first, ".:/") || first == "localhost"
	}
	return false
}

// docConfig turns a block into a config: a whole Caddyfile adapted, directives adapted in a
// site of their own, a JSON config as it is, or a JSON handler in a route of its own.
func docConfig(blk docBlock) (*caddy.Config, error) {
	var js []byte
	switch blk.lang {
	case "caddyfile":
		cf := blk.text
		if !wholeCaddyfile(cf) {
			cf = "http://localhost:8080 {\n" + cf + "}\n"
		}
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
		if err != nil {
			return nil, fmt.Errorf("adapting: %v\n%s", err, cf)
		}
		js = out
	case "json":
		var head map[string]json.RawMessage
		if err := json.Unmarshal([]byte(blk.text), &head); err != nil {
			return nil, err
		}
		js = []byte(blk.text)
		switch {
		case head["apps"] != nil:
		case head["handler"] != nil:
			js = []byte(`{"apps":{"http":{"servers":{"docs":{"listen":[":8080"],"routes":[{"handle":[` + blk.text + `]}]}}}}}`)
		default:
			return nil, fmt.Errorf("a JSON block that is neither a config nor a handler")
		}
	}
	var cfg caddy.Config
	if err := json.Unmarshal(js, &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Every ```caddyfile and ```json block of the README and docs/ validates as `caddy validate`
// would, its {env.*} placeholders set and its storage in a temp dir; the few that are no
// config say so on the line before them.
func TestDocsConfigsLoad(t *testing.T) {
	var total, loaded, marked int
	for _, file := range docFiles(t) {
		for _, blk := range readBlocks(t, file) {
			if blk.lang != "caddyfile" && blk.lang != "json" {
				continue
			}
			total++
			if strings.HasPrefix(blk.marker, notAConfig) {
				marked++
				if why := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(blk.marker, notAConfig), "-->")); why == "" {
					t.Errorf("%s:%d: marked as no config without saying why", file, blk.line)
				}
				continue
			}
			t.Run(fmt.Sprintf("%s:%d", file, blk.line), func(t *testing.T) {
				t.Setenv("XDG_DATA_HOME", t.TempDir())
				for _, m := range envPlaceholder.FindAllStringSubmatch(blk.text, -1) {
					t.Setenv(m[1], fixedSecret("docs "+m[1]))
				}
				cfg, err := docConfig(blk)
				if err != nil {
					t.Fatalf("%v\n(mark a block that is no config with %s (why) --> on the line before it)", err, notAConfig)
				}
				cfg.StorageRaw = json.RawMessage(`{"module":"file_system","root":` + jsonString(t.TempDir()) + `}`)
				logPath := filepath.Join(t.TempDir(), "caddy.log")
				cfg.Logging = new(caddy.Logging)
				if err := json.Unmarshal([]byte(`{"logs":{"default":{"writer":{"output":"file","filename":`+jsonString(logPath)+`},"level":"WARN"}}}`), cfg.Logging); err != nil {
					t.Fatal(err)
				}
				if err := caddy.Validate(cfg); err != nil {
					t.Fatalf("does not load: %v\n%s", err, blk.text)
				}
				loaded++
				// A recipe shows what to do: the module has nothing to warn about in it.
				if log, _ := os.ReadFile(logPath); blk.file == "README.md" && strings.Contains(string(log), `"logger":"http.handlers.signed_cookies"`) {
					t.Errorf("the module warns about a README recipe:\n%s\n%s", log, blk.text)
				}
			})
		}
	}
	t.Logf("%d config blocks: %d loaded, %d marked as no config", total, loaded, marked)
	if total < 20 || loaded+marked != total {
		t.Errorf("%d config blocks, %d loaded, %d marked: every block loads or says why not", total, loaded, marked)
	}
	if marked > 5 {
		t.Errorf("%d blocks are marked as no config: keep those few (the syntax blocks)", marked)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

var (
	mdLink  = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
)

// slug is the anchor GitHub gives a heading.
func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Every relative link of the README and docs/ leads to a file of the repository, and every
// anchor to a heading of it.
func TestDocsLinksResolve(t *testing.T) {
	anchors := func(file string) map[string]bool {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil
		}
		out := map[string]bool{}
		for _, m := range heading.FindAllStringSubmatch(string(b), -1) {
			out[slug(m[1])] = true
		}
		return out
	}
	for _, file := range append(docFiles(t), "SECURITY.md", "CONTRIBUTING.md") {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			resolved := file
			if path != "" {
				resolved = filepath.Join(filepath.Dir(file), path)
				if _, err := os.Stat(resolved); err != nil {
					t.Errorf("%s: link %q: %v", file, target, err)
					continue
				}
			}
			if anchor != "" && !anchors(resolved)[anchor] {
				t.Errorf("%s: link %q: no heading #%s in %s", file, target, anchor, resolved)
			}
		}
	}
}
