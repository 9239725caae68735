package countdown

import (
	"slices"
	"strings"
	"testing"
)

// A serial search that explores, moves, searches a child inline, and
// gives up: every node it moved to was tried.
const thoroughGiveUp = `Mode: serial
Current State: 10:[2, 3, 7], Operations: []
Exploring Operation: 2+3=5, Resulting Numbers: [7, 5]
Generated Node #0,0: 10:[7, 5] Operation: 2+3=5
Exploring Operation: 7-2=5, Resulting Numbers: [3, 5]
Generated Node #0,1: 10:[3, 5] Operation: 7-2=5
Moving to Node #0,0
Current State: 10:[7, 5], Operations: ['2+3=5']
Exploring Operation: 7+5=12, Resulting Numbers: [12]
12,10 unequal: No Solution
Start Sub Search at level 1: Moving to Node #0,1
Current State: 10:[3, 5], Operations: ['7-2=5']
Exploring Operation: 3*5=15, Resulting Numbers: [15]
15,10 unequal: No Solution
No solution found.
Exit Sub Search at level 1
No solution found in sub search
No solution found.
`

// The same problem given up on at once: the root state, with three
// numbers, is left untried.
const lazyGiveUp = `Mode: serial
Current State: 10:[2, 3, 7], Operations: []
No solution found.
`

func TestReadEffort(t *testing.T) {
	e := ReadEffort(thoroughGiveUp)
	want := []Visit{{Node: "0", Numbers: 3, Explored: 2}, {Node: "0,0", Numbers: 2, Explored: 1}, {Node: "0,1", Numbers: 2, Explored: 1}}
	if !slices.Equal(e.Visits, want) {
		t.Errorf("visits %v, want %v", e.Visits, want)
	}
	if len(e.Abandoned()) != 0 || e.Explored() != 4 || e.Goal {
		t.Errorf("abandoned %v, explored %d, goal %v: want none, 4, false", e.Abandoned(), e.Explored(), e.Goal)
	}
	// Two give-ups: the inline sub search's and the thread's, each at its
	// line's start.
	if len(e.GiveUps) != 2 {
		t.Fatalf("give-ups at %v, want 2", e.GiveUps)
	}
	for _, at := range e.GiveUps {
		if !strings.HasPrefix(thoroughGiveUp[at:], "No solution found.\n") {
			t.Errorf("give-up offset %d reads %q", at, thoroughGiveUp[at:min(at+20, len(thoroughGiveUp))])
		}
	}
	if !ClaimsNoSolution(thoroughGiveUp) {
		t.Error("the thorough search's claim was not read")
	}

	lazy := ReadEffort(lazyGiveUp)
	if ab := lazy.Abandoned(); len(ab) != 1 || ab[0].Node != "0" || ab[0].Numbers != 3 {
		t.Errorf("lazy search abandoned %v, want the root", ab)
	}
	if !ClaimsNoSolution(lazyGiveUp) || !ClaimsNoSolution(strings.TrimSuffix(lazyGiveUp, "\n")) {
		t.Error("the lazy search's claim was not read")
	}
}

func TestReadEffortParallel(t *testing.T) {
	// A parallel root: it explores, spawns, and its join block names the
	// children's nodes, which are theirs, not the root's visits.
	root := `Mode: parallel
Moving to Node #0
Current State: 10:[2, 3, 7], Operations: []
Exploring Operation: 2+3=5, Resulting Numbers: [7, 5]
Generated Node #0,0: 10:[7, 5] Operation: 2+3=5
<Sub Searches>
<Goal Reached in Sub Search 0 at level 1 at Node #0,0>
Moving to Node #0,0
Current State: 10:[7, 5], Operations: ['2+3=5']
Exploring Operation: 7+5=12, Resulting Numbers: [12]
<End Sub Searches>
Moving to Node #0,1
Current State: 10:[3, 5], Operations: ['7-2=5']
No solution found.
`
	e := ReadEffort(root)
	want := []Visit{{Node: "0", Numbers: 3, Explored: 1}, {Node: "0,1", Numbers: 2}}
	if !slices.Equal(e.Visits, want) {
		t.Errorf("visits %v, want %v", e.Visits, want)
	}
	if ab := e.Abandoned(); len(ab) != 1 || ab[0].Node != "0,1" {
		t.Errorf("abandoned %v, want #0,1", ab)
	}
	// A solved thread: what follows the goal is the replayed path.
	solved := ReadEffort("Moving to Node #0,1\nCurrent State: 10:[3, 7], Operations: ['5-3=2']\nExploring Operation: 3+7=10, Resulting Numbers: [10]\n10,10 equal: Goal Reached\nMoving to Node #0\n")
	if !solved.Goal || len(solved.Visits) != 1 || solved.Explored() != 1 {
		t.Errorf("solved thread read as %+v", solved)
	}
	// A state of one number cannot be explored: reaching it is no
	// abandonment.
	if (Visit{Node: "0,0,0", Numbers: 1}).Abandoned() {
		t.Error("a one-number state counted as abandoned")
	}
}

// The searches braid trains on never abandon a node: a monitor flagging
// abandonment flags none of them.
func TestGeneratedSearchesAbandonNothing(t *testing.T) {
	for _, mode := range []Mode{ModeSerial, ModeParallel} {
		i := 0
		for p := range UnsolvableProblems(3, Train) {
			if i == 200 {
				break
			}
			rec, err := TraceConfig{Format: mode, ModeHeader: true}.Generate(p, 1, i)
			if err != nil {
				t.Fatal(err)
			}
			i++
			if !ClaimsNoSolution(rec.Text) {
				t.Fatalf("%s search of unsolvable %v does not give up: %q", mode, p, rec.Text)
			}
			threads := []string{rec.Text}
			if rec.Tree != nil {
				threads = threads[:0]
				var walk func(c *Call)
				walk = func(c *Call) {
					threads = append(threads, c.Final())
					for _, kids := range c.Spawns {
						for _, k := range kids {
							walk(k)
						}
					}
				}
				walk(rec.Tree)
			}
			for _, text := range threads {
				if ab := ReadEffort(text).Abandoned(); len(ab) > 0 {
					t.Fatalf("%s search of %v abandoned %v:\n%s", mode, p, ab, text)
				}
			}
		}
	}
}

// ReadEffort reads any text a monitor is handed without failing: every
// give-up it reports is a "No solution found." line where it says, and
// it counts no more explorations than the text's lines hold.
func FuzzReadEffort(f *testing.F) {
	f.Add(thoroughGiveUp)
	f.Add(lazyGiveUp)
	f.Add("Moving to Node #0,1\nCurrent State: 10:[3, 5], Operations: ['7-2=5']\n<Sub Searches>\nNo solution found.")
	f.Add("Exploring Operation: 2+3=5, Resulting Numbers: [5]\nNo solution found.\n\n")
	f.Fuzz(func(t *testing.T, text string) {
		e := ReadEffort(text)
		for _, at := range e.GiveUps {
			if at < 0 || at > len(text) || !strings.HasPrefix(text[at:], "No solution found.") || at > 0 && text[at-1] != '\n' {
				t.Fatalf("give-up at %d of %q", at, text)
			}
		}
		if n := strings.Count(text, "Exploring Operation: "); e.Explored() > n {
			t.Fatalf("%d explorations read from %d lines", e.Explored(), n)
		}
		for _, v := range e.Visits {
			if v.Numbers < 0 || v.Explored < 0 {
				t.Fatalf("visit %+v", v)
			}
		}
		_ = ClaimsNoSolution(text)
	})
}
