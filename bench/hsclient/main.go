// hsclient: a crypto/tls load client that forces FULL TLS 1.3 handshakes.
//
// It never resumes: ClientSessionCache is nil, so no PSK is ever offered and
// the server's NewSessionTicket messages (if any) are discarded. Every
// handshake is additionally checked with ConnectionState().DidResume.
//
// Modes:
//
//	handshake  connect, full handshake, close (close_notify), repeat
//	get        connect, full handshake, one "GET / HTTP/1.1" with
//	           "Connection: close", read the whole response, repeat
//	idle       open -n connections (handshake only), print a JSON line,
//	           hold them for -hold (or until SIGTERM/SIGINT), then exit
//	kaidle     as idle, but each connection first makes one keep-alive
//	           "GET -path HTTP/1.1" and reads the whole response (status 200
//	           checked): what an idle keep-alive connection costs between requests
//	slowloris  as idle, but each connection sends "GET -path HTTP/1.1" and
//	           its Host line right after the handshake, then one more header
//	           line ("X-a: b") every -trickle, never the blank line that ends
//	           the head; at the end a second JSON line says how many
//	           connections the server closed or answered while they were held
//
// Output: one JSON line on stdout (slowloris: two).
package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type result struct {
	Mode        string           `json:"mode"`
	Addr        string           `json:"addr"`
	Conns       int              `json:"conns"`
	DurationS   float64          `json:"duration_s"`
	OK          int64            `json:"ok"`
	Errors      int64            `json:"errors"`
	Resumed     int64            `json:"resumed"`
	NotTLS13    int64            `json:"not_tls13"`
	BadStatus   int64            `json:"bad_status,omitempty"`
	BodyBytes   int64            `json:"body_bytes,omitempty"`
	Rate        float64          `json:"rate"`
	Open        int              `json:"open,omitempty"`
	Ciphers     map[string]int64 `json:"ciphers,omitempty"` // negotiated TLS 1.3 suite -> handshakes
	ErrorSample []string         `json:"error_samples,omitempty"`
}

type errLog struct {
	mu      sync.Mutex
	samples map[string]int
}

func (e *errLog) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.samples == nil {
		e.samples = map[string]int{}
	}
	s := err.Error()
	if len(e.samples) < 8 || e.samples[s] > 0 {
		e.samples[s]++
	}
}

func (e *errLog) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for s, n := range e.samples {
		out = append(out, fmt.Sprintf("%dx %s", n, s))
	}
	return out
}

var (
	addr       = flag.String("addr", "127.0.0.1:8443", "server host:port")
	serverName = flag.String("sni", "localhost", "TLS ServerName (SNI)")
	mode       = flag.String("mode", "handshake", "handshake | get | idle | kaidle | slowloris")
	conns      = flag.Int("c", 16, "concurrent goroutines (handshake/get); concurrent dials while opening (idle/slowloris)")
	duration   = flag.Duration("d", 10*time.Second, "test duration (handshake/get)")
	n          = flag.Int("n", 2000, "idle/slowloris mode: number of connections to hold")
	hold       = flag.Duration("hold", 30*time.Second, "idle/slowloris mode: how long to hold the connections once all are open")
	trickle    = flag.Duration("trickle", 5*time.Second, "slowloris mode: interval between two header lines on a connection")
	path       = flag.String("path", "/", "get/slowloris mode: request path")
	hostHdr    = flag.String("host", "", "get/slowloris mode: Host header (default: -sni)")
	timeout    = flag.Duration("timeout", 10*time.Second, "per-connection I/O timeout")
	proxyHdr   = flag.String("proxy", "", "send a PROXY protocol header (v1 or v2) before the handshake")
	certFile   = flag.String("cert", "", "client certificate (PEM) for servers that ask for one")
	keyFile    = flag.String("key", "", "the client certificate's key (PEM)")
)

func tlsConfig() *tls.Config {
	var certs []tls.Certificate
	if *certFile != "" {
		pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "client certificate: %v\n", err)
			os.Exit(2)
		}
		certs = []tls.Certificate{pair}
	}
	return &tls.Config{
		Certificates:       certs,
		ServerName:         *serverName,
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS13,
		MaxVersion:         tls.VersionTLS13,
		CurvePreferences:   []tls.CurveID{tls.X25519},
		ClientSessionCache: nil, // never resume
		NextProtos:         nil, // plain HTTP/1.1, no ALPN
	}
}

func dialTLS(cfg *tls.Config) (*tls.Conn, error) {
	raw, err := net.DialTimeout("tcp", *addr, *timeout)
	if err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Now().Add(*timeout))
	if *proxyHdr != "" {
		if _, err := raw.Write(proxyHeader(raw)); err != nil {
			raw.Close()
			return nil, fmt.Errorf("proxy header: %w", err)
		}
	}
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		raw.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	return c, nil
}

