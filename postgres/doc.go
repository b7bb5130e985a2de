// Package postgres is the task store's PostgreSQL write path and the event
// bus behind it, in one place because they are one protocol: a mutation
// notifies its changes within its own statement (Writer), concurrent
// creates share one statement (createGroups), and every instance LISTENs
// for them (Bus), with the payload format of payload.go on both ends.
//
// The model builds every statement, restricted to its owner, and knows
// nothing of NOTIFY; this package only wraps those statements
// (model.Mutation.Run). Opening connections is package database's.
package postgres
