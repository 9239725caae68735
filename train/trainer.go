package train

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/braid-dev/braid/internal/atomicfile"
	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/model/safetensors"
	"github.com/braid-dev/braid/tokenizer"
)

// Files of a run directory.
const (
	CheckpointDir = "checkpoint" // the latest checkpoint: a model directory the engine opens, plus the optimizer and the run's state
	LogFile       = "log.csv"    // one row per logged step
	CurveFile     = "loss.svg"   // the loss curve
	optimizerFile = "optimizer.safetensors"
	stateFile     = "state.json"
	tokenizerFile = model.TokenizerFile
)

// State is where a run stands, saved with each checkpoint.
type State struct {
	Step    int     `json:"step"`  // optimizer steps done
	Epoch   int     `json:"epoch"` // the epoch the next micro-batch comes from
	Batch   int     `json:"batch"` // micro-batches of that epoch used
	Tokens  int64   `json:"tokens"`
	Seconds float64 `json:"seconds"` // training time, excluding validation and checkpoints
	Recipe  string  `json:"recipe"`  // the recipe's hash: a run resumes only with its own recipe
}

// Point is one logged step.
type Point struct {
	Step     int
	Loss     float64
	ValLoss  float64 // NaN when not measured at this step
	LR       float64
	GradNorm float64
	Tokens   int64
	Seconds  float64
}

// Trainer runs one training run in a directory.
type Trainer struct {
	recipe *Recipe
	dir    string
	Model  *model.Model
	Tok    *tokenizer.Tokenizer
	train  []Example
	val    []Example
	opt    *adamW
	grads  *model.Params
	acts   *model.Activations
	state  State
	log    []Point
	epoch  []microBatch // the current epoch's schedule
	// Progress receives a line per logged step.
	Progress io.Writer

	pad             int // the token padding fills rows with
	tokens, targets []int
}

