package tlv_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// Assertion helpers of the external tests (the module's tests use no
// assertion library).

func msg(m []any) string {
	if len(m) == 0 {
		return ""
	}
	if f, ok := m[0].(string); ok {
		return fmt.Sprintf(f, m[1:]...) + ": "
	}
	return fmt.Sprint(m...) + ": "
}

func noErr(t testing.TB, err error, m ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%sunexpected error: %v", msg(m), err)
	}
}

func eq(t testing.TB, want, got any, m ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Errorf("%s\nwant %#v\ngot  %#v", msg(m), want, got)
	}
}

func isErr(t testing.TB, err, target error, m ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%serror %v, want %v", msg(m), err, target)
	}
}

func truth(t testing.TB, ok bool, m ...any) {
	t.Helper()
	if !ok {
		t.Errorf("%snot true", msg(m))
	}
}

func has(t testing.TB, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%s\ndoes not contain %s", s, sub)
	}
}

func hasNot(t testing.TB, s, sub string) {
	t.Helper()
	if strings.Contains(s, sub) {
		t.Errorf("%s\ncontains %s", s, sub)
	}
}

func jsonEq(t testing.TB, want, got string) {
	t.Helper()
	var w, g any
	if json.Unmarshal([]byte(want), &w) != nil || json.Unmarshal([]byte(got), &g) != nil || !reflect.DeepEqual(w, g) {
		t.Errorf("JSON\nwant %s\ngot  %s", want, got)
	}
}
