package model

import (
	"io"
	"strconv"
)

// ChangeKind says what happened to a task.
type ChangeKind string

// The kinds of change a mutation publishes: createTask publishes CREATED,
// updateTask and toggleTask UPDATED, deleteTask and deleteCompletedTasks
// one DELETED per task.
const (
	ChangeCreated ChangeKind = "CREATED"
	ChangeUpdated ChangeKind = "UPDATED"
	ChangeDeleted ChangeKind = "DELETED"
)

// Valid reports whether k is one of the three kinds.
func (k ChangeKind) Valid() bool {
	return k == ChangeCreated || k == ChangeUpdated || k == ChangeDeleted
}

// UnmarshalGQL implements graphql.Unmarshaler.
func (k *ChangeKind) UnmarshalGQL(v any) error {
	s, _ := v.(string)
	*k = ChangeKind(s)
	if !k.Valid() {
		return invalid("kind", "%q is not a TaskChangeKind", s)
	}
	return nil
}

// MarshalGQL implements graphql.Marshaler.
func (k ChangeKind) MarshalGQL(w io.Writer) { io.WriteString(w, strconv.Quote(string(k))) }

// TaskChange is one committed change to a task. For DELETED, Task is the
// task as it was before the deletion.
type TaskChange struct {
	Kind ChangeKind
	Task *Task
}

// Changes returns a change of kind for each of tasks, in their order.
func Changes(kind ChangeKind, tasks []*Task) []*TaskChange {
	changes := make([]*TaskChange, len(tasks))
	for i, t := range tasks {
		changes[i] = &TaskChange{Kind: kind, Task: t}
	}
	return changes
}