// Hash identifies a recipe.
func (r *Recipe) Hash() string {
	c := *r
	c.Train.Precision = c.Train.Precision.canonical()
	b, _ := json.Marshal(c)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// NewTrainer prepares a run in dir from its recipe, its tokenizer and its
// examples; it resumes from the checkpoint there if there is one, else
// starts from start's weights (nil: random ones; a tensor the run's model
// has and start lacks, such as a new indexer, starts random too).
func NewTrainer(r *Recipe, dir string, tok *tokenizer.Tokenizer, trainSet, valSet []Example, start *model.Model) (*Trainer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	pad, ok := tok.SpecialID(EOS)
	if !ok {
		return nil, fmt.Errorf("train: the tokenizer has no %s token", EOS)
	}
	return newTrainer(r, dir, tok.VocabSize(), pad, tok, trainSet, valSet, start)
}

// newTrainer is NewTrainer for a vocabulary and padding token; without a
// directory it neither resumes nor checkpoints (a benchmark).
func newTrainer(r *Recipe, dir string, vocab, pad int, tok *tokenizer.Tokenizer, trainSet, valSet []Example, start *model.Model) (*Trainer, error) {
	if len(trainSet) == 0 {
		return nil, errors.New("train: no training examples (are they all longer than the model's max_seq?)")
	}
	for i, x := range trainSet {
		if x.Len() < 1 || x.Len() > r.Model.MaxSeq {
			return nil, fmt.Errorf("train: example %d has %d positions; the model takes 1 to %d", i, x.Len(), r.Model.MaxSeq)
		}
	}
	for i, x := range valSet {
		if x.Len() < 1 || x.Len() > r.Model.MaxSeq {
			return nil, fmt.Errorf("train: validation example %d has %d positions; the model takes 1 to %d", i, x.Len(), r.Model.MaxSeq)
		}
	}
	c := r.modelConfig(vocab)
	m, err := model.New(c)
	if err != nil {
		return nil, err
	}
	r.Train.Precision.Apply(m)
	m.Sparse = r.Train.Sparse
	t := &Trainer{recipe: r, dir: dir, Model: m, Tok: tok, pad: pad, train: trainSet, val: valSet,
		grads: model.NewParams(c), state: State{Recipe: r.Hash()}}
	t.opt = newAdamW(m.Params, r.Train)
	if r.Train.Objective == ObjectiveIndex {
		t.opt.freeze(m.Params, model.Tensor.Indexer)
	}
	t.acts = m.NewActivationsCap(r.Train.MicroTokens, c.MaxSeq)
	t.tokens, t.targets = make([]int, r.Train.MicroTokens), make([]int, r.Train.MicroTokens)
	resumed := false
	if dir != "" {
		if resumed, err = t.resume(); err != nil {
			return nil, err
		}
	}
	if !resumed {
		m.Params.Init(rand.New(rand.NewPCG(r.Train.Seed, 0x5eed)), r.Model.InitStd)
		if start != nil {
			if err := startFrom(m, start); err != nil {
				return nil, err
			}
		}
	}
	t.epoch = schedule(t.train, r.Train.Seed, t.state.Epoch, r.Train.MicroTokens, c.MaxSeq)
	return t, nil
}

// startFrom copies start's weights into m, tensor by tensor: every one of
// start's must be m's, of the same shape.
func startFrom(m, start *model.Model) error {
	into := map[string][]float32{}
	for _, ts := range m.Params.Tensors() {
		into[ts.Name] = ts.Data
	}
	for _, ts := range start.Params.Tensors() {
		dst, ok := into[ts.Name]
		if !ok || len(dst) != len(ts.Data) {
			return fmt.Errorf("train: the starting model's %s (shape %v) is not the recipe's model's", ts.Name, ts.Shape)
		}
		copy(dst, ts.Data)
	}
	return nil
}

// State is where the run stands.
func (t *Trainer) State() State { return t.state }

// Log is the logged steps so far.
func (t *Trainer) Log() []Point { return t.log }

// next returns the next micro-batch, moving to a new epoch when one ends.
func (t *Trainer) next() microBatch {
	if t.state.Batch >= len(t.epoch) {
		t.state.Epoch++
		t.state.Batch = 0
		t.epoch = schedule(t.train, t.recipe.Train.Seed, t.state.Epoch, t.recipe.Train.MicroTokens, t.Model.Config.MaxSeq)
	}
	mb := t.epoch[t.state.Batch]
	t.state.Batch++
	return mb
}

// Step runs one optimizer step and returns its loss and gradient norm.
func (t *Trainer) Step() (loss, gradNorm float64, err error) {
	rt := t.recipe.Train
	start := time.Now()
	mbs := make([]microBatch, rt.MicroBatches)
	total := 0
	counts := make([]int, len(mbs))
	for i := range mbs {
		mbs[i] = t.next()
		counts[i] = t.weight(t.train, mbs[i])
		total += counts[i]
	}
	t.grads.Zero()
	pad := t.pad
	for i, mb := range mbs {
		B := len(mb.examples)
		n := B * mb.T
		fill(t.train, mb, pad, t.tokens[:n], t.targets[:n])
		if err := t.acts.Reshape(B, mb.T); err != nil {
			return 0, 0, err
		}
		if counts[i] == 0 {
			continue
		}
		w := float64(counts[i]) / float64(total)
		l, err := t.forwardBackward(t.tokens[:n], t.targets[:n], float32(w))
		if err != nil {
			return 0, 0, err
		}
		loss += w * float64(l)
		for _, x := range mb.examples {
			t.state.Tokens += int64(t.train[x].Len())
		}
	}
	gradNorm = clipNorm(t.grads.Data(), rt.Clip)
	lr := learningRate(rt, t.state.Step)
	t.opt.update(t.Model.Params.Data(), t.grads.Data(), lr)
	t.state.Step++
	t.state.Seconds += time.Since(start).Seconds()
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, gradNorm, fmt.Errorf("train: the loss is %g at step %d", loss, t.state.Step)
	}
	return loss, gradNorm, nil
}

// weight is what micro-batch mb weighs in its step's loss: its learned
// tokens, or for the indexer's objective its positions (the indexer
// learns at every one).
func (t *Trainer) weight(examples []Example, mb microBatch) int {
	n := 0
	for _, x := range mb.examples {
		if t.recipe.Train.Objective == ObjectiveIndex {
			n += examples[x].Len()
			continue
		}
		for _, l := range examples[x].Learn[1:] {
			if l {
				n++
			}
		}
	}
	return n
}

