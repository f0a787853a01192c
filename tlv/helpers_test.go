package tlv

import (
	"fmt"
	"reflect"
	"testing"
)

// Small assertion helpers (kept local so the package tests need no extra
// module in go.sum).

func mustNoErr(t testing.TB, err error, msg ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", fmt.Sprint(msg...), err)
	}
}

func mustEqual(t testing.TB, want, got any, msg ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("%s:\nwant %#v\ngot  %#v", fmt.Sprint(msg...), want, got)
	}
}
