// Package countdown is the Countdown task: problems, an exhaustive solver,
// answer and trace verifiers, and the search-trace generators braid trains
// its models on.
//
// # Problems
//
// Reach a target using every given number exactly once with +, *,
// larger-minus-smaller and exact division larger/smaller (intermediate results
// are whole numbers, never negative). The standard distribution, as in the
// public Stream-of-Search and APR work: a target uniform in 10..100 and four
// numbers uniform in 1..99, redrawn until the target can be reached.
// [SplitOf] assigns every problem to train or test by a hash of its sorted
// numbers and target, so the splits are disjoint whatever the seeds.
// Validation problems are test-split problems of a stream of their own,
// none among the first [ValidationReserve] test problems of their seed:
// what a training run is tuned and stopped on, apart from what it is
// measured on.
// [UnsolvableProblems] draws the same way but keeps the targets that
// cannot be reached: problems whose right ending is "No solution found.".
//
// # Answers
//
// An answer is an arithmetic expression such as 26+(53/(31+22)).
// [VerifyAnswer] accepts it when it uses every number exactly once, written
// in ASCII digits, only + - * / and parentheses, and its exact rational value
// equals the target.
//
// # Traces
//
// A trace is a serialized search, byte-compatible with the public SoS+ and
// APR generators (numbers are examples):
//
//	Current State: 27:[22, 26, 31, 53], Operations: []
//	Exploring Operation: 53-22=31, Resulting Numbers: [26, 31, 31]
//	Generated Node #0,1: 27:[26, 31, 31] Operation: 53-22=31
//	Moving to Node #0,1
//	26,27 unequal: No Solution
//	27,27 equal: Goal Reached
//
// Node ids are comma paths from the root #0. A serial (SoS+) trace starts
// with the root's Current State and may search a node's successors in inline
// sub searches ("Start Sub Search at level 1: Moving to Node #0,1" ...
// "Exit Sub Search at level 1", then "No solution found in sub search" when it
// failed). After the first "Goal Reached" the solution path is replayed from
// "Moving to Node #0" down to a second "Goal Reached"; an exhausted search
// ends with "No solution found.".
//
// A parallel (APR) thread starts with "Moving to Node #id" and its Current
// State. The root may end a call by spawning one child per node it just
// generated:
//
//	<Calling Sub Searches>
//	<Start Sub Search 0 at level 1> Moving to Node #0,0
//	<Start Sub Search 1 at level 1> Moving to Node #0,1
//	<End Calling Sub Searches>
//
// Each child is given only "Moving to Node #0,1" and that node's Current
// State, and searches serially. The runtime then resumes the parent with the
// spawn block replaced by the join:
//
//	<Sub Searches>
//	<No Solution in Sub Search 0 at level 1 at Node #0,0>
//	<Goal Reached in Sub Search 1 at level 1 at Node #0,1>
//	Moving to Node #0,1
//	... (the child's solution path, ending) 27,27 equal: Goal Reached
//	<End Sub Searches>
//
// and, when a child reached the goal, the parent writes "27,27 equal: Goal
// Reached" and the solution path from the root.
//
// [ParseTrace] turns trace text into a [Trace] (the tree of named states,
// spawn and join blocks, the outcome); [VerifyTrace] also checks it against a
// problem and reports the first wrong line as a [*TraceError].
//
// # The environment
//
// [Env] follows a thread's text as a model writes it and writes, itself,
// what the search state determines: after "Exploring Operation: a-b=" the
// result, the resulting numbers and the verdict line; after a move the
// node's Current State; after the goal the solution path and the Exit Sub
// Search lines; after a join that brought the goal, the Goal Reached line
// and the path from the root: most of a trace's bytes. The
// model writes the choices: the operations, the moves, sub searches, spawn
// blocks, giving up. [Env.Choices] lists what the model may legally write
// next (for constrained decoding), [EnvSpans] marks the environment's parts
// of a generated trace (which training masks from the loss). [RootPrompt],
// [Spawned], [ChildPrompt], [Join] and [Answer] are the runtime's side of
// the spawn/join protocol.
//
// # Headers: budgets and braid's modes
//
// APR's budget prefixes are glued to a root trace's first line:
// "Token Budget: {b} " (serial: the tokens the search may use) and
// "Sub Call Budget: {n} " (parallel: the child threads it may spawn).
//
// braid adds a hybrid-thinking mode line before the root trace, so one model
// can answer in three ways:
//
//	Mode: direct     the solution path alone, no search (replay format)
//	Mode: serial     one thread searches (SoS+)
//	Mode: parallel   the root may spawn child searches (APR)
//
// For example "Mode: parallel\nSub Call Budget: 4 Moving to Node #0\n...".
// [Header] writes and [SplitHeader] reads them; the trace verifier accepts
// them. Child threads carry no header.
package countdown
