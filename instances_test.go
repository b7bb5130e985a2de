package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskql/server/auth"
	"github.com/taskql/server/testutil"
	"github.com/taskql/server/testutil/gqlws"
)

// TestInstancesShareChangesAndResubscribeAfterARestart runs two server
// processes on one PostgreSQL: a subscription on the first hears the
// mutations made on the second; when PostgreSQL restarts it ends with
// EVENTS_MISSED, and a new one hears them again; the websocket ends with
// 1001 when its server shuts down.
func TestInstancesShareChangesAndResubscribeAfterARestart(t *testing.T) {
	t.Parallel()
	pg := testutil.StartPostgresCluster(t)
	opts := testutil.Options{Env: withSecret(map[string]string{
		"DATABASE_URL":     pg.URL(),
		"SHUTDOWN_TIMEOUT": "10s",
	})}
	first, second := testutil.StartServer(t, opts), testutil.StartServer(t, opts)
	token, err := auth.Mint([]byte(testSecret), auth.MintClaims{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ws, err := gqlws.Dial(ctx, first.URL+"/graphql", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := ws.Init(ctx, map[string]any{"Authorization": "Bearer " + token}); err != nil {
		t.Fatal(err)
	}
	if err := ws.Subscribe(ctx, "1", `subscription { taskChanged { kind task { id title } } }`, nil); err != nil {
		t.Fatal(err)
	}
	// One reader for the whole test: a read whose context ends closes the
	// websocket, so waits with a timeout wait on this channel instead.
	messages, ended := make(chan gqlws.Message), make(chan error, 1)
	go func() {
		for {
			msg, err := ws.Next(ctx)
			if err != nil {
				ended <- err
				return
			}
			messages <- msg
		}
	}()

	// The subscribe is not acknowledged: changes are made on the second
	// instance until one arrives on the first.
	heard := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			id, err := createTaskOver(client, second.URL, token, what)
			if err == nil {
				if got, err := nextTaskChange(messages, time.Second); err == nil && got == id {
					return
				} else if err == nil {
					t.Fatalf("%s: got an event of task %s, want %s", what, got, id)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no change made on the second instance reached the first within 30s (last error: %v)\nfirst:\n%s\nsecond:\n%s",
					what, err, first.Log(), second.Log())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	heard("probe")

	inOrder := func(what string) {
		t.Helper()
		var delays []time.Duration
		for i := range 20 {
			start := time.Now()
			id, err := createTaskOver(client, second.URL, token, fmt.Sprintf("%s %d", what, i))
			if err != nil {
				t.Fatalf("%s: create: %v", what, err)
			}
			got, err := nextTaskChange(messages, 10*time.Second)
			if err != nil || got != id {
				t.Fatalf("%s: change %d: got task %q (%v), want %s", what, i, got, err, id)
			}
			delays = append(delays, time.Since(start))
		}
		slices.Sort(delays)
		t.Logf("%s: from mutation request to event on the other instance: median %v, max %v (not a benchmark: see bench/subscriptions)",
			what, delays[len(delays)/2], delays[len(delays)-1])
	}
	inOrder("across instances")

	// Every connection to the database drops. Changes committed while the
	// first instance's LISTEN was gone were never heard, so its
	// subscription ends with EVENTS_MISSED; the client resubscribes, which
	// listens again, and hears changes again.
	pg.Restart(t)
	select {
	case msg := <-messages:
		if msg.ID != "1" || msg.Type != "error" || !strings.Contains(string(msg.Payload), `"code":"EVENTS_MISSED"`) {
			t.Fatalf("after the restart: got %s %s, want error EVENTS_MISSED ending operation 1", msg.Type, msg.Payload)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the subscription did not end with EVENTS_MISSED after the restart:\n%s", first.Log())
	}
	if !strings.Contains(first.Log(), "task change listener lost its connection") {
		t.Fatalf("the first instance's listener did not report its loss:\n%s", first.Log())
	}
	if err := ws.Subscribe(ctx, "2", `subscription { taskChanged { kind task { id title } } }`, nil); err != nil {
		t.Fatal(err)
	}
	heard("after the restart")
	inOrder("after the restart")

	// Shutting down with the websocket open: it is closed with 1001 and
	// the process exits promptly.
	if err := first.Stop(15 * time.Second); err != nil {
		t.Fatalf("stop the server: %v (it must exit cleanly on SIGTERM):\n%s", err, first.Log())
	}
	var c *gqlws.Closed
	if err := <-ended; !errors.As(err, &c) || c.Code != 1001 {
		t.Fatalf("the websocket ended with %v, want close 1001", err)
	}
}

// createTaskOver creates a task over HTTP and returns its id.
func createTaskOver(client *http.Client, base, token, title string) (string, error) {
	body, _ := json.Marshal(map[string]any{
		"query":     `mutation($t: String!) { createTask(input: {title: $t}) { id } }`,
		"variables": map[string]any{"t": title},
	})
	req, err := http.NewRequest(http.MethodPost, base+"/graphql", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var out struct {
		Data struct {
			CreateTask struct{ ID string }
		}
		Errors []struct{ Message string }
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("status %d: %w", res.StatusCode, err)
	}
	if len(out.Errors) > 0 || out.Data.CreateTask.ID == "" {
		return "", fmt.Errorf("status %d: errors %v", res.StatusCode, out.Errors)
	}
	return out.Data.CreateTask.ID, nil
}

// nextTaskChange returns the task id of the next event from messages,
// waiting at most wait.
func nextTaskChange(messages <-chan gqlws.Message, wait time.Duration) (string, error) {
	var msg gqlws.Message
	select {
	case msg = <-messages:
	case <-time.After(wait):
		return "", errors.New("no event")
	}
	var body struct {
		Data struct {
			TaskChanged struct {
				Task struct{ ID string }
			}
		}
	}
	if msg.Type != "next" || json.Unmarshal(msg.Payload, &body) != nil {
		return "", fmt.Errorf("want an event, got %s %s", msg.Type, strings.TrimSpace(string(msg.Payload)))
	}
	return body.Data.TaskChanged.Task.ID, nil
}
