package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// The seed's text is made from these parts, so that titles and
// descriptions have the lengths and variety of real to-do lists (a short
// imperative title; a description on most tasks, from a clause to a short
// paragraph) and the rows have the size real rows have.
var (
	verbs = []string{
		"Buy", "Call", "Email", "Fix", "Review", "Book", "Renew", "Clean", "Plan", "Write",
		"Pay", "Schedule", "Return", "Order", "Update", "Prepare", "Send", "Check", "Cancel", "Pick up",
	}
	objects = []string{
		"the quarterly report", "groceries for the week", "the dentist appointment", "the car insurance",
		"Sarah about the offsite", "the leaking kitchen tap", "flights to Lisbon", "the gym membership",
		"the garage", "the team retrospective", "the electricity bill", "a birthday present for Tom",
		"the library books", "printer ink", "the project roadmap", "slides for Monday's demo",
		"the landlord about the heating", "the passport application", "the backup drive", "the newsletter draft",
		"the onboarding checklist", "the tax return", "concert tickets", "the bike tyres",
	}
	whens = []string{
		"", "", "", " today", " tomorrow", " before Friday", " this weekend", " by the end of the month", " next week",
	}
	sentences = []string{
		"Remember to bring the receipt.",
		"Ask whether the discount still applies.",
		"The number is in the shared contacts sheet.",
		"Check the calendar for conflicts first.",
		"Last time this took about an hour, so block the time.",
		"Coordinate with Alex, who has the login details.",
		"If the shop is closed, try the one near the station.",
		"Attach the signed form and keep a copy.",
		"Compare at least three quotes before deciding.",
		"Notes from the last meeting are in the team folder.",
		"Do not forget the reference number: it is on the letter from March.",
		"Split the cost with the others and send them the total.",
		"Low priority, but it keeps slipping: just get it done.",
		"The deadline is firm this time; late submissions are not accepted.",
		"Take photos before and after, in case there is a dispute.",
	}
)

// texts makes titles and descriptions from a seeded generator, so every
// run seeds the same rows.
type texts struct{ r *rand.Rand }

func newTexts(seed uint64) *texts { return &texts{rand.New(rand.NewPCG(seed, 0x7a5c))} }

func (t *texts) pick(list []string) string { return list[t.r.IntN(len(list))] }

// title is a short imperative like "Renew the car insurance before Friday".
func (t *texts) title() string {
	return t.pick(verbs) + " " + t.pick(objects) + t.pick(whens)
}

// description is nil for a quarter of the tasks, else one to four sentences.
func (t *texts) description() *string {
	if t.r.IntN(4) == 0 {
		return nil
	}
	n := 1 + t.r.IntN(4)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = t.pick(sentences)
	}
	s := strings.Join(parts, " ")
	return &s
}

// row is one seeded task.
type row struct {
	userID      string
	title       string
	description *string
	completed   bool
	createdAt   time.Time
	updatedAt   time.Time
}

// userID is the id of seeded user i: 32 characters, the length of Better
// Auth's ids. pgbench's scripts build the same string from the number.
func userID(i int) string { return fmt.Sprintf("bench%027d", i) }

// rowsFor makes n tasks of user uid, created over the past year (in
// increasing order, one every few minutes at least), half of them
// completed; a completed task was updated after it was created.
func (t *texts) rowsFor(uid string, n int, now time.Time) []row {
	rows := make([]row, n)
	span := 365 * 24 * time.Hour
	step := span / time.Duration(n+1)
	for i := range rows {
		created := now.Add(-span + time.Duration(i)*step + time.Duration(t.r.Int64N(int64(step)))).UTC().Truncate(time.Microsecond)
		r := row{userID: uid, title: t.title(), description: t.description(), completed: t.r.IntN(2) == 0, createdAt: created, updatedAt: created}
		if r.completed {
			r.updatedAt = created.Add(time.Duration(t.r.Int64N(int64(72 * time.Hour)))).Truncate(time.Microsecond)
			if r.updatedAt.After(now) {
				r.updatedAt = now
			}
		}
		rows[i] = r
	}
	return rows
}