// forwardBackward runs the activations' batch forward and returns its loss,
// adding w times its gradient into t.grads: the language model's loss and
// gradient, the indexer's beside them for a sparse model, or the indexer's
// alone for its objective.
func (t *Trainer) forwardBackward(tokens, targets []int, w float32) (float32, error) {
	m, rt := t.Model, t.recipe.Train
	if rt.Objective == ObjectiveIndex {
		if _, err := m.Forward(t.acts, tokens, nil); err != nil {
			return 0, err
		}
		return m.IndexerLoss(t.acts, t.grads, w)
	}
	l, err := m.Forward(t.acts, tokens, targets)
	if err != nil {
		return 0, err
	}
	if rt.Sparse {
		if _, err := m.IndexerLoss(t.acts, t.grads, w); err != nil {
			return 0, err
		}
	}
	return l, m.BackwardScaled(t.acts, t.grads, w)
}

// ValidationLoss is the mean loss over the validation examples' learned
// tokens (for the indexer's objective, its loss over their positions).
func (t *Trainer) ValidationLoss() (float64, error) {
	if len(t.val) == 0 {
		return math.NaN(), nil
	}
	pad := t.pad
	var sum float64
	var count int
	for _, mb := range schedule(t.val, 0, 0, t.recipe.Train.MicroTokens, t.Model.Config.MaxSeq) {
		B := len(mb.examples)
		n := B * mb.T
		fill(t.val, mb, pad, t.tokens[:n], t.targets[:n])
		k := t.weight(t.val, mb)
		if k == 0 {
			continue
		}
		if err := t.acts.Reshape(B, mb.T); err != nil {
			return 0, err
		}
		l, err := t.Model.Forward(t.acts, t.tokens[:n], t.targets[:n])
		if err != nil {
			return 0, err
		}
		if t.recipe.Train.Objective == ObjectiveIndex {
			if l, err = t.Model.IndexerLoss(t.acts, nil, 1); err != nil {
				return 0, err
			}
		}
		sum += float64(l) * float64(k)
		count += k
	}
	return sum / float64(count), nil
}

// Run trains until the recipe's last step or until ctx is done, logging,
// validating and checkpointing as the recipe says; a cancelled run saves a
// checkpoint first, so nothing is lost.
func (t *Trainer) Run(ctx context.Context) error {
	for t.state.Step < t.recipe.Train.Steps {
		if ctx.Err() != nil {
			if t.dir != "" {
				if err := t.Checkpoint(); err != nil {
					return err
				}
			}
			return ctx.Err()
		}
		if err := t.advance(); err != nil {
			return err
		}
	}
	return nil
}

// advance runs one step and logs, validates and checkpoints when the
// recipe says so.
func (t *Trainer) advance() error {
	rt := t.recipe.Train
	before := t.state
	started := time.Now()
	loss, norm, err := t.Step()
	if err != nil {
		return err
	}
	step := t.state.Step
	last := step == rt.Steps
	if step%rt.LogEvery == 0 || last || step%rt.EvalEvery == 0 {
		p := Point{Step: step, Loss: loss, ValLoss: math.NaN(), LR: learningRate(rt, step-1), GradNorm: norm, Tokens: t.state.Tokens, Seconds: t.state.Seconds}
		if step%rt.EvalEvery == 0 || last {
			if p.ValLoss, err = t.ValidationLoss(); err != nil {
				return err
			}
		}
		t.log = append(t.log, p)
		if t.Progress != nil {
			rate := float64(t.state.Tokens-before.Tokens) / math.Max(1e-9, t.state.Seconds-before.Seconds)
			eta := time.Duration(float64(rt.Steps-step) * t.state.Seconds / float64(step) * float64(time.Second))
			val := ""
			if !math.IsNaN(p.ValLoss) {
				val = fmt.Sprintf(" val %.4f", p.ValLoss)
			}
			fmt.Fprintf(t.Progress, "step %d/%d loss %.4f%s lr %.2e grad %.2f %.0f tok/s %s/step ETA %s\n",
				step, rt.Steps, loss, val, p.LR, norm, rate, time.Since(started).Round(time.Millisecond), eta.Round(time.Second))
		}
	}
	if t.dir != "" && (step%rt.CheckpointEvery == 0 || last) {
		return t.Checkpoint()
	}
	return nil
}

