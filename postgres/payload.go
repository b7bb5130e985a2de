package postgres

// The payload of a notification is the whole change: the task row as it is
// after the change (as it was, for DELETED), so that a listener needs no
// query. The alternative, notifying only the kind and the id and reading
// the row back, was weighed and kept out: a deleted row cannot be read
// back, and every instance would query the database once per change it
// hears, where now only the writer touches it. A change can be longer
// than a notification admits (MaxPayload) only when the user id is long
// (about 50 characters or more, with a title and description of the most
// characters, each escaped as six bytes): Writer then sends it in a
// transaction, split into chunks (splitPayload) that Bus puts back
// together (assembler). Better Auth's ids are 32 characters; the chunks
// exist so that any id a token may carry still works.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/taskql/server/model"
)

// MaxPayload is the largest NOTIFY payload PostgreSQL accepts in its
// default build: it must be shorter than 8000 bytes.
const MaxPayload = 7999

// maxAssembled bounds a payload put back together from chunks. A change
// is at most about 7.5 KB plus the user id, which comes from a token of
// at most 8 KB.
const maxAssembled = 64 << 10

// wireChange is a change as it travels between instances: the whole task
// row, so the receiver needs no query (and a deleted task can still be
// shown as it was). The field names are a format instances of different
// versions must agree on during a rolling deploy; add fields, never rename.
type wireChange struct {
	Kind model.ChangeKind `json:"kind"`
	Task wireTask         `json:"task"`
}

type wireTask struct {
	ID          int64     `json:"id"`
	UserID      string    `json:"userId"`
	Title       string    `json:"title"`
	Description *string   `json:"description"`
	Completed   bool      `json:"completed"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// encodeChange is c as compact JSON. HTML escaping is off: it would spell
// each <, > and & as six bytes.
func encodeChange(c *model.TaskChange) (string, error) {
	t := c.Task
	w := wireChange{Kind: c.Kind, Task: wireTask{
		ID: t.ID, UserID: t.UserID, Title: t.Title, Description: t.Description,
		Completed: t.Completed, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
	}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return "", fmt.Errorf("encode %s change of task %d: %w", c.Kind, t.ID, err)
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// decodeChange reads a change encoded by encodeChange.
func decodeChange(payload string) (*model.TaskChange, error) {
	var w wireChange
	if err := json.Unmarshal([]byte(payload), &w); err != nil {
		return nil, fmt.Errorf("decode change: %w", err)
	}
	if !w.Kind.Valid() || w.Task.UserID == "" || w.Task.ID == 0 {
		return nil, errors.New("decode change: not a task change")
	}
	t := w.Task
	return &model.TaskChange{Kind: w.Kind, Task: &model.Task{
		ID: t.ID, UserID: t.UserID, Title: t.Title, Description: t.Description,
		Completed: t.Completed, CreatedAt: t.CreatedAt.UTC(), UpdatedAt: t.UpdatedAt.UTC(),
	}}, nil
}

// chunkMark starts a chunk of a payload too long for one notification:
// "#" nonce ":" index "/" count ":" data. A whole payload is a JSON object
// and starts with "{" instead.
const chunkMark = '#'

// splitPayload returns payload as one notification, or, when it is longer
// than max bytes, as chunks of at most max bytes cut between code points.
// The random nonce of the payload keeps its chunks distinct from those of
// another change with the same text, which PostgreSQL would otherwise
// deliver only once per transaction.
func splitPayload(payload string, max int) []string {
	if len(payload) <= max {
		return []string{payload}
	}
	var nonce [6]byte
	rand.Read(nonce[:])
	id := hex.EncodeToString(nonce[:])
	// The header's length depends on the count, which depends on the room
	// the header leaves: the header of 9999 chunks bounds them all.
	room := max - len(fmt.Sprintf("%c%s:%d/%d:", chunkMark, id, 9999, 9999))
	var parts []string
	for rest := payload; rest != ""; {
		n := min(room, len(rest))
		for n < len(rest) && !utf8.RuneStart(rest[n]) {
			n--
		}
		parts = append(parts, rest[:n])
		rest = rest[n:]
	}
	for i, p := range parts {
		parts[i] = fmt.Sprintf("%c%s:%d/%d:%s", chunkMark, id, i+1, len(parts), p)
	}
	return parts
}

// assembler puts chunked payloads back together. PostgreSQL queues the
// notifications of a transaction together and delivers them in order, so
// the chunks of a payload arrive one after another; anything else (a
// listener that reconnected mid-payload) is dropped.
type assembler struct {
	id    string
	next  int
	count int
	buf   strings.Builder
}

// add takes one notification payload. It returns the whole payload when
// one is complete, "" while waiting for more chunks, or an error for a
// chunk out of sequence.
func (a *assembler) add(n string) (string, error) {
	if n == "" || n[0] != chunkMark {
		if a.count != 0 {
			a.reset()
			return n, errors.New("a chunked payload was cut short")
		}
		return n, nil
	}
	id, rest, ok1 := strings.Cut(n[1:], ":")
	pos, data, ok2 := strings.Cut(rest, ":")
	is, cs, ok3 := strings.Cut(pos, "/")
	i, err1 := strconv.Atoi(is)
	count, err2 := strconv.Atoi(cs)
	if !ok1 || !ok2 || !ok3 || err1 != nil || err2 != nil || i < 1 || i > count {
		a.reset()
		return "", errors.New("malformed payload chunk")
	}
	if i == 1 {
		a.reset()
		a.id, a.next, a.count = id, 1, count
	}
	if id != a.id || i != a.next || count != a.count || a.buf.Len()+len(data) > maxAssembled {
		a.reset()
		return "", fmt.Errorf("payload chunk %d/%d out of sequence", i, count)
	}
	a.buf.WriteString(data)
	a.next++
	if i < count {
		return "", nil
	}
	whole := a.buf.String()
	a.reset()
	return whole, nil
}

func (a *assembler) reset() {
	*a = assembler{}
}
