package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// The readers must never panic, never read past what they report, and whatever they accept
// must encode back to the bytes they consumed.

func FuzzReadHello(f *testing.F) {
	f.Add([]byte("TPXY\x01\x00\x05token"))
	f.Add([]byte("TPXY\x02\x00\x01k"))
	f.Add([]byte("TPXY\x01\x20\x00"))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		h, err := ReadHello(r)
		if err != nil {
			if len(in) >= 7 && !errors.Is(err, ErrProtocol) && !errors.Is(err, io.ErrUnexpectedEOF) && err != io.EOF {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		consumed := len(in) - r.Len()
		var out bytes.Buffer
		if err := WriteHello(&out, h); err != nil {
			t.Fatalf("accepted hello does not encode: %v", err)
		}
		if !bytes.Equal(out.Bytes(), in[:consumed]) {
			t.Fatalf("re-encoding differs: %q vs %q", out.Bytes(), in[:consumed])
		}
	})
}

func FuzzReadStreamRequest(f *testing.F) {
	f.Add([]byte("\x01\x01\x0bexample.com\x01\xbbGET /"))
	f.Add([]byte("\x01\x02\x01a\x00\x01"))
	f.Add([]byte("\x02\x01"))
	f.Add([]byte("\x01\x09\x01a\x00\x50"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		req, err := ReadStreamRequest(r)
		if err != nil {
			return
		}
		consumed := len(in) - r.Len()
		if req.Version != Version {
			if consumed != 3 {
				t.Fatalf("foreign version consumed %d bytes", consumed)
			}
			return
		}
		out, err := AppendStreamRequest(nil, req)
		if err != nil {
			t.Fatalf("accepted request does not encode: %v", err)
		}
		if !bytes.Equal(out, in[:consumed]) {
			t.Fatalf("re-encoding differs: %q vs %q", out, in[:consumed])
		}
	})
}

func FuzzReadReply(f *testing.F) {
	f.Add([]byte("\x00\x00"))
	f.Add([]byte("\x08\x06denied"))
	f.Add([]byte("\xff\x01x"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		rep, err := ReadReply(r)
		if err != nil {
			return
		}
		consumed := len(in) - r.Len()
		if out := AppendReply(nil, rep); !bytes.Equal(out, in[:consumed]) {
			t.Fatalf("re-encoding differs: %q vs %q", out, in[:consumed])
		}
		if rep.Status != StatusOK && rep.Err() == nil {
			t.Fatalf("status %d without error", rep.Status)
		}
	})
}
