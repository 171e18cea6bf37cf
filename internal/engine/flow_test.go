package engine

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// seal keeps a short list, then a set: every sealed line is found, no other, before and
// after the switch.
func TestFlowSeal(t *testing.T) {
	var f Flow
	if f.isSealed("a=1") {
		t.Fatal("an empty flow has sealed lines")
	}
	const n = 40
	for i := 0; i < n; i++ {
		line := "c" + strconv.Itoa(i) + "=v; Path=/"
		f.seal(line)
		for k := 0; k <= i; k++ {
			if !f.isSealed("c" + strconv.Itoa(k) + "=v; Path=/") {
				t.Fatalf("after %d seals, line %d is not sealed", i+1, k)
			}
		}
		for _, other := range []string{"c" + strconv.Itoa(i+1) + "=v; Path=/", "c" + strconv.Itoa(i) + "=v", ""} {
			if f.isSealed(other) {
				t.Fatalf("after %d seals, %q is sealed", i+1, other)
			}
		}
		if i+1 > 16 && f.sealedSet == nil {
			t.Fatalf("%d sealed lines kept in a list", i+1)
		}
	}
	f.seal("c0=v; Path=/") // again: no harm
	if !f.isSealed("c0=v; Path=/") {
		t.Error("resealing lost the line")
	}
}

// The invalid-names list stays within maxInvalidNames bytes, whatever the names.
func TestFlowNoteInvalid(t *testing.T) {
	var f Flow
	f.noteInvalid("a")
	f.noteInvalid("b")
	if f.Invalid() != "a,b" {
		t.Errorf("Invalid() = %q", f.Invalid())
	}

	f = Flow{}
	for i := 0; i < 1000; i++ {
		f.noteInvalid("name" + strconv.Itoa(i))
		if len(f.Invalid()) > maxInvalidNames {
			t.Fatalf("%d bytes after %d names", len(f.Invalid()), i+1)
		}
	}
	if !strings.HasPrefix(f.Invalid(), "name0,name1,") || strings.HasSuffix(f.Invalid(), ",") {
		t.Errorf("Invalid() = %q…", f.Invalid()[:20])
	}

	// A name that does not fit whole is left out, never cut; a shorter one may still fit.
	f = Flow{}
	f.noteInvalid(strings.Repeat("x", maxInvalidNames+1))
	if f.Invalid() != "" {
		t.Errorf("an oversize name was kept: %d bytes", len(f.Invalid()))
	}
	f.noteInvalid(strings.Repeat("x", maxInvalidNames-2))
	f.noteInvalid("yz")
	f.noteInvalid("y")
	if got := f.Invalid(); len(got) != maxInvalidNames || !strings.HasSuffix(got, "x,y") {
		t.Errorf("%d bytes, ending %q", len(got), got[len(got)-4:])
	}
}

// A released pass is a fresh one but for its buffers' capacity: nothing of a request leaks
// into the next.
func TestPassRelease(t *testing.T) {
	tp := newTestPolicy(t, nil)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", "session="+tp.signed(t, "session", "alice")+"; SESSION=x; vid=forged")
	var f Flow
	ps, err := tp.Request(&f, r, t0, func() int64 { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	ps.Finalize(http.Header{"Set-Cookie": {"session=bob"}})
	ps.Release()
	empty := func(v reflect.Value) bool {
		if v.Kind() == reflect.Slice {
			return v.Len() == 0
		}
		return v.IsZero()
	}
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		if v.Kind() == reflect.Struct {
			for i := 0; i < v.NumField(); i++ {
				walk(path+"."+v.Type().Field(i).Name, v.Field(i))
			}
			return
		}
		if !empty(v) {
			t.Errorf("%s is not reset", path)
		}
	}
	walk("Pass", reflect.ValueOf(ps).Elem())
}
