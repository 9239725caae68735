package train

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/model/hfconfig"
	"github.com/braid-dev/braid/model/safetensors"
	"github.com/braid-dev/braid/task/countdown"
)

func tinyRecipe() *Recipe {
	return &Recipe{
		Data:      DataConfig{Seed: 3, Serial: 12, Parallel: 6, Direct: 12, Validation: 2},
		Tokenizer: TokenizerConfig{Vocab: 300, Sample: 20},
		Model:     ModelConfig{Dim: 32, Hidden: 48, Layers: 2, Heads: 4, KVHeads: 2, MaxSeq: 1024, RopeTheta: 10000, Tied: true, InitStd: 0.05},
		Train: TrainConfig{Seed: 5, Steps: 8, MicroTokens: 2048, MicroBatches: 2, LR: 3e-3, MinLR: 3e-4, Warmup: 2,
			WeightDecay: 0.1, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, Clip: 1, CheckpointEvery: 3, EvalEvery: 4, LogEvery: 1},
	}
}

func tinyData(t *testing.T, r *Recipe) (*Trainer, func(dir string, start ...*model.Model) *Trainer) {
	t.Helper()
	ctx := context.Background()
	trainSeqs, valSeqs, err := Traces(ctx, countdown.Task{}, r.Data)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := TrainTokenizer(ctx, trainSeqs, r.Tokenizer.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	encode := func(seqs []Sequence) []Example {
		var out []Example
		for _, s := range seqs {
			x, err := Encode(tok, s)
			if err != nil {
				t.Fatal(err)
			}
			if x.Len() <= r.Model.MaxSeq {
				out = append(out, x)
			}
		}
		return out
	}
	trainSet, valSet := encode(trainSeqs), encode(valSeqs)
	// open starts or resumes the run in dir, from start's weights if given.
	open := func(dir string, start ...*model.Model) *Trainer {
		var from *model.Model
		if len(start) > 0 {
			from = start[0]
		}
		tr, err := NewTrainer(r, dir, tok, trainSet, valSet, from)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	return nil, open
}

// The indexer's objective trains the indexer alone, from a model's
// weights: every other weight stays the starting model's to the bit, and
// the indexer's divergence from the attention falls.
func TestIndexObjectiveTrainsTheIndexerAlone(t *testing.T) {
	_, openDense := tinyData(t, tinyRecipe())
	start := openDense(t.TempDir()).Model
	r := tinyRecipe()
	r.Model.IndexHeads, r.Model.IndexDim, r.Model.IndexTopK = 2, 8, 64
	r.Train.Objective, r.Train.Steps, r.Train.LR, r.Train.MinLR = ObjectiveIndex, 12, 1e-2, 1e-3
	_, open := tinyData(t, r)
	tr := open(t.TempDir(), start)
	before, err := tr.ValidationLoss()
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	after, err := tr.ValidationLoss()
	if err != nil {
		t.Fatal(err)
	}
	if !(after < 0.9*before) {
		t.Errorf("the indexer's validation KL went from %g to %g", before, after)
	}
	from := map[string][]float32{}
	for _, ts := range start.Params.Tensors() {
		from[ts.Name] = ts.Data
	}
	for _, ts := range tr.Model.Params.Tensors() {
		was, ok := from[ts.Name]
		if ts.Indexer() == ok {
			t.Fatalf("%s: in the starting model %v, an indexer's %v", ts.Name, ok, ts.Indexer())
		}
		if ok && !slices.Equal(was, ts.Data) {
			t.Errorf("%s changed: the index objective trains the indexer alone", ts.Name)
		}
	}
}

// Sparse training runs the model on its indexer's top-k and trains all of
// it: the language model's loss falls, and the indexer learns too.
func TestSparseTrainingTrainsEverything(t *testing.T) {
	r := tinyRecipe()
	r.Model.IndexHeads, r.Model.IndexDim, r.Model.IndexTopK = 2, 8, 16
	r.Train.Sparse = true
	_, open := tinyData(t, r)
	tr := open(t.TempDir())
	if !tr.Model.Sparse {
		t.Fatal("the recipe's sparse model is dense")
	}
	first := slices.Clone(tr.Model.Params.Data())
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if log := tr.Log(); !(log[len(log)-1].Loss < log[0].Loss) {
		t.Errorf("loss from %g to %g", log[0].Loss, log[len(log)-1].Loss)
	}
	off := 0
	for _, ts := range tr.Model.Params.Tensors() {
		if slices.Equal(first[off:off+len(ts.Data)], ts.Data) {
			t.Errorf("%s did not change", ts.Name)
		}
		off += len(ts.Data)
	}
}

// A run stopped at a checkpoint and resumed ends with the very weights and
// loss curve of a run that never stopped.
func TestResumeIsExact(t *testing.T) {
	r := tinyRecipe()
	_, open := tinyData(t, r)
	straight := open(t.TempDir())
	if err := straight.Run(context.Background()); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	first := open(dir)
	for range 4 { // one step past the checkpoint at 3, then a kill: that step is lost
		if err := first.advance(); err != nil {
			t.Fatal(err)
		}
	}
	resumed := open(dir)
	if got := resumed.State().Step; got != 3 {
		t.Fatalf("resumed at step %d, want 3", got)
	}
	if err := resumed.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, v := range straight.Model.Params.Data() {
		if w := resumed.Model.Params.Data()[i]; math.Float32bits(v) != math.Float32bits(w) {
			t.Fatalf("parameter %d is %g after a resume, %g straight", i, w, v)
		}
	}
	a, b := straight.Log(), resumed.Log()
	if len(a) != len(b) {
		t.Fatalf("logs of %d and %d steps", len(a), len(b))
	}
	for i := range a {
		if a[i].Step != b[i].Step || a[i].Loss != b[i].Loss {
			t.Fatalf("log row %d: %+v straight, %+v resumed", i, a[i], b[i])
		}
	}
	// The checkpoint is a model directory, and exports as a shippable one.
	if _, err := model.Load(filepath.Join(dir, CheckpointDir)); err != nil {
		t.Fatal(err)
	}
	ship := t.TempDir()
	if err := Export(filepath.Join(dir, CheckpointDir), ship, safetensors.F16, 2*r.Model.MaxSeq); err != nil {
		t.Fatal(err)
	}
	shipped, err := model.Load(ship)
	if err != nil {
		t.Fatal(err)
	}
	if d := shipped.Params.Data()[7] - straight.Model.Params.Data()[7]; d > 1e-3 || d < -1e-3 {
		t.Errorf("the exported weight 7 is %g off", d)
	}
	hc, err := hfconfig.Load(filepath.Join(ship, model.ConfigFile))
	if err != nil || len(hc.EOSTokenIDs) != 1 || hc.TorchDType != "float16" || hc.MaxPositionEmbeddings != 2*r.Model.MaxSeq {
		t.Errorf("exported config %+v, %v", hc, err)
	}
	if _, err := os.Stat(filepath.Join(ship, "tokenizer.json")); err != nil {
		t.Error(err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, CurveFile))
	if err != nil || !strings.Contains(string(svg), "<polyline") {
		t.Errorf("loss curve: %v\n%.200s", err, svg)
	}
	if first := a[0].Loss; !(a[len(a)-1].Loss < first) {
		t.Errorf("the loss went from %g to %g", first, a[len(a)-1].Loss)
	}
}

func TestResumeRefusesAnotherRecipe(t *testing.T) {
	r := tinyRecipe()
	_, open := tinyData(t, r)
	dir := t.TempDir()
	tr := open(dir)
	if _, _, err := tr.Step(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	r.Train.LR *= 2
	if _, err := NewTrainer(r, dir, tr.Tok, tr.train, tr.val, nil); err == nil || !strings.Contains(err.Error(), "another recipe") {
		t.Errorf("resuming with another recipe: %v", err)
	}
}

func TestEncodeMasksTheEnvironment(t *testing.T) {
	r := tinyRecipe()
	ctx := context.Background()
	seqs, _, err := Traces(ctx, countdown.Task{}, r.Data)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := TrainTokenizer(ctx, seqs, 300)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, s := range seqs {
		x, err := Encode(tok, s)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int, len(x.Tokens))
		var learned strings.Builder
		for i, v := range x.Tokens {
			ids[i] = int(v)
			if x.Learn[i] && i < len(x.Tokens)-1 {
				learned.WriteString(tok.Decode([]int{int(v)}))
			}
		}
		if got := tok.Decode(ids[:len(ids)-1]); got != s.Prompt+s.Completion {
			t.Fatalf("decoded %q", got)
		}
		if !x.Learn[len(x.Learn)-1] {
			t.Error("EOS is not learned")
		}
		l := learned.String()
		for _, env := range []string{"Resulting Numbers", "Current State", "Generated Node"} {
			if strings.Contains(l, env) {
				t.Fatalf("the model is trained to write %q, which the environment writes:\n%s", env, l)
			}
		}
		all.WriteString(l)
	}
	if !strings.Contains(all.String(), "Exploring Operation: ") || !strings.Contains(all.String(), "Moving to Node #") {
		t.Errorf("the model's own text is not learned:\n%.2000s", all.String())
	}
}

func TestLearningRateSchedule(t *testing.T) {
	c := TrainConfig{LR: 1, MinLR: 0.1, Warmup: 10, Steps: 111}
	for _, tc := range []struct {
		step int
		want float64
	}{{0, 0.1}, {9, 1}, {10, 1}, {60, 0.55}, {110, 0.1}} {
		if got := learningRate(c, tc.step); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("step %d: %g, want %g", tc.step, got, tc.want)
		}
	}
}

func TestLoadRecipe(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "r.json")
	os.WriteFile(bad, []byte(`{"data":{"seed":1,"serail":5}}`), 0o644)
	if _, err := LoadRecipe(bad); err == nil || !strings.Contains(err.Error(), "serail") {
		t.Errorf("misspelt field: %v", err)
	}
	os.WriteFile(bad, []byte(`{"data":{"seed":1,"serial":5}}`), 0o644)
	if _, err := LoadRecipe(bad); err == nil || !strings.Contains(err.Error(), "vocab") {
		t.Errorf("missing values: %v", err)
	}
	r := tinyRecipe()
	r.Train.Precision = "fp8"
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), `precision "fp8"`) {
		t.Errorf("an unknown precision: %v", err)
	}
}

