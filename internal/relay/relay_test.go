package relay

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestCopyMovesEveryByteAndCounts(t *testing.T) {
	src := bytes.Repeat([]byte("0123456789abcdef"), 100_000) // 1.6 MB: crosses to the large buffer
	var dst bytes.Buffer
	var counted int
	n, err := Copy(&dst, bytes.NewReader(src), func(w int) error { counted += w; return nil })
	if err != nil || n != int64(len(src)) || counted != len(src) || !bytes.Equal(dst.Bytes(), src) {
		t.Fatalf("Copy = %d, %v; counted %d; equal %v", n, err, counted, bytes.Equal(dst.Bytes(), src))
	}
}

func TestCopyStopsOnErrors(t *testing.T) {
	boom := errors.New("boom")
	if _, err := Copy(io.Discard, iotest.ErrReader(boom), nil); !errors.Is(err, boom) {
		t.Errorf("read error: got %v", err)
	}
	stop := errors.New("stop")
	n, err := Copy(io.Discard, bytes.NewReader(make([]byte, 100)), func(int) error { return stop })
	if !errors.Is(err, stop) || n != 100 {
		t.Errorf("afterWrite error: got %d, %v", n, err)
	}
}
