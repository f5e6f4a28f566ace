package proxyclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tessel/tessel-proxy/internal/hostport"
	"github.com/tessel/tessel-proxy/internal/relay"
	"github.com/tessel/tessel-proxy/wire"
)

// hopByHop are the headers that belong to one connection and are not relayed (RFC 9110
// section 7.6.1), plus the proxy's own.
var hopByHop = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

func (f *Front) serveHTTP(c net.Conn, br *bufio.Reader, lim *headLimit) {
	bw := bufio.NewWriterSize(c, 16<<10)
	for {
		c.SetReadDeadline(time.Now().Add(handshakeIdle))
		lim.n = maxHeadBytes
		req, err := http.ReadRequest(br)
		if err != nil {
			if errors.Is(err, errHeadTooLarge) {
				httpError(bw, http.StatusRequestHeaderFieldsTooLarge, "request head over 1 MiB")
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) {
				httpError(bw, http.StatusBadRequest, "malformed request: "+err.Error())
			}
			return
		}
		lim.n = -1 // bodies may be any size
		// The head has arrived; a body or a response may take as long as it takes.
		c.SetReadDeadline(time.Time{})
		if !f.basicAuthOK(req.Header.Get("Proxy-Authorization")) {
			f.log.Debug("front: HTTP client gave wrong or no credentials")
			fmt.Fprintf(bw, "HTTP/1.1 407 Proxy Authentication Required\r\n"+
				"Proxy-Authenticate: Basic realm=\"tessel-proxy\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			bw.Flush()
			return
		}
		if req.Method == http.MethodConnect {
			f.httpConnect(c, br, bw, req)
			return
		}
		if !f.httpForward(c, br, bw, req) {
			return
		}
	}
}

func (f *Front) httpConnect(c net.Conn, br *bufio.Reader, bw *bufio.Writer, req *http.Request) {
	if host, port, err := net.SplitHostPort(req.Host); err != nil || host == "" || !validPort(port) {
		httpError(bw, http.StatusBadRequest, "CONNECT needs host:port with a port 1..65535, got "+strconv.Quote(req.Host))
		return
	}
	target, err := f.dial(req.Host, nil)
	if err != nil {
		f.log.Debug("front: CONNECT dial failed", "addr", req.Host, "err", err)
		httpError(bw, httpDialCode(err, f.dialStatus(err)), err.Error())
		return
	}
	bw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
	if err := bw.Flush(); err != nil {
		target.Close()
		return
	}
	f.relay(c, br, target)
}

// httpForward relays one absolute-URI request and its response, and reports whether the
// client connection can carry another request. The front answers the client itself and
// asks the target to close after each response: the client keeps its connection to the
// front, and no http.Transport sits in between.
func (f *Front) httpForward(c net.Conn, br *bufio.Reader, bw *bufio.Writer, req *http.Request) bool {
	u := req.URL
	if u.Scheme != "http" || u.Host == "" {
		httpError(bw, http.StatusBadRequest, "this is a proxy: send absolute http:// URLs, or CONNECT for anything else")
		return false
	}
	port := u.Port()
	if port == "" { // none, or an empty one (http://host:/), which RFC 3986 allows
		port = "80"
	}
	if u.Hostname() == "" || !validPort(port) {
		httpError(bw, http.StatusBadRequest, "bad host or port (1..65535) in "+strconv.Quote(u.Host))
		return false
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	upgrade := req.Header.Get("Upgrade")
	if !headerHasToken(req.Header, "Connection", "upgrade") {
		upgrade = ""
	}
	_, hadLength := req.Header["Content-Length"]
	h := req.Header.Clone()
	removeHopByHop(h)
	h.Del("Content-Length")
	// The front answers 100-continue itself once the target is reached: relaying the
	// target's would need the body read and the response read at the same time, and
	// without an answer curl stalls a second before sending a large body.
	expectContinue := strings.EqualFold(h.Get("Expect"), "100-continue") && req.ContentLength != 0
	if expectContinue {
		h.Del("Expect")
	}

	var head bytes.Buffer
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\n", req.Method, u.RequestURI(), req.Host)
	h.Write(&head)
	switch {
	case req.ContentLength > 0 || (req.ContentLength == 0 && hadLength):
		fmt.Fprintf(&head, "Content-Length: %d\r\n", req.ContentLength)
	case req.ContentLength < 0:
		head.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if upgrade != "" {
		fmt.Fprintf(&head, "Connection: Upgrade\r\nUpgrade: %s\r\n\r\n", upgrade)
	} else {
		head.WriteString("Connection: close\r\n\r\n")
	}
	// A small body the client already sent rides along with the head.
	if req.ContentLength > 0 && req.ContentLength <= int64(br.Buffered()) {
		io.CopyN(&head, req.Body, req.ContentLength)
	}

	target, err := f.dial(addr, head.Bytes())
	if err != nil {
		f.log.Debug("front: HTTP dial failed", "addr", addr, "err", err)
		httpError(bw, httpDialCode(err, f.dialStatus(err)), err.Error())
		return false
	}
	defer target.Close()
	if expectContinue {
		bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if bw.Flush() != nil {
			return false
		}
	}
	if req.ContentLength < 0 {
		cw := httputil.NewChunkedWriter(target)
		_, err = relay.Copy(cw, req.Body, nil)
		if err == nil {
			cw.Close()
			_, err = io.WriteString(target, "\r\n")
		}
	} else {
		_, err = relay.Copy(target, req.Body, nil)
	}
	if err != nil {
		httpError(bw, http.StatusBadGateway, "sending the request body: "+err.Error())
		return false
	}

	tr := bufio.NewReaderSize(target, 16<<10)
	resp, err := http.ReadResponse(tr, req)
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		writeResponseHead(bw, resp, resp.Header)
		if err = bw.Flush(); err != nil {
			return false
		}
		resp, err = http.ReadResponse(tr, req)
	}
	if err != nil {
		httpError(bw, http.StatusBadGateway, "reading the response from "+addr+": "+err.Error())
		return false
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		writeResponseHead(bw, resp, resp.Header)
		if bw.Flush() != nil {
			return false
		}
		if n := tr.Buffered(); n > 0 {
			b, _ := tr.Peek(n)
			if _, err := c.Write(b); err != nil {
				return false
			}
		}
		f.relay(c, br, target)
		return false
	}

	keep := !req.Close
	origLength := resp.Header.Get("Content-Length")
	rh := resp.Header.Clone()
	removeHopByHop(rh)
	rh.Del("Content-Length")
	noBody := req.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent ||
		resp.StatusCode == http.StatusNotModified
	chunked := false
	switch {
	case noBody:
		if origLength != "" {
			rh.Set("Content-Length", origLength)
		}
	case resp.ContentLength >= 0:
		rh.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	case req.ProtoAtLeast(1, 1):
		rh.Set("Transfer-Encoding", "chunked")
		chunked = true
	default:
		keep = false // an HTTP/1.0 client learns the end of the body from the close
	}
	switch {
	case !keep:
		rh.Set("Connection", "close")
	case !req.ProtoAtLeast(1, 1):
		// An HTTP/1.0 client asked for keep-alive; without the answer it would wait for
		// the close that marks the end of an HTTP/1.0 response.
		rh.Set("Connection", "keep-alive")
	}
	writeResponseHead(bw, resp, rh)
	if noBody {
		return bw.Flush() == nil && keep
	}
	var dst io.Writer = bw
	var cw io.WriteCloser
	if chunked {
		cw = httputil.NewChunkedWriter(bw)
		dst = cw
	}
	if err := copyFlushing(dst, bw, resp.Body); err != nil {
		// The status line is out; all that is left is to cut the client off so that it
		// cannot mistake a truncated body for a whole one (a body that ends with the
		// connection has no other end marker).
		f.log.Debug("front: response body from target failed", "addr", addr, "err", err)
		bw.Flush()
		relay.Reset(c)
		return false
	}
	if chunked {
		cw.Close()
		bw.WriteString("\r\n")
	}
	return bw.Flush() == nil && keep
}

// copyFlushing copies a response body and flushes after each read, so that a streaming
// response (server-sent events, a slow download) reaches the client as it arrives.
func copyFlushing(dst io.Writer, bw *bufio.Writer, src io.Reader) error {
	_, err := relay.Copy(dst, src, func(int) error { return bw.Flush() })
	return err
}

func writeResponseHead(bw *bufio.Writer, resp *http.Response, h http.Header) {
	fmt.Fprintf(bw, "HTTP/1.1 %s\r\n", resp.Status)
	h.Write(bw)
	bw.WriteString("\r\n")
}

// validPort reports whether s is a TCP port number, 1 to 65535.
func validPort(s string) bool {
	_, ok := hostport.ParsePort(s)
	return ok
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// httpDialCode is the HTTP status with which the front answers a dial that failed with
// err and status (see dialStatus).
func httpDialCode(err error, status wire.Status) int {
	switch {
	case errors.Is(err, errLoop): // a finer cause than StatusDenied
		return http.StatusLoopDetected
	case status == wire.StatusTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

func httpError(bw *bufio.Writer, code int, msg string) {
	body := "tessel-proxy: " + msg + "\n"
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
	bw.Flush()
}