// proxyHeader is a PROXY protocol header (HAProxy's spec) naming this connection's own ends, as a
// load balancer in front of the server would send it.
func proxyHeader(c net.Conn) []byte {
	src, dst := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
	if *proxyHdr == "v1" {
		return []byte(fmt.Sprintf("PROXY TCP4 %s %s %d %d\r\n", src.IP.To4(), dst.IP.To4(), src.Port, dst.Port))
	}
	h := []byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C}
	h = append(h, src.IP.To4()...)
	h = append(h, dst.IP.To4()...)
	return append(h, byte(src.Port>>8), byte(src.Port), byte(dst.Port>>8), byte(dst.Port))
}

func main() {
	flag.Parse()
	if *hostHdr == "" {
		*hostHdr = *serverName
	}
	switch *mode {
	case "handshake", "get":
		runLoad()
	case "idle", "kaidle", "slowloris":
		runIdle(*mode == "slowloris")
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", *mode)
		os.Exit(2)
	}
}

func runLoad() {
	cfg := tlsConfig()
	var ok, nerr, resumed, not13, badStatus, bodyBytes int64
	var elog errLog
	// negotiated suites, counted per TLS 1.3 suite ID (0x1301..0x1305) without a lock
	var suites [6]int64
	req := []byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: hsclient\r\nConnection: close\r\n\r\n", *path, *hostHdr))
	start := time.Now()
	deadline := start.Add(*duration)
	var wg sync.WaitGroup
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := bufio.NewReaderSize(nil, 16<<10)
			for time.Now().Before(deadline) {
				c, err := dialTLS(cfg)
				if err != nil {
					atomic.AddInt64(&nerr, 1)
					elog.add(err)
					time.Sleep(time.Millisecond) // avoid a hot error loop
					continue
				}
				st := c.ConnectionState()
				if st.DidResume {
					atomic.AddInt64(&resumed, 1)
				}
				if st.Version != tls.VersionTLS13 {
					atomic.AddInt64(&not13, 1)
				}
				if i := int(st.CipherSuite) - 0x1300; i > 0 && i < len(suites) {
					atomic.AddInt64(&suites[i], 1)
				}
				if *mode == "handshake" {
					c.Close() // sends close_notify
					atomic.AddInt64(&ok, 1)
					continue
				}
				err = func() error {
					defer c.Close()
					if _, err := c.Write(req); err != nil {
						return fmt.Errorf("write: %w", err)
					}
					br.Reset(c)
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						return fmt.Errorf("read response: %w", err)
					}
					nb, err := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err != nil {
						return fmt.Errorf("read body: %w", err)
					}
					atomic.AddInt64(&bodyBytes, nb)
					if resp.StatusCode != 200 {
						atomic.AddInt64(&badStatus, 1)
						return fmt.Errorf("status %d", resp.StatusCode)
					}
					return nil
				}()
				if err != nil {
					atomic.AddInt64(&nerr, 1)
					elog.add(err)
					continue
				}
				atomic.AddInt64(&ok, 1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	ciphers := map[string]int64{}
	for i, c := range suites {
		if c > 0 {
			ciphers[tls.CipherSuiteName(uint16(0x1300+i))] = c
		}
	}
	out := result{
		Mode: *mode, Addr: *addr, Conns: *conns, DurationS: el,
		OK: ok, Errors: nerr, Resumed: resumed, NotTLS13: not13,
		BadStatus: badStatus, BodyBytes: bodyBytes,
		Rate: float64(ok) / el, ErrorSample: elog.list(), Ciphers: ciphers,
	}
	emit(out)
}

// heldConn is one connection held open by idle or slowloris mode.
type heldConn struct {
	c    *tls.Conn
	gone int32 // 1 once the server has closed or answered it
}

// slowEnd is slowloris mode's second line, written when the hold ends.
type slowEnd struct {
	Mode        string   `json:"mode"`
	Phase       string   `json:"phase"`
	Open        int      `json:"open"`
	Closed      int64    `json:"closed"`   // closed or answered by the server while held
	Answered    int64    `json:"answered"` // of those, how many got bytes (e.g. a 408) first
	Held        int64    `json:"held"`     // open - closed: still waiting for their head's end
	Lines       int64    `json:"header_lines"`
	WriteErrors int64    `json:"write_errors"`
	HeldS       float64  `json:"held_s"`
	Responses   []string `json:"response_samples,omitempty"`
}

func runIdle(slow bool) {
	cfg := tlsConfig()
	var mu sync.Mutex
	var held []*heldConn
	var nerr, resumed, not13 int64
	var elog errLog
	// slowloris: the request line and Host go out right after the handshake, then one header
	// line per -trickle; the blank line that would end the head never does.
	head := []byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n", *path, *hostHdr))
	line := []byte("X-a: b\r\n")
	var closedByPeer, answered, lines, writeErrs int64
	var responses errLog // first bytes of what the server sent on a held connection
	stop := make(chan struct{})
	// Watch for the server closing (or answering) a held connection: idle timeouts, header
	// timeouts, limits. Read blocks until data, EOF or error.
	watch := func(h *heldConn) {
		var b [256]byte
		k, err := h.c.Read(b[:])
		if atomic.CompareAndSwapInt32(&h.gone, 0, 1) {
			atomic.AddInt64(&closedByPeer, 1)
			if k > 0 {
				atomic.AddInt64(&answered, 1)
				first := string(b[:k])
				if i := strings.IndexAny(first, "\r\n"); i >= 0 {
					first = first[:i]
				}
				responses.add(fmt.Errorf("%q", first))
			} else if slow && err != nil && err != io.EOF {
				responses.add(err)
			}
		}
	}
	trickleLines := func(h *heldConn) {
		t := time.NewTicker(*trickle)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if atomic.LoadInt32(&h.gone) != 0 {
				return
			}
			h.c.SetWriteDeadline(time.Now().Add(*timeout))
			if _, err := h.c.Write(line); err != nil {
				atomic.AddInt64(&writeErrs, 1)
				return
			}
			atomic.AddInt64(&lines, 1)
		}
	}
	start := time.Now()
	jobs := make(chan struct{}, *n)
	for i := 0; i < *n; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	var wg sync.WaitGroup
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				c, err := dialTLS(cfg)
				if err != nil {
					atomic.AddInt64(&nerr, 1)
					elog.add(err)
					continue
				}
				if *mode == "kaidle" {
					if err := oneKeepAliveGet(c); err != nil {
						c.Close()
						atomic.AddInt64(&nerr, 1)
						elog.add(fmt.Errorf("keep-alive GET: %w", err))
						continue
					}
				}
				if slow {
					if _, err := c.Write(head); err != nil {
						c.Close()
						atomic.AddInt64(&nerr, 1)
						elog.add(fmt.Errorf("request line: %w", err))
						continue
					}
				}
				c.SetDeadline(time.Time{})
				st := c.ConnectionState()
				if st.DidResume {
					atomic.AddInt64(&resumed, 1)
				}
				if st.Version != tls.VersionTLS13 {
					atomic.AddInt64(&not13, 1)
				}
				h := &heldConn{c: c}
				mu.Lock()
				held = append(held, h)
				mu.Unlock()
				go watch(h)
				if slow {
					go trickleLines(h)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	out := result{
		Mode: *mode, Addr: *addr, Conns: *conns, DurationS: el,
		OK: int64(len(held)), Errors: nerr, Resumed: resumed, NotTLS13: not13,
		Rate: float64(len(held)) / el, Open: len(held), ErrorSample: elog.list(),
	}
	emit(out) // "ready" line: all connections are open now
	ready := time.Now()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-time.After(*hold):
	case <-sig:
	}
	close(stop)
	closed := atomic.LoadInt64(&closedByPeer)
	fmt.Fprintf(os.Stderr, "hsclient %s: %d of %d connections were closed by the server while held\n",
		*mode, closed, len(held))
	if slow {
		b, _ := json.Marshal(slowEnd{
			Mode: *mode, Phase: "end", Open: len(held), Closed: closed, Answered: atomic.LoadInt64(&answered),
			Held: int64(len(held)) - closed, Lines: atomic.LoadInt64(&lines), WriteErrors: atomic.LoadInt64(&writeErrs),
			HeldS: time.Since(ready).Seconds(), Responses: responses.list(),
		})
		os.Stdout.Write(append(b, '\n'))
	}
	for _, h := range held {
		atomic.StoreInt32(&h.gone, 1) // our own close is not the server's
		h.c.Close()
	}
}

// oneKeepAliveGet sends one keep-alive GET and reads its whole response (Content-Length or
// chunked), leaving the connection idle and nothing buffered on our side.
func oneKeepAliveGet(c *tls.Conn) error {
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: hsclient\r\n\r\n", *path, *hostHdr)
	c.SetDeadline(time.Now().Add(*timeout))
	if _, err := c.Write([]byte(req)); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if br.Buffered() != 0 {
		return fmt.Errorf("%d bytes after the response", br.Buffered())
	}
	return nil
}

func emit(r result) {
	b, _ := json.Marshal(r)
	os.Stdout.Write(append(b, '\n'))
}
