package countdown

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
)

// ParallelConfig configures the parallel (APR) search-trace generator.
type ParallelConfig struct {
	// Beam is the root call's beam (frontier nodes per round, successors kept
	// per node). At least 1.
	Beam int
	// SubBeam is the beam of each child call. At least 1.
	SubBeam   int
	Heuristic Heuristic
	// Promising is the probability that the root, having generated more than
	// one node from a state, spawns one child search per node instead of
	// queueing them. The public APR generator uses 0.9.
	Promising float64
}

// Call is one thread of a parallel rollout: a search from one node, run as a
// sequence of model calls. A call that spawns children ends; the runtime
// resumes it in a new call whose prompt ends with the join block. Calls[k+1]
// begins with Calls[k] minus its spawn block.
type Call struct {
	Node  string `json:"node"`  // the node this thread searches from, "0" for the root
	Level int    `json:"level"` // 0 for the root, 1 for its children
	// Calls holds the text of each model call, in order; Prompts[k] is how
	// many leading bytes of Calls[k] the model is given rather than writes.
	Calls   []string `json:"calls"`
	Prompts []int    `json:"prompt_bytes"`
	// Spawns[k] are the children spawned at the end of Calls[k].
	Spawns [][]*Call `json:"spawns,omitempty"`
	Solved bool      `json:"solved"`
	// Solution is the path from this call's node to the goal.
	Solution Solution `json:"solution,omitempty"`

	goal *node // the goal node, linked to its ancestors, for the join's path
}

// Final is the last call's text: the thread's whole search with every spawn
// replaced by its join.
func (c *Call) Final() string { return c.Calls[len(c.Calls)-1] }

// Sequence is one training sequence of a rollout: a model call.
type Sequence struct {
	// Thread is the node id the call searches from; Call is its index among
	// that thread's calls.
	Thread string `json:"thread"`
	Level  int    `json:"level"`
	Call   int    `json:"call"`
	// Prompt is given to the model; Completion is what it must write.
	Prompt     string `json:"prompt"`
	Completion string `json:"completion"`
}

// Sequences flattens the rollout into its model calls in the order they
// run: a call, then the children it spawned (each depth first), then the
// call that resumes it.
func (c *Call) Sequences() []Sequence {
	var out []Sequence
	var walk func(c *Call)
	walk = func(c *Call) {
		for k, text := range c.Calls {
			out = append(out, Sequence{Thread: c.Node, Level: c.Level, Call: k,
				Prompt: text[:c.Prompts[k]], Completion: text[c.Prompts[k]:]})
			if k < len(c.Spawns) {
				for _, kid := range c.Spawns[k] {
					walk(kid)
				}
			}
		}
	}
	walk(c)
	return out
}

// Children returns how many child threads the rollout spawned in all.
func (c *Call) Children() int {
	n := 0
	for _, kids := range c.Spawns {
		n += len(kids)
		for _, k := range kids {
			n += k.Children()
		}
	}
	return n
}

// GenerateParallel runs the APR search on p. The root searches serially;
// when it generates more than one node from a state it may (with probability
// Promising) end its call with a spawn block, one child per node:
//
//	<Calling Sub Searches>
//	<Start Sub Search 0 at level 1> Moving to Node #0,0
//	<End Calling Sub Searches>
//
// Each child starts from only "Moving to Node #id" and its Current State line
// and searches serially with SubBeam. The root is then resumed with the join
// block (No Solution / Goal Reached with the child's path) and, when a child
// reached the goal, ends with the solution path from the root.
func GenerateParallel(p Problem, cfg ParallelConfig, rng *rand.Rand) (*Call, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if cfg.Beam < 1 || cfg.SubBeam < 1 {
		return nil, fmt.Errorf("countdown: parallel beams %d and %d must be at least 1", cfg.Beam, cfg.SubBeam)
	}
	g := parallelSearch{target: p.Target, cfg: cfg, rng: rng, sc: newScorer(cfg.Heuristic, p.Target)}
	root := &node{id: "0", nums: append([]int(nil), p.Numbers...)}
	return g.run(root, 0, cfg.Beam), nil
}

type parallelSearch struct {
	target int
	cfg    ParallelConfig
	rng    *rand.Rand
	sc     scorer
	seq    int
}

// threadPrompt is what a thread starting at n is given: the move to its node
// and that node's state.
func threadPrompt(target int, n *node) string {
	var w traceWriter
	w.moving(n.id)
	w.currentState(target, n.nums, n.ops)
	return w.String()
}

func (g *parallelSearch) run(start *node, level, beam int) *Call {
	c := &Call{Node: start.id, Level: level}
	var w traceWriter
	w.moving(start.id)
	prompt := len(threadPrompt(g.target, start))
	finish := func(goal *node) *Call {
		c.Calls = append(c.Calls, w.String())
		c.Prompts = append(c.Prompts, prompt)
		if goal != nil {
			c.Solved, c.goal = true, goal
			c.Solution = Solution(goal.ops[len(start.ops):])
		}
		return c
	}
	open := &openSet{start}
	for open.Len() > 0 {
		current := popBeam(open, beam)
		for ci, cur := range current {
			explore, goal := expand(&w, g.target, cur, g.sc, beam, 0, g.rng, &g.seq)
			if goal != nil {
				writePath(&w, g.target, start, goal)
				return finish(goal)
			}
			// Only the root spawns: children search serially, as in APR.
			spawn := level == 0 && len(explore) > 1 && g.rng.Float64() < g.cfg.Promising
			if spawn {
				kids := make([]*Call, len(explore))
				for i, n := range explore {
					kids[i] = g.run(n, level+1, g.cfg.SubBeam)
				}
				before := w.String()
				w.spawn(level+1, explore)
				c.Calls = append(c.Calls, w.String())
				c.Prompts = append(c.Prompts, prompt)
				c.Spawns = append(c.Spawns, kids)

				w = traceWriter{b: []byte(before)}
				var goal *node
				w.raw("<Sub Searches>\n")
				for i, k := range kids {
					w.joinEntry(k.Solved, i, level+1, explore[i].id)
					if k.Solved {
						writePath(&w, g.target, explore[i], k.goal)
						if goal == nil {
							goal = k.goal
						}
					}
				}
				w.raw("<End Sub Searches>\n")
				prompt = len(w.b)
				if goal != nil {
					w.verdict(goal.nums[0], g.target)
					writePath(&w, g.target, start, goal)
					return finish(goal)
				}
			} else {
				for _, n := range explore {
					heap.Push(open, n)
				}
			}
			if ci+1 < len(current) {
				w.moving(current[ci+1].id)
			}
		}
		if open.Len() > 0 {
			w.moving((*open)[0].id)
		}
	}
	w.raw("No solution found.\n")
	return finish(nil)
}