// Checkpoint saves the run: the model (a directory the engine opens), the
// optimizer, the state, the log and the loss curve. The checkpoint
// directory is replaced whole, so a kill at any moment leaves the last
// complete one.
func (t *Trainer) Checkpoint() error {
	eos, _ := t.Tok.SpecialID(EOS)
	err := writeCheckpoint(t.dir, t.Model, t.Tok, eos, t.opt, t.state, func(tmp string) error {
		// The log goes with the checkpoint, so that a resumed run has
		// every row up to its step; the copy beside it is for people.
		return t.writeLog(filepath.Join(tmp, LogFile))
	})
	if err != nil {
		return err
	}
	if err := t.writeLog(filepath.Join(t.dir, LogFile)); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(t.dir, CurveFile), lossCurve(t.log))
}

// writeCheckpoint replaces dir's checkpoint whole: a model directory the
// engine opens (the weights, the configuration with its end-of-sequence
// token, the tokenizer), the optimizer's moments, the state as JSON, and
// whatever extra writes into the new directory. It is written beside the
// old one and swapped in, so a kill at any moment leaves the last complete
// checkpoint.
func writeCheckpoint(dir string, m *model.Model, tok *tokenizer.Tokenizer, eos int, opt *adamW, state any, extra func(tmp string) error) error {
	tmp := filepath.Join(dir, CheckpointDir+".new")
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := writeModelDir(tmp, m, tok, eos); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := safetensors.WriteFile(filepath.Join(tmp, optimizerFile), []safetensors.Tensor{
		{Name: "m", Shape: []int{len(opt.m)}, Data: opt.m},
		{Name: "v", Shape: []int{len(opt.v)}, Data: opt.v},
	}, map[string]string{"step": strconv.Itoa(opt.step)}); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	st, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, stateFile), append(st, '\n')); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := extra(tmp); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	cur, old := filepath.Join(dir, CheckpointDir), filepath.Join(dir, CheckpointDir+".old")
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Rename(cur, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Rename(tmp, cur); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// writeModelDir writes m into dir as a model directory the engine opens:
// the weights, the configuration with its end-of-sequence token, the
// tokenizer.
func writeModelDir(dir string, m *model.Model, tok *tokenizer.Tokenizer, eos int) error {
	if err := m.Save(dir); err != nil {
		return err
	}
	hc := m.Config.HFConfig()
	hc.EOSTokenIDs = []int{eos}
	if err := hc.Save(filepath.Join(dir, model.ConfigFile)); err != nil {
		return err
	}
	return tok.Save(filepath.Join(dir, tokenizerFile))
}

// resume loads the checkpoint in the run directory, if any.
func (t *Trainer) resume() (bool, error) {
	dir, ok := latestCheckpoint(t.dir)
	if !ok {
		return false, nil
	}
	var st State
	if err := readState(dir, &st); err != nil {
		return false, err
	}
	if st.Recipe != t.state.Recipe {
		return false, fmt.Errorf("resume: %s was made by another recipe (hash %s, this one %s); use a new directory", t.dir, st.Recipe, t.state.Recipe)
	}
	if err := loadCheckpoint(dir, t.Model, t.opt); err != nil {
		return false, err
	}
	t.state = st
	logPath := filepath.Join(dir, LogFile)
	if _, err := os.Stat(logPath); err != nil {
		logPath = filepath.Join(t.dir, LogFile) // a checkpoint from before the log moved in
	}
	var err error
	t.log, err = readLog(logPath, st.Step)
	return true, err
}

// latestCheckpoint is the run's last complete checkpoint directory, if it
// has one.
func latestCheckpoint(run string) (string, bool) {
	dir := filepath.Join(run, CheckpointDir)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		// A kill between the two renames of writeCheckpoint leaves only
		// the previous checkpoint, under its old name.
		old := filepath.Join(run, CheckpointDir+".old")
		if _, err := os.Stat(old); err != nil {
			return "", false
		}
		dir = old
	}
	return dir, true
}

// readState decodes a checkpoint's state into v.
func readState(dir string, v any) error {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("resume %s: %w", dir, err)
	}
	return nil
}

