package pkt

import "testing"

func TestRoomCoversWorstCase(t *testing.T) {
	// Keep in step with the table in buf.go.
	head := VirtioNetHdrLen + 20 + 8 + 40 + 24 + 8 + 16
	if head > Headroom {
		t.Fatalf("worst-case headroom %d > Headroom %d", head, Headroom)
	}
	tail := 15 + 2 + 16
	if tail > Tailroom {
		t.Fatalf("worst-case tailroom %d > Tailroom %d", tail, Tailroom)
	}
}

func TestPrependAppendTrim(t *testing.T) {
	b := Get()
	defer Put(b)
	b.Set([]byte{1, 2, 3, 4})
	h := b.Prepend(2)
	if len(h) != 2 || cap(h) != 2 {
		t.Fatalf("Prepend: len %d cap %d, want 2 2", len(h), cap(h))
	}
	h[0], h[1] = 9, 8
	copy(b.Append(1), []byte{7})
	if got, want := string(b.Bytes()), string([]byte{9, 8, 1, 2, 3, 4, 7}); got != want {
		t.Fatalf("Bytes = %v, want %v", []byte(got), []byte(want))
	}
	b.TrimFront(2)
	b.TrimBack(1)
	if got := b.Bytes(); len(got) != 4 || got[0] != 1 || got[3] != 4 {
		t.Fatalf("after trims: %v", got)
	}
	if b.HeadroomLen() != Headroom || b.TailroomLen() != Size-Headroom-4 {
		t.Fatalf("room: head %d tail %d", b.HeadroomLen(), b.TailroomLen())
	}
}

func TestOverflowPanics(t *testing.T) {
	for name, f := range map[string]func(b *Buf){
		"prepend":   func(b *Buf) { b.Prepend(Headroom + 1) },
		"append":    func(b *Buf) { b.Append(Size) },
		"trimfront": func(b *Buf) { b.TrimFront(1) },
		"trimback":  func(b *Buf) { b.TrimBack(1) },
		"setbytes":  func(b *Buf) { b.SetBytes(Size, 1) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			b := Get()
			defer Put(b)
			f(b)
		})
	}
}

func TestGetPutAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops Puts under -race")
	}
	Put(Get())
	if n := testing.AllocsPerRun(1000, func() {
		b := Get()
		b.Prepend(40)
		b.Append(16)
		Put(b)
	}); n != 0 {
		t.Fatalf("allocs per Get/Put = %v, want 0", n)
	}
}
