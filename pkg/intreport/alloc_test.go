package intreport

import "testing"

func TestEncodeAndDecodeDoNotAllocate(t *testing.T) {
	buf := make([]byte, 0, MaxPayloadLen)
	var d Decoded
	for _, f := range []Format{V05, V20} {
		for _, kind := range []Kind{Flow, Drop} {
			r := fullReport(kind)
			r.Inner = make([]byte, 2*MaxInner+3)
			if n := testing.AllocsPerRun(100, func() { buf = Append(buf[:0], f, &r) }); n != 0 {
				t.Errorf("%v %v encode: %.1f allocations per report, want 0", f, kind, n)
			}
			payload := append([]byte(nil), buf...)
			if err := Decode(payload, &d); err != nil { // grows d.Reports once
				t.Fatal(err)
			}
			if n := testing.AllocsPerRun(100, func() { _ = Decode(payload, &d) }); n != 0 {
				t.Errorf("%v %v decode: %.1f allocations per payload, want 0", f, kind, n)
			}
		}
	}
}