// loadCheckpoint reads a checkpoint's weights into m, which must have its
// shape, and its optimizer's moments and step into opt.
func loadCheckpoint(dir string, m *model.Model, opt *adamW) error {
	saved, err := model.Load(dir)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	if saved.Config != m.Config {
		return fmt.Errorf("resume: the checkpoint's model is %+v, this run's %+v", saved.Config, m.Config)
	}
	copy(m.Params.Data(), saved.Params.Data())
	f, err := safetensors.Open(filepath.Join(dir, optimizerFile))
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	for name, dst := range map[string][]float32{"m": opt.m, "v": opt.v} {
		src, err := f.Float32(name)
		if err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		if len(src) != len(dst) {
			return fmt.Errorf("resume: optimizer %s has %d values, the model %d", name, len(src), len(dst))
		}
		copy(dst, src)
	}
	if opt.step, err = strconv.Atoi(f.Metadata()["step"]); err != nil {
		return fmt.Errorf("resume: optimizer step: %w", err)
	}
	return nil
}

func (t *Trainer) writeLog(path string) error {
	f, err := atomicfile.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"step", "loss", "val_loss", "lr", "grad_norm", "tokens", "seconds"})
	for _, p := range t.log {
		_ = w.Write([]string{strconv.Itoa(p.Step), fmtFloat(p.Loss), fmtFloat(p.ValLoss), fmtFloat(p.LR), fmtFloat(p.GradNorm),
			strconv.FormatInt(p.Tokens, 10), fmtFloat(p.Seconds)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

func fmtFloat(x float64) string {
	if math.IsNaN(x) {
		return ""
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

// readLog reads the log rows up to step: rows after the checkpoint were
// logged by a run that was killed before saving them.
func readLog(path string, upTo int) ([]Point, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var out []Point
	for _, r := range rows[min(1, len(rows)):] {
		if len(r) != 7 {
			return nil, fmt.Errorf("read %s: a row of %d fields", path, len(r))
		}
		var p Point
		num := func(s string) float64 {
			if s == "" {
				return math.NaN()
			}
			v, e := strconv.ParseFloat(s, 64)
			if e != nil {
				err = e
			}
			return v
		}
		p.Step = int(num(r[0]))
		p.Loss, p.ValLoss, p.LR, p.GradNorm = num(r[1]), num(r[2]), num(r[3]), num(r[4])
		p.Tokens, p.Seconds = int64(num(r[5])), num(r[6])
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if p.Step <= upTo {
			out = append(out, p)
		}
	}
	return out, nil
}

// Bench trains on examples for warm steps, then times steps more, without
// checkpoints, and returns the tokens per second of the timed steps.
func Bench(ctx context.Context, r *Recipe, vocab int, examples []Example, warm, steps int) (float64, error) {
	t, err := newTrainer(r, "", vocab, 0, nil, examples, nil, nil)
	if err != nil {
		return 0, err
	}
	t.Model.Params.Init(rand.New(rand.NewPCG(1, 1)), r.Model.InitStd)
	for i := range warm + steps {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if i == warm {
			t.state.Tokens, t.state.Seconds = 0, 0
		}
		if _, _, err := t.Step(); err != nil {
			return 0, err
		}
	}
	return float64(t.state.Tokens) / t.state.Seconds, nil
}

// Export writes the model directory at checkpoint (a run's CheckpointDir)
// to dir for shipping: the weights as dtype (F16 halves the size), the
// config with its end-of-sequence tokens and the dtype, the tokenizer.
// Files already in dir (a model card, the recipe) stay. Positive positions
// set the context the shipped model runs at (max_position_embeddings),
// which may exceed the one it was trained at; 0 keeps the trained context.
func Export(checkpoint, dir string, dtype safetensors.DType, positions int) error {
	if positions < 0 {
		return fmt.Errorf("export: a context of %d positions; want 0 (the trained context) or more", positions)
	}
	m, err := model.Load(checkpoint)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if positions > 0 {
		m.Config.MaxSeq = positions
	}
	tok, err := os.ReadFile(filepath.Join(checkpoint, tokenizerFile))
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := m.SaveAs(dir, dtype); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	out := m.Config.HFConfig()
	out.EOSTokenIDs = m.EOS
	torch := map[safetensors.DType]string{safetensors.F32: "float32", safetensors.F16: "float16"}[dtype]
	if err := out.SaveAs(filepath.Join(dir, model.ConfigFile), torch); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, tokenizerFile), tok)
}
