package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// op performs one request or query with the worker's generator and
// returns an error if its answer was not the one expected.
type op func(ctx context.Context, r *rand.Rand) error

// measurement is what one closed-loop run measured.
type measurement struct {
	Requests   int64
	Errors     int64
	FirstError string
	Elapsed    time.Duration
	Latencies  []time.Duration // sorted
	CPU        cpuShares
}

func (m *measurement) rps() float64 { return float64(m.Requests) / m.Elapsed.Seconds() }

// quantile returns the q-quantile of the latencies (nearest rank).
func (m *measurement) quantile(q float64) time.Duration {
	if len(m.Latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(m.Latencies))+0.5) - 1
	return m.Latencies[min(max(i, 0), len(m.Latencies)-1)]
}

// drive runs conns workers in a closed loop, each sending its next request
// as soon as the previous one is answered: first for warmup, unmeasured,
// then for duration, measured. newOp gives worker i its op (a connection of
// its own, for instance). wt says what else to observe in the window.
func drive(ctx context.Context, conns int, warmup, duration time.Duration, wt watch, newOp func(i int) (op, func(), error)) (*measurement, error) {
	ops := make([]op, conns)
	for i := range ops {
		o, cleanup, err := newOp(i)
		if err != nil {
			return nil, err
		}
		if cleanup != nil {
			defer cleanup()
		}
		ops[i] = o
	}
	const (
		warming = iota
		measuring
		stopping
	)
	var (
		phase    atomic.Int32
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      []time.Duration
		errs     int64
		firstErr string
	)
	for i, o := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i)+1, uint64(time.Now().UnixNano())))
			lat := make([]time.Duration, 0, 1<<14)
			var n int64
			var first string
			for {
				p := phase.Load()
				if p == stopping || ctx.Err() != nil {
					break
				}
				start := time.Now()
				err := o(ctx, r)
				d := time.Since(start)
				if p != measuring {
					continue // counted only when sent inside the window
				}
				lat = append(lat, d)
				if err != nil {
					n++
					if first == "" {
						first = err.Error()
					}
				}
			}
			mu.Lock()
			all = append(all, lat...)
			errs += n
			if firstErr == "" {
				firstErr = first
			}
			mu.Unlock()
		}()
	}
	sleep(ctx, warmup)
	phase.Store(measuring)
	win := startWindow(wt)
	start := time.Now()
	sleep(ctx, duration)
	phase.Store(stopping)
	elapsed := time.Since(start)
	cpu := win.stop(0)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	slices.Sort(all)
	return &measurement{
		Requests: int64(len(all)), Errors: errs, FirstError: firstErr,
		Elapsed: elapsed, Latencies: all, CPU: cpu,
	}, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// httpConn is one keep-alive HTTP/1.1 connection of the load generator.
// Requests are written as prepared bytes and answers read with the standard
// parser: a fraction of what net/http's client costs per request, so that
// the load generator leaves the CPU to the server.
type httpConn struct {
	addr string
	c    net.Conn
	br   *bufio.Reader
	body bytes.Buffer
}

// roundTrip sends req (a whole HTTP request) and returns the status and
// body of the answer. A broken connection is redialled on the next call.
func (h *httpConn) roundTrip(req []byte) (int, []byte, error) {
	if h.c == nil {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			return 0, nil, err
		}
		h.c = c
		h.br = bufio.NewReaderSize(c, 16<<10)
	}
	fail := func(err error) (int, []byte, error) {
		h.c.Close()
		h.c = nil
		return 0, nil, err
	}
	if _, err := h.c.Write(req); err != nil {
		return fail(err)
	}
	resp, err := http.ReadResponse(h.br, nil)
	if err != nil {
		return fail(err)
	}
	h.body.Reset()
	_, err = h.body.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fail(err)
	}
	if resp.Close {
		h.c.Close()
		h.c = nil
	}
	return resp.StatusCode, h.body.Bytes(), nil
}

func (h *httpConn) close() {
	if h.c != nil {
		h.c.Close()
	}
}

