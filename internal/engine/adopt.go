// Rolling the module out in front of a live app, and back: plain values of managed cookies
// accepted until a deadline (what the app saw before the module), nginx userid's IDs kept,
// and the way back (unwrap), where encoded values still verify but nothing new is signed.

package engine

import (
	"fmt"
	"path"
	"strings"
)

// adoption is one name or glob accepted in plain form until a deadline.
type adoption struct {
	pattern string
	glob    bool
	until   int64 // Unix seconds
	attrs   string
	// maxAge is the lifetime the attributes give (seconds), when hasMaxAge.
	maxAge    int64
	hasMaxAge bool
}

func newAdoption(pattern string, a Adoption) adoption {
	ad := adoption{pattern: pattern, glob: strings.ContainsAny(pattern, `*?[\`), until: a.Until.Unix(), attrs: a.Attributes}
	if a.Attributes != "" {
		if sc, ok := parseSetCookie("x=v; " + a.Attributes); ok {
			_, expiry, expires := sc.lifetime(0)
			ad.maxAge, ad.hasMaxAge = expiry, expires
		}
	}
	return ad
}

// unwrapped is what every plain value of a managed cookie is adopted as on the way back.
var unwrapped = adoption{until: 1<<62 - 1}

// adoption returns how a plain value of the managed cookie name is accepted now, if it is.
func (p *Policy) adoption(name string, now int64) *adoption {
	if p.unwrap {
		return &unwrapped
	}
	for i := range p.adopt {
		a := &p.adopt[i]
		if now >= a.until {
			continue
		}
		if a.glob {
			if ok, _ := path.Match(a.pattern, name); !ok {
				continue
			}
		} else if a.pattern != name {
			continue
		}
		return a
	}
	return nil
}

// adoptionIdentity lists the adoption windows that can apply to a name of pattern.
func (p *Policy) adoptionIdentity(pattern string) string {
	var b strings.Builder
	for _, a := range p.adopt {
		if PatternsOverlap(a.pattern, pattern) {
			fmt.Fprintf(&b, "{%s %d %q}", a.pattern, a.until, a.attrs)
		}
	}
	return b.String()
}

// adopted is a plain value of a managed cookie forwarded as received.
type adopted struct {
	name, value string
	label       string    // the adoption's pattern: the metric label (never an attacker's name)
	entry       *adoption // nil on the way back
	pair        int       // its pair in result.all
}

// adoptPair forwards a plain value of a managed cookie as it was received, through the same
// gate as an unmanaged pair; a later encoded copy that verifies takes its place.
func (p *Policy) adoptPair(res *result, pr pair, a *adoption) {
	name := pr.name(res)
	if res.hasAdopted(name) {
		res.drop(pr.browser(res), int(pr.rule), Duplicate)
		return
	}
	if len(res.adopted) >= maxKept {
		res.drop(pr.browser(res), int(pr.rule), OverBudget)
		return
	}
	label := a.pattern
	if a == &unwrapped {
		a, label = nil, p.jar.rules[pr.rule].pattern
	}
	pr.fate = fateAdopted
	res.adopted = append(res.adopted, adopted{name: name, value: pr.value(res), label: label, entry: a, pair: len(res.all)})
	res.all = append(res.all, pr)
}

// unreadCopy reports whether a copy of the cookie the browser holds as browser went
// unverified for the budget (dropped copies are listed under that name: a transparent
// prefix makes it another than the upstream reads).
func (res *result) unreadCopy(browser string) bool {
	for _, d := range res.dropped {
		if d.reason == OverBudget && d.rule >= 0 && d.name == browser {
			return true
		}
	}
	return false
}

func (res *result) hasAdopted(name string) bool {
	for i := range res.adopted {
		if res.adopted[i].name == name {
			return true
		}
	}
	return false
}

// settleAdopted drops the plain copies of cookies that also came encoded and verified: the
// encoded copy wins, whatever the order. So it does when an encoded copy went unverified
// for the budget: it may be the valid one.
func (res *result) settleAdopted() {
	kept := res.adopted[:0]
	for _, a := range res.adopted {
		if res.hasFound(a.name) || res.unreadCopy(res.all[a.pair].browser(res)) {
			res.dropPair(&res.all[a.pair], Duplicate)
			continue
		}
		kept = append(kept, a)
	}
	clear(res.adopted[len(kept):])
	res.adopted = kept
}

// noteAdopted counts and lists the adopted cookies, and queues the upgrade of those whose
// attributes are known.
func (ps *Pass) noteAdopted() {
	for _, a := range ps.res.adopted {
		if ps.res.all[a.pair].fate == fateDrop {
			continue // held back (no consent) or refused by the gate
		}
		ps.Report.countAdopted(a.label)
		ps.event(a.name, Adopted, false, true)
		// a value the way back would refuse (it reads as several pairs) is not upgraded
		if a.entry != nil && a.entry.attrs != "" && len(ps.upgrade) < maxClears && spliceSafe(a.value) {
			ps.upgrade = append(ps.upgrade, a)
		}
	}
}

// AdoptionCount is how many cookies were adopted under one name or glob (its metric label).
type AdoptionCount struct {
	Cookie string
	Count  int
}

func (rp *Report) countAdopted(label string) {
	for i := range rp.Adopted {
		if rp.Adopted[i].Cookie == label {
			rp.Adopted[i].Count++
			return
		}
	}
	rp.Adopted = append(rp.Adopted, AdoptionCount{Cookie: label, Count: 1})
}

// upgradeLine is the Set-Cookie line that replaces an adopted cookie with its encoded form.
func (ps *Pass) upgradeLine(a adopted) (string, bool) {
	r := &ps.p.jar.rules[ps.p.jar.match(a.name)]
	// The signature expires with the cookie, and with the window: a value the client chose
	// while plain values passed is not accepted after them.
	now := ps.signTime()
	expiry := a.entry.until
	if a.entry.hasMaxAge && now+a.entry.maxAge < expiry {
		expiry = now + a.entry.maxAge
	}
	ts := min(now, expiry-r.maxAge)
	b := append(ps.buf[:0], a.name...)
	b = append(b, '=')
	b, err := r.signer.AppendEncodeAt(b, a.name, []byte(a.value), ts)
	if err != nil || len(a.name)+1+r.signer.EncodedLen(len(a.value)) > browserCookieLimit {
		ps.buf = b[:0]
		return "", false
	}
	if blk := ps.p.blocks.find(a.name); blk != nil {
		b = blk.editAttributes(b, "; "+a.entry.attrs) // the cookie's rule applies here too
	} else {
		b = append(b, "; "...)
		b = append(b, a.entry.attrs...)
	}
	ps.buf = b[:0]
	return string(b), true
}
