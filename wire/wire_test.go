package wire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestHelloRoundTrip(t *testing.T) {
	for _, token := range []string{"t", "an-api-key", strings.Repeat("x", MaxTokenLen), "bin\x00\xff"} {
		var buf bytes.Buffer
		if err := WriteHello(&buf, Hello{Version: Version, Token: token}); err != nil {
			t.Fatal(err)
		}
		if got := buf.Bytes()[:4]; string(got) != "TPXY" {
			t.Fatalf("magic %q", got)
		}
		h, err := ReadHello(&buf)
		if err != nil || h.Version != Version || h.Token != token {
			t.Fatalf("round trip of %d-byte token: %+v, %v", len(token), h.Version, err)
		}
		if buf.Len() != 0 {
			t.Fatalf("ReadHello left %d bytes", buf.Len())
		}
	}
}

func TestHelloLimits(t *testing.T) {
	if err := WriteHello(io.Discard, Hello{Version: Version}); !errors.Is(err, ErrProtocol) {
		t.Errorf("empty token: %v", err)
	}
	if err := WriteHello(io.Discard, Hello{Version: Version, Token: strings.Repeat("x", MaxTokenLen+1)}); !errors.Is(err, ErrProtocol) {
		t.Errorf("token over the limit: %v", err)
	}
	tests := map[string][]byte{
		"bad magic":      []byte("GET / HTTP/1.1\r\n"),
		"zero length":    {'T', 'P', 'X', 'Y', 1, 0, 0},
		"over the limit": {'T', 'P', 'X', 'Y', 1, 0x20, 0x01},
	}
	for name, in := range tests {
		if _, err := ReadHello(bytes.NewReader(in)); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want ErrProtocol", name, err)
		}
	}
	// Another version is returned for the caller to answer StatusBadVersion.
	h, err := ReadHello(bytes.NewReader([]byte{'T', 'P', 'X', 'Y', 2, 0, 1, 'k'}))
	if err != nil || h.Version != 2 {
		t.Errorf("version 2: %+v, %v", h, err)
	}
	if _, err := ReadHello(bytes.NewReader([]byte{'T', 'P', 'X', 'Y', 1, 0, 5, 'k'})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated token: %v", err)
	}
}

func TestStreamRequestRoundTripLeavesPayload(t *testing.T) {
	reqs := []StreamRequest{
		{Version: Version, Kind: KindNet, Host: "example.com", Port: 443},
		{Version: Version, Kind: KindTLS, Host: "2001:db8::1", Port: 1},
		{Version: Version, Kind: KindNet, Host: strings.Repeat("a", MaxHostLen), Port: 65535},
	}
	for _, req := range reqs {
		buf, err := AppendStreamRequest(nil, req)
		if err != nil {
			t.Fatal(err)
		}
		r := bytes.NewReader(append(buf, "GET / HTTP/1.1\r\n"...))
		got, err := ReadStreamRequest(r)
		if err != nil || got != req {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, req)
		}
		rest, _ := io.ReadAll(r)
		if string(rest) != "GET / HTTP/1.1\r\n" {
			t.Fatalf("payload after the request: %q", rest)
		}
	}
}

func TestStreamRequestLimits(t *testing.T) {
	for name, req := range map[string]StreamRequest{
		"empty host": {Version: Version, Kind: KindNet, Port: 1},
		"long host":  {Version: Version, Kind: KindNet, Host: strings.Repeat("a", MaxHostLen+1), Port: 1},
		"port 0":     {Version: Version, Kind: KindNet, Host: "a"},
	} {
		if _, err := AppendStreamRequest(nil, req); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, in := range map[string][]byte{
		"empty host":   {1, 1, 0},
		"unknown kind": {1, 9, 1, 'a', 0, 80},
		"port 0":       {1, 1, 1, 'a', 0, 0},
	} {
		if _, err := ReadStreamRequest(bytes.NewReader(in)); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want ErrProtocol", name, err)
		}
	}
}

func TestReplyRoundTripAndErrors(t *testing.T) {
	for s := StatusOK; s <= StatusInternal; s++ {
		var buf bytes.Buffer
		if err := WriteReply(&buf, Reply{Status: s, Message: "why"}); err != nil {
			t.Fatal(err)
		}
		r, err := ReadReply(&buf)
		if err != nil || r.Status != s || r.Message != "why" {
			t.Fatalf("round trip of %v: %+v, %v", s, r, err)
		}
		if s == StatusOK {
			if r.Err() != nil {
				t.Errorf("ok reply has error %v", r.Err())
			}
			continue
		}
		if !errors.Is(r.Err(), s.Err()) || !strings.Contains(r.Err().Error(), "why") {
			t.Errorf("%v: Err() = %v", s, r.Err())
		}
	}
	if !errors.Is(Status(200).Err(), ErrProtocol) {
		t.Error("unknown status is not a protocol error")
	}
	var buf bytes.Buffer
	WriteReply(&buf, Reply{Status: StatusDenied, Message: strings.Repeat("m", 300)})
	if r, err := ReadReply(&buf); err != nil || len(r.Message) != MaxMessageLen {
		t.Errorf("long message: %d bytes, %v", len(r.Message), err)
	}
}

func TestReplyMessageCutOnCharacterBoundary(t *testing.T) {
	msg := strings.Repeat("a", MaxMessageLen-1) + "é and more" // é straddles the limit
	var buf bytes.Buffer
	if err := WriteReply(&buf, Reply{Status: StatusDenied, Message: msg}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadReply(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.ValidString(got.Message) || got.Message != strings.Repeat("a", MaxMessageLen-1) {
		t.Fatalf("message cut to %q (valid UTF-8: %v)", got.Message, utf8.ValidString(got.Message))
	}
}
