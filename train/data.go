package train

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"

	"github.com/braid-dev/braid/internal/parallel"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/tokenizer"
)

// EOS is the token that ends every completion: the model learns to write
// it, and the engine stops a thread at it.
const EOS = "<|end|>"

// Sequence is one model call of a demonstration: the prompt it is given,
// the completion it should write, and the spans of the completion the
// task's environment writes.
type Sequence = task.Demonstration

// Example is a sequence as tokens: Tokens is the prompt, the completion and
// EOS; Learn[i] says whether the model is trained to predict token i (a
// completion token the model writes, or EOS), not given it (the prompt, and
// what the environment writes).
type Example struct {
	Tokens []int32
	Learn  []bool
}

// Len is the number of positions the example occupies in a batch.
func (x *Example) Len() int { return len(x.Tokens) - 1 }

// Traces generates the recipe's sequences from t's demonstrations: the
// training ones, then the validation ones, in a fixed order, on all CPUs.
// t must draw its own problems (task.Generator) and demonstrate their
// solutions (task.Teacher).
func Traces(ctx context.Context, t task.Task, d DataConfig) (trainSeqs, valSeqs []Sequence, err error) {
	gen, ok1 := t.(task.Generator)
	teacher, ok2 := t.(task.Teacher)
	if !ok1 || !ok2 {
		return nil, nil, fmt.Errorf("train: the %s task neither draws problems nor demonstrates their solutions", t.Name())
	}
	type job struct {
		effort string
		index  int // the problem's index in the stream
		val    bool
	}
	var jobs []job
	next := 0
	efforts := []string{task.EffortLight, task.EffortDeep, task.EffortOff}
	for i, n := range []int{d.Serial, d.Parallel, d.Direct} {
		for range n {
			jobs = append(jobs, job{efforts[i], next, false})
			next++
		}
	}
	for _, e := range efforts {
		for range d.Validation {
			jobs = append(jobs, job{e, next, true})
			next++
		}
	}
	problems, err := task.Draw(gen, d.Seed, task.SplitTrain, next)
	if err != nil {
		return nil, nil, err
	}
	err = parallel.Ordered(ctx, len(jobs), runtime.GOMAXPROCS(0), func(i int) ([]Sequence, error) {
		j := jobs[i]
		return teacher.Demonstrate(problems[j.index], j.effort, d.Seed, j.index)
	}, func(i int, seqs []Sequence) error {
		if jobs[i].val {
			valSeqs = append(valSeqs, seqs...)
		} else {
			trainSeqs = append(trainSeqs, seqs...)
		}
		return nil
	})
	return trainSeqs, valSeqs, err
}

// TrainTokenizer learns a vocabulary from the sequences' text, each
// environment span and each stretch the model writes a document of its own,
// so that no token spans a boundary between the two.
func TrainTokenizer(ctx context.Context, seqs []Sequence, vocab int) (*tokenizer.Tokenizer, error) {
	docs := func(yield func(string) bool) {
		for _, s := range seqs {
			if !yield(s.Prompt) {
				return
			}
			at := 0
			for _, sp := range s.Env {
				if !yield(s.Completion[at:sp.Start]) || !yield(s.Completion[sp.Start:sp.End]) {
					return
				}
				at = sp.End
			}
			if !yield(s.Completion[at:]) {
				return
			}
		}
	}
	return tokenizer.Train(ctx, docs, vocab, []string{EOS})
}

// Encode turns a sequence into an example. The environment's spans must
// fall on token boundaries, which byte-level BPE guarantees where the
// pre-tokenizer cuts (between digits and punctuation, before a line's first
// word): the engine then feeds the environment's text as the very tokens
// the model was trained on.
func Encode(tok *tokenizer.Tokenizer, s Sequence) (Example, error) {
	eos, ok := tok.SpecialID(EOS)
	if !ok {
		return Example{}, fmt.Errorf("train: the tokenizer has no %s token", EOS)
	}
	spans := s.Env
	prompt := tok.EncodeOrdinary(s.Prompt)
	completion := tok.EncodeOrdinary(s.Completion)
	x := Example{Tokens: make([]int32, 0, len(prompt)+len(completion)+1), Learn: make([]bool, 0, len(prompt)+len(completion)+1)}
	for _, t := range prompt {
		x.Tokens, x.Learn = append(x.Tokens, int32(t)), append(x.Learn, false)
	}
	at, sp := 0, 0
	for _, t := range completion {
		n := len(tok.DecodeBytes([]int{t}))
		start, end := at, at+n
		at = end
		for sp < len(spans) && spans[sp].End <= start {
			sp++
		}
		env := false
		if sp < len(spans) && spans[sp].Start < end {
			if start < spans[sp].Start || end > spans[sp].End {
				return Example{}, fmt.Errorf("train: token %q crosses the environment span at bytes %d-%d", tok.Decode([]int{t}), spans[sp].Start, spans[sp].End)
			}
			env = true
		}
		x.Tokens, x.Learn = append(x.Tokens, int32(t)), append(x.Learn, !env)
	}
	x.Tokens, x.Learn = append(x.Tokens, int32(eos)), append(x.Learn, true)
	return x, nil
}

// microBatch is a set of examples padded to one length.
type microBatch struct {
	examples []int // indices into the example set
	T        int
}

// schedule cuts one epoch of examples into micro-batches: the examples in
// an order drawn from (seed, epoch), grouped by length within windows so
// that little is padding, rows padded to a multiple of 16 (at most maxT),
// at most maxTokens positions each, the micro-batches themselves in a drawn
// order.
func schedule(examples []Example, seed uint64, epoch int, maxTokens, maxT int) []microBatch {
	rng := rand.New(rand.NewPCG(seed, uint64(epoch)+1))
	order := rng.Perm(len(examples))
	const window = 512
	var batches []microBatch
	for w := 0; w < len(order); w += window {
		win := order[w:min(len(order), w+window)]
		slices.SortStableFunc(win, func(a, b int) int { return cmp.Compare(examples[a].Len(), examples[b].Len()) })
		var cur microBatch
		for _, i := range win {
			T := min(roundUp(examples[i].Len(), 16), maxT)
			if len(cur.examples) > 0 && (len(cur.examples)+1)*max(T, cur.T) > maxTokens {
				batches = append(batches, cur)
				cur = microBatch{}
			}
			cur.examples = append(cur.examples, i)
			cur.T = max(cur.T, T)
		}
		if len(cur.examples) > 0 {
			batches = append(batches, cur)
		}
	}
	rng.Shuffle(len(batches), func(i, j int) { batches[i], batches[j] = batches[j], batches[i] })
	return batches
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }

// fill writes a micro-batch's inputs and targets: row b holds example b's
// tokens but the last, and the target at each position is the next token
// where the model learns it, -1 elsewhere and in the padding. It returns
// the number of targets.
func fill(examples []Example, mb microBatch, pad int, tokens, targets []int) int {
	n := 0
	for b, i := range mb.examples {
		x := &examples[i]
		row, tgt := tokens[b*mb.T:(b+1)*mb.T], targets[b*mb.T:(b+1)*mb.T]
		for j := range mb.T {
			row[j], tgt[j] = pad, -1
			if j < x.Len() {
				row[j] = int(x.Tokens[j])
				if x.Learn[j+1] {
					tgt[j] = int(x.Tokens[j+1])
					n++
				}
			}
		}
	}
	return n
}
