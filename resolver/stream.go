package resolver

import (
	"context"

	"github.com/taskql/server/events"
)

// ChangeFeed is where the taskChanged subscription reads from: the event
// bus, which takes the subscriber from the context.
type ChangeFeed interface {
	Subscribe(ctx context.Context) (*events.Subscription, error)
}

type streamEndKey struct{}

// streamEnd is the slot a subscription resolver fills.
type streamEnd struct {
	reason func() error
}

// WithStreamEnd prepares ctx for one subscription operation. gqlgen ends
// a subscription's stream when its channel closes, with no word of why;
// the resolver leaves the reason in ctx, and the transport calls the
// returned function after the last event: a non-nil error means the
// stream ended early (EVENTS_MISSED: it had a gap) and the client
// should hear it.
func WithStreamEnd(ctx context.Context) (context.Context, func() error) {
	end := &streamEnd{}
	return context.WithValue(ctx, streamEndKey{}, end), func() error {
		if end.reason == nil {
			return nil
		}
		return end.reason()
	}
}

// setStreamEnd records where the transport learns why the stream of ctx
// ended. Without a slot (a transport that does not ask) it does nothing.
func setStreamEnd(ctx context.Context, reason func() error) {
	if end, ok := ctx.Value(streamEndKey{}).(*streamEnd); ok {
		end.reason = reason
	}
}
