package intreport

import "testing"

func benchmarkAppend(b *testing.B, f Format, kind Kind) {
	r := fullReport(kind)
	r.Inner = make([]byte, MaxInner)
	buf := make([]byte, 0, MaxPayloadLen)
	b.ReportAllocs()
	b.SetBytes(int64(len(Append(nil, f, &r))))
	for b.Loop() {
		buf = Append(buf[:0], f, &r)
	}
}

func benchmarkDecode(b *testing.B, f Format, kind Kind) {
	r := fullReport(kind)
	r.Inner = make([]byte, MaxInner)
	payload := Append(nil, f, &r)
	var d Decoded
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if err := Decode(payload, &d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendV05Flow(b *testing.B) { benchmarkAppend(b, V05, Flow) }
func BenchmarkAppendV05Drop(b *testing.B) { benchmarkAppend(b, V05, Drop) }
func BenchmarkAppendV20Flow(b *testing.B) { benchmarkAppend(b, V20, Flow) }
func BenchmarkAppendV20Drop(b *testing.B) { benchmarkAppend(b, V20, Drop) }
func BenchmarkDecodeV05Flow(b *testing.B) { benchmarkDecode(b, V05, Flow) }
func BenchmarkDecodeV05Drop(b *testing.B) { benchmarkDecode(b, V05, Drop) }
func BenchmarkDecodeV20Flow(b *testing.B) { benchmarkDecode(b, V20, Flow) }
func BenchmarkDecodeV20Drop(b *testing.B) { benchmarkDecode(b, V20, Drop) }
