// How the policies of several handlers on one request path get along: the first to run
// verifies a name, the later ones trust it, so both must read and write it the same way.

package engine

import (
	"fmt"
	"strings"
)

// ConflictError says that two policies cannot share a request path.
type ConflictError struct {
	Earlier, Later string
	Why            string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s and %s cannot both handle one request: %s", e.Earlier, e.Later, e.Why)
}

// composed is a cached verdict of Compose.
type composed struct{ err error }

// Compose says whether a request may pass through p after earlier (the relation is
// symmetric). At every name both claim — a managed name, a cookie rule's name, the prefixed
// or chunk names a rule makes — both must manage it the same way, with the same rules for
// what reaches the upstream and what the client holds; a policy that only edits the
// attributes of a name it does not manage composes with anything. At most one visitor
// cookie, or identical ones. Different names that read as one another's for the upstream
// (case, %-escapes, PHP's mangling) conflict: each policy would drop the other's as a
// look-alike of its own. A non-nil error says what
// conflicts; the verdict is kept per pair.
func Compose(earlier, p *Policy) error {
	if c, ok := p.relations.Load(earlier); ok {
		return c.(composed).err
	}
	var err error
	if why := conflict(earlier, p); why != "" {
		err = &ConflictError{Earlier: earlier.name, Later: p.name, Why: why}
	}
	p.relations.Store(earlier, composed{err})
	return err
}

func conflict(a, b *Policy) string {
	if a.visitor != nil && b.visitor != nil && a.jar.rules[a.visitorRule].identity != b.jar.rules[b.visitorRule].identity {
		return fmt.Sprintf("both issue visitor IDs (%q and %q) differently; one request path can carry one visitor cookie", a.visitor.name, b.visitor.name)
	}
	if a.flask != nil && b.flask != nil && a.flask.headerNorm != "" && b.flask.headerNorm != "" &&
		(strings.HasPrefix(a.flask.headerNorm, b.flask.headerNorm) || strings.HasPrefix(b.flask.headerNorm, a.flask.headerNorm)) &&
		a.jar.rules[a.flaskRule()].identity != b.jar.rules[b.flaskRule()].identity {
		return fmt.Sprintf("both send Flask session fields in headers starting %q and %q, from differently configured flask_session blocks: configure them alike, or use one flask_session for the path", a.flask.HeaderPrefix, b.flask.HeaderPrefix)
	}
	for _, x := range a.claims() {
		for _, y := range b.claims() {
			w, ok := witness(x.pattern, y.pattern)
			if !ok {
				continue
			}
			if ta, tb := a.treatment(w), b.treatment(w); !ta.composesWith(tb) {
				return fmt.Sprintf("both manage cookies named %s, differently (%s; %s: %s): give the name the same rules in both handlers, or handle it in one of them only",
					overlapName(x.pattern, y.pattern), x.field, y.field, ta.diff(tb))
			}
		}
	}
	for i := range a.jar.rules {
		for j := range b.jar.rules {
			x, y := &a.jar.rules[i], &b.jar.rules[j]
			// each would drop the other's name as a look-alike of its own
			if !PatternsOverlap(x.pattern, y.pattern) && PatternsOverlap(canonicalPattern(x), canonicalPattern(y)) {
				return fmt.Sprintf("%q and %q can name one cookie for the upstream (case, %%-escapes or PHP's name mangling)", x.pattern, y.pattern)
			}
		}
	}
	return ""
}

// claim is a name pattern a policy has a rule for, and the rule's place in the configuration.
type claim struct{ pattern, field string }

func (p *Policy) claims() []claim {
	var cs []claim
	for i := range p.jar.rules {
		cs = append(cs, claim{p.jar.rules[i].pattern, p.jar.rules[i].field})
	}
	for _, b := range p.blocks.list() {
		for _, n := range b.Names {
			field := "cookie " + n
			cs = append(cs, claim{n, field})
			if b.Prefix != "" {
				cs = append(cs, claim{b.Prefix + n, field + " { prefix " + b.Prefix + " }"})
			}
			if b.Split {
				cs = append(cs, claim{n + "__[1-7]", field + " { split }"})
			}
		}
	}
	return cs
}

// treatment is how a policy reads and writes the cookie the client holds under one name.
type treatment struct {
	rule  string // the managed rule's identity; "" for none
	block *block
	how   string // how the name is read: "", "prefixed" (the rule's name behind a prefix), "refused"
}

func (p *Policy) treatment(name string) treatment {
	app, b, refused := p.blocks.incoming(name)
	t := treatment{block: b}
	switch {
	case refused:
		t.how = "refused"
	case app != name:
		t.how = "prefixed"
	}
	if base, _, ok := p.blocks.chunkOf(name); ok {
		app, t.how = base, "chunk"
	}
	if i := p.jar.match(app); i >= 0 && p.jar.rules[i].kind != kindPlain {
		t.rule = p.jar.rules[i].identity
	}
	return t
}

// composesWith reports whether two policies treating one name so can share a request path.
func (t treatment) composesWith(u treatment) bool {
	if t.neutral() || u.neutral() {
		return true
	}
	return t.rule == u.rule && t.how == u.how && t.block.identity() == u.block.identity()
}

// diff says how two treatments differ.
func (t treatment) diff(u treatment) string {
	switch {
	case t.rule == "" || u.rule == "":
		return "one manages it and the other does not"
	case t.rule != u.rule:
		return "they differ in " + identityDiff(t.rule, u.rule)
	case t.how != u.how:
		return "one reads it behind a prefix or in pieces"
	}
	return "their cookie rules differ"
}

// neutral: the policy does not manage the name and at most edits its attributes, which it can
// do to whatever the other writes.
func (t treatment) neutral() bool {
	return t.rule == "" && t.how == "" && (t.block == nil || t.block.attributesOnly())
}

func (p *Policy) flaskRule() int {
	for i := range p.jar.rules {
		if p.jar.rules[i].kind == kindFlask {
			return i
		}
	}
	return -1
}

// canonicalPattern is a rule's canonical form as a pattern: a literal name's form with its
// metacharacters escaped.
func canonicalPattern(r *rule) string {
	if r.glob {
		return r.canonical
	}
	var b strings.Builder
	for _, c := range r.canonical {
		if strings.ContainsRune(`*?[\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func overlapName(x, y string) string {
	if x == y {
		return fmt.Sprintf("%q", x)
	}
	return fmt.Sprintf("%q and %q", x, y)
}
