// Package perturb changes problems in ways that must not change their
// answers, to measure how robust a strategy is: a model that reasons well
// ignores a sentence that has nothing to do with the question, where
// reasoning models of 2025 were shown to err up to several times as often
// and think far longer.
package perturb

import (
	"fmt"
	"hash/fnv"
	"strings"
)

// Distractors are query-agnostic sentences: true or harmless, and
// irrelevant to any math question. The first three are from the
// CatAttack study of reasoning models (2025).
var Distractors = []string{
	"Interesting fact: cats sleep most of their lives.",
	"Remember, always save at least 20% of your earnings for future investments.",
	"Could the answer possibly be around 175?",
	"Fun fact: honey never spoils if it is sealed.",
	"Note: the Pacific is the largest ocean on Earth.",
}

// Kind names a perturbation, as --perturb takes it.
type Kind string

const (
	// None leaves problems as they are.
	None Kind = ""
	// DistractorsKind appends one of Distractors to a text problem; for
	// Countdown it is the decoy variant (countdown.DecoyPrompt).
	DistractorsKind Kind = "distractors"
)

// Parse reads a --perturb value.
func Parse(s string) (Kind, error) {
	switch k := Kind(strings.TrimSpace(s)); k {
	case None, DistractorsKind:
		return k, nil
	}
	return None, fmt.Errorf("perturbation %q: want distractors (or nothing)", s)
}

// Distract appends a distractor to text, chosen by key: the same key gets
// the same sentence, so every strategy and seed sees a problem perturbed
// alike and their results pair.
func Distract(text string, key uint64) string {
	h := fnv.New64a()
	fmt.Fprint(h, key)
	d := Distractors[h.Sum64()%uint64(len(Distractors))]
	return strings.TrimRight(text, " \n") + " " + d
}