// train.precision reaches the model.
func TestPrecisionReachesTheModel(t *testing.T) {
	xs := []Example{{Tokens: make([]int32, 10), Learn: make([]bool, 10)}}
	for _, p := range []Precision{"", PrecisionF32, PrecisionBF16} {
		r := tinyRecipe()
		r.Train.Precision = p
		tr, err := newTrainer(r, "", 300, 0, nil, xs, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Model.BF16 != (p == PrecisionBF16) {
			t.Errorf("precision %q: the model's BF16 is %v", p, tr.Model.BF16)
		}
		// The default spelt out is the same run.
		if same := r.Hash() == tinyRecipe().Hash(); same != (p != PrecisionBF16) {
			t.Errorf("precision %q: the recipe's hash equals the default's: %v", p, same)
		}
	}
}

func TestScheduleFitsTheModel(t *testing.T) {
	var xs []Example
	for n := 990; n <= 1001; n++ {
		xs = append(xs, Example{Tokens: make([]int32, n), Learn: make([]bool, n)})
	}
	for _, mb := range schedule(xs, 1, 0, 1000, 1000) {
		if mb.T > 1000 || len(mb.examples)*mb.T > 1000 {
			t.Fatalf("a micro-batch of %d rows of %d positions; the model takes 1000", len(mb.examples), mb.T)
		}
	}
	r := tinyRecipe()
	if _, err := newTrainer(r, "", 300, 0, nil, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "no training examples") {
		t.Errorf("no examples: %v", err)
	}
	long := []Example{{Tokens: make([]int32, 2000), Learn: make([]bool, 2000)}}
	if _, err := newTrainer(r, "", 300, 0, nil, long, nil, nil); err == nil || !strings.Contains(err.Error(), "1999 positions") {
		t.Errorf("an example over max_seq: %v", err)
	}
}
