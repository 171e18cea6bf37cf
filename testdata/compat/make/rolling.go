// The rolling-upgrade check: the old release and the new build on one storage.

package main

import (
	"fmt"
	"log"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// rollingUpgrade runs the old and the new release on one storage, as a cluster upgraded one
// instance at a time, and writes what it found to <out>/rolling-upgrade.txt: whether each
// reads the ring the other wrote, whether each accepts the other's cookies through
// rotations, with equal and with unequal check intervals, what the ring file holds, and
// whether the old release reads the cookies and the ring the new one left (the way back).
func rollingUpgrade(oldBin, newBin, out string) {
	up := startUpstream()
	var rep strings.Builder
	say := func(format string, args ...any) {
		fmt.Fprintf(&rep, format+"\n", args...)
		log.Printf(format, args...)
	}
	start := func(bin, check, rotate, storage string) *instance {
		p := plan{name: "rolling", adapter: "caddyfile", text: site(`	signed_cookies {
		rotate ` + rotate + `
		check_interval ` + check + `
		track
		sign session
	}
`)}
		return runOn(bin, p.text, p, up, nil, storage)
	}
	newStorage := func() string {
		dir, err := os.MkdirTemp(scratch, "rolling-")
		must(err)
		return dir
	}

	say("Rolling upgrade: the old release (%s) and the new build (%s) on one file_system storage,", filepath.Base(oldBin), filepath.Base(newBin))
	say("each with signed_cookies { rotate R; check_interval C; track; sign session }. Made %s.", time.Now().UTC().Format(time.RFC3339))
	say("A cookie 'refused' is one the other instance did not accept: a new visitor ID, or no session.")

	storage := newStorage()
	newInst := start(newBin, "1s", "6s", storage)
	say("\n1. The new build alone creates the ring: %s.", describeRing(storage))
	oldInst := start(oldBin, "1s", "6s", storage)
	say("   The old release starts on that ring: it loads.")
	cross(say, "   R 6s, C 1s on both, 20s (rotations by either)", newInst, oldInst, 20*time.Second)
	say("   Ring now: %s.", describeRing(storage))

	newInst.stop()
	time.Sleep(8 * time.Second)
	say("\n2. The old release alone for 8s rotates and rewrites the ring: %s.", describeRing(storage))
	newInst = start(newBin, "1s", "6s", storage)
	say("   The new build starts on the ring the old one rewrote: it loads.")
	cross(say, "   10s more", newInst, oldInst, 10*time.Second)
	say("   Ring now: %s.", describeRing(storage))
	newInst.stop()
	oldInst.stop()

	for i, newCheck := range []string{"1s", "15s"} {
		storage = newStorage()
		newInst = start(newBin, newCheck, "32s", storage)
		oldInst = start(oldBin, "15s", "32s", storage)
		say("\n%d. The new build with C %s, the old release with C 15s, R 32s on both.", 3+i, newCheck)
		if newCheck == "1s" {
			say("   The old release does not record its interval in the ring: the new build waits for its own only.")
		} else {
			say("   Equal intervals: the new build waits two of them, as long as the old release takes to re-read.")
		}
		cross(say, "   50s (a rotation or more)", newInst, oldInst, 50*time.Second)
		say("   Ring now: %s.", describeRing(storage))
		newInst.stop()
		oldInst.stop()
	}

	storage = newStorage()
	newInst = start(newBin, "1s", "6s", storage)
	time.Sleep(9 * time.Second)
	resp := newInst.get("/set", url.Values{"c": {"session=alice; Path=/"}}.Encode(), "")
	id := upstreamSaw(resp).Header.Get("X-Visitor-Id")
	cookie := pair(setCookieLine(resp, "vid")) + "; " + pair(setCookieLine(resp, "session"))
	newInst.stop()
	say("\n5. The way back: the new build alone for 9s rotates (%s), issues a cookie and stops.", describeRing(storage))
	oldInst = start(oldBin, "1s", "6s", storage)
	back := upstreamSaw(oldInst.get("/", "", cookie))
	say("   The old release starts alone on that ring: it loads; the new build's visitor ID kept: %v; session read: %v.",
		back.Header.Get("X-Visitor-Id") == id, cookiePairs(back.Cookie)["session"] == "alice")
	oldInst.stop()
	must(os.WriteFile(filepath.Join(out, "rolling-upgrade.txt"), []byte(rep.String()), 0o644))
}

// describeRing says what the ring in storage holds, once there is one: the new build stores
// the ring it made when its config starts, which may be just after its site listens.
func describeRing(storage string) string {
	file := filepath.Join(storage, "signed_cookies", "keyring.json")
	raw, err := os.ReadFile(file)
	for deadline := time.Now().Add(10 * time.Second); err != nil && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		raw, err = os.ReadFile(file)
	}
	must(err)
	f := readRing(file)
	return fmt.Sprintf("%d secrets, keep %s, check_interval field: %v", len(f.Secrets), time.Duration(f.Keep),
		strings.Contains(string(raw), `"check_interval"`))
}

func pair(setCookie string) string {
	p, _, _ := strings.Cut(setCookie, ";")
	return p
}

// cross issues a visitor cookie and a signed session on each instance in turn and sends them
// to the other for d, counting those the other did not accept (a new visitor ID, or a session
// not forwarded).
func cross(say func(string, ...any), what string, newer, older *instance, d time.Duration) {
	var tries, lostID, lostSession [2]int
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i, pr := range [][2]*instance{{newer, older}, {older, newer}} {
			from, to := pr[0], pr[1]
			resp := from.get("/set", url.Values{"c": {"session=alice; Path=/"}}.Encode(), "")
			vid, session := setCookieLine(resp, "vid"), setCookieLine(resp, "session")
			id := upstreamSaw(resp).Header.Get("X-Visitor-Id")
			if vid == "" || session == "" || id == "" {
				fatalf("no cookies issued: %q", resp.Header.Values("Set-Cookie"))
			}
			back := upstreamSaw(to.get("/", "", pair(vid)+"; "+pair(session)))
			tries[i]++
			if back.Header.Get("X-Visitor-Id") != id {
				lostID[i]++
			}
			if cookiePairs(back.Cookie)["session"] != "alice" {
				lostSession[i]++
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	say("%s: new→old %d cookies, %d visitor IDs and %d sessions refused; old→new %d cookies, %d and %d refused.",
		what, tries[0], lostID[0], lostSession[0], tries[1], lostID[1], lostSession[1])
}