// appendRequest appends a POST /graphql with a bearer token and a JSON
// body to buf.
func appendRequest(buf []byte, host, token string, body []byte) []byte {
	buf = append(buf, "POST /graphql HTTP/1.1\r\nHost: "...)
	buf = append(buf, host...)
	buf = append(buf, "\r\nAuthorization: Bearer "...)
	buf = append(buf, token...)
	buf = append(buf, "\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: "...)
	buf = strconv.AppendInt(buf, int64(len(body)), 10)
	buf = append(buf, "\r\n\r\n"...)
	return append(buf, body...)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// errBody is an answer that is not the success the scenario expects.
type errBody struct {
	status int
	body   []byte
}

func (e *errBody) Error() string {
	b := e.body
	if len(b) > 300 {
		b = b[:300]
	}
	return fmt.Sprintf("HTTP %d: %s", e.status, b)
}

// checkData accepts a 200 whose body starts with the expected data and
// holds no errors entry.
func checkData(status int, body []byte, prefix string) error {
	if status != http.StatusOK || !bytes.HasPrefix(body, []byte(prefix)) || bytes.Contains(body, []byte(`"errors"`)) {
		return &errBody{status, bytes.Clone(body)}
	}
	return nil
}

// The documents the load generator sends. Clients send the same document
// with different variables, as Apollo and urql do, so the server's parsed
// document cache applies.
const (
	taskFields = `id title description completed createdAt updatedAt`
	docList    = `query Tasks { tasks(first: 20) { nodes { ` + taskFields + ` } } }`
	docCreate  = `mutation Create($input: CreateTaskInput!) { createTask(input: $input) { ` + taskFields + ` } }`
	docAfter   = `query Page($after: String) { tasks(first: 20, after: $after) { nodes { ` + taskFields + ` } pageInfo { hasNextPage endCursor } } }`
	docWalk    = `query Walk($after: String) { tasks(first: 100, after: $after) { nodes { id createdAt } pageInfo { hasNextPage endCursor } } }`
	docCounted = `query Tasks { tasks(first: 20) { nodes { ` + taskFields + ` } totalCount } }`

	listPrefix   = `{"data":{"tasks":{"nodes":[`
	createPrefix = `{"data":{"createTask":{"id":"`
)

func queryBody(doc string) []byte {
	return append(appendJSONString([]byte(`{"query":`), doc), '}')
}

// createBody is a createTask request with a fresh title and description.
func createBody(b []byte, t *texts) []byte {
	b = append(b, `{"query":`...)
	b = appendJSONString(b, docCreate)
	b = append(b, `,"variables":{"input":{"title":`...)
	b = appendJSONString(b, t.title())
	if d := t.description(); d != nil {
		b = append(b, `,"description":`...)
		b = appendJSONString(b, *d)
	}
	return append(b, `}}}`...)
}

func afterBody(cursor string) []byte {
	b := append([]byte(`{"query":`), appendJSONString(nil, docAfter)...)
	b = append(b, `,"variables":{"after":`...)
	b = appendJSONString(b, cursor)
	return append(b, `}}`...)
}

// httpTarget is a running server and the tokens of the seeded users.
type httpTarget struct {
	addr   string // host:port
	tokens []string
}

// httpOps returns the worker factory of a scenario against the server:
// pick returns the body to send and the prefix its answer must start with.
// A body built per request is built in *scratch, the worker's buffer.
func (t *httpTarget) httpOps(pick func(r *rand.Rand, tx *texts, scratch *[]byte) (token string, body []byte, prefix string)) func(i int) (op, func(), error) {
	return func(i int) (op, func(), error) {
		c := &httpConn{addr: t.addr}
		tx := newTexts(uint64(i) + uint64(time.Now().UnixNano()))
		var req, scratch []byte
		return func(ctx context.Context, r *rand.Rand) error {
			token, body, prefix := pick(r, tx, &scratch)
			req = appendRequest(req[:0], t.addr, token, body)
			status, resp, err := c.roundTrip(req)
			if err != nil {
				return err
			}
			return checkData(status, resp, prefix)
		}, c.close, nil
	}
}

// read, write and mixed are the server's scenarios over random users.
func (t *httpTarget) read() func(int) (op, func(), error) { return t.reads(docList, listPrefix) }

func (t *httpTarget) write() func(int) (op, func(), error) { return t.writes(createBody, createPrefix) }

// reads sends the query doc as a random user, expecting data that starts
// with prefix.
func (t *httpTarget) reads(doc, prefix string) func(int) (op, func(), error) {
	body := queryBody(doc)
	return t.httpOps(func(r *rand.Rand, _ *texts, _ *[]byte) (string, []byte, string) {
		return t.tokens[r.IntN(len(t.tokens))], body, prefix
	})
}

// writes sends the body build appends, with fresh texts, as a random
// user, expecting data that starts with prefix.
func (t *httpTarget) writes(build func([]byte, *texts) []byte, prefix string) func(int) (op, func(), error) {
	return t.httpOps(func(r *rand.Rand, tx *texts, scratch *[]byte) (string, []byte, string) {
		*scratch = build((*scratch)[:0], tx)
		return t.tokens[r.IntN(len(t.tokens))], *scratch, prefix
	})
}

func (t *httpTarget) mixed() func(int) (op, func(), error) {
	list := queryBody(docList)
	return t.httpOps(func(r *rand.Rand, tx *texts, scratch *[]byte) (string, []byte, string) {
		token := t.tokens[r.IntN(len(t.tokens))]
		if r.IntN(10) == 0 {
			*scratch = createBody((*scratch)[:0], tx)
			return token, *scratch, createPrefix
		}
		return token, list, listPrefix
	})
}

// deep reads pages after the given cursors, as one user.
func (t *httpTarget) deep(token string, cursors []string) func(int) (op, func(), error) {
	bodies := make([][]byte, len(cursors))
	for i, c := range cursors {
		bodies[i] = afterBody(c)
	}
	return t.httpOps(func(r *rand.Rand, _ *texts, _ *[]byte) (string, []byte, string) {
		return token, bodies[r.IntN(len(bodies))], listPrefix
	})
}

// fixed sends one body as one user (latency probes).
func (t *httpTarget) fixed(token string, body []byte) func(int) (op, func(), error) {
	return t.httpOps(func(*rand.Rand, *texts, *[]byte) (string, []byte, string) {
		return token, body, listPrefix
	})
}

// post sends one request and returns the body of a successful answer.
func (t *httpTarget) post(token string, body []byte) ([]byte, error) {
	c := &httpConn{addr: t.addr}
	defer c.close()
	status, resp, err := c.roundTrip(appendRequest(nil, t.addr, token, body))
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK || bytes.Contains(resp, []byte(`"errors"`)) {
		return nil, &errBody{status, resp}
	}
	return bytes.Clone(resp), nil
}
