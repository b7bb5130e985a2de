// Package scalar marshals the schema's custom scalars and the integer task id.
package scalar

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// TimeLayout is how every Time is written: UTC, microseconds, ending in Z,
// so that what a mutation returns equals, character for character, what a
// later query returns.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// MarshalTime writes t in TimeLayout.
func MarshalTime(t time.Time) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		b := make([]byte, 0, len(TimeLayout)+2)
		b = append(b, '"')
		b = t.UTC().AppendFormat(b, TimeLayout)
		w.Write(append(b, '"'))
	})
}

// UnmarshalTime reads an RFC 3339 time.
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("Time must be an RFC 3339 string")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("Time must be an RFC 3339 string")
	}
	return t.UTC(), nil
}

// MarshalInt64ID writes an integer id as a decimal string, as the ID type
// requires.
func MarshalInt64ID(id int64) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		b := make([]byte, 0, 22)
		b = append(b, '"')
		b = strconv.AppendInt(b, id, 10)
		w.Write(append(b, '"'))
	})
}

// UnmarshalInt64ID exists for gqlgen's binding; ids arrive as strings and
// are validated by the model, which names the argument at fault.
func UnmarshalInt64ID(v any) (int64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("ID must be a string")
	}
	return strconv.ParseInt(s, 10, 64)
}
