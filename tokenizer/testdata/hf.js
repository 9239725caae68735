// Writes testdata/hf.json: how Hugging Face tokenizers (the Rust library,
// through its Node.js bindings) splits and encodes a set of seeded random
// strings, the reference the Go tests compare braid with.
//
//	npm install --prefix /tmp/hf tokenizers@0.23.2
//	NODE_PATH=/tmp/hf/node_modules node tokenizer/testdata/hf.js
//
// Run it again after testdata/trained.json changes.
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

const dir = __dirname;
const patterns = {
  gpt2: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  llama3: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  qwen2: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

// The same derivation as llama3Variant in the Go tests.
function llama3Variant(tj) {
  const v = JSON.parse(JSON.stringify(tj));
  v.pre_tokenizer = {type: 'Sequence', pretokenizers: [
    {type: 'Split', pattern: {Regex: patterns.llama3}, behavior: 'Isolated', invert: false},
    {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false}]};
  v.model.ignore_merges = true;
  return v;
}

// Atoms cover every branch of the patterns: contractions in both cases,
// the long s that (?i) folds to s, letters, digits of several scripts,
// whitespace of every kind, punctuation, emoji, combining marks, and whole
// and partial special tokens.
const atoms = ["'s", "'S", "'re", "'RE", "'Ll", "'ve", "'m", "'d", "'D", "'t", "'ſ", "'", "''",
  " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\u0085", "\v", "\f",
  "a", "Z", "é", "ß", "日本語", "ſ", "İ", "1", "12345", "٣", "½", "Ⅻ", "²", "!", "?!", "...", "😀",
  "👍🏽", "\u200d", "\u0301", "-", "_", "\"", "$", "\u00ad", "\u0000", "\u007f",
  "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|im_", "|>", "<|endoftext|",
  "the", " the", "of", " and", "tokenizer", " naïve", " café", "Привет", " données", "func", " return",
  "hello", "World", "don't", "I'M", "x", "42", " 7", " the the the"];

// A small seeded generator (mulberry32), so the strings are the same on
// every run.
let seed = 20240601;
function rand() {
  seed |= 0; seed = seed + 0x6D2B79F5 | 0;
  let t = Math.imul(seed ^ seed >>> 15, 1 | seed);
  t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t;
  return ((t ^ t >>> 14) >>> 0) / 4294967296;
}
function randomString(maxAtoms) {
  let s = '';
  const n = 1 + Math.floor(rand() * maxAtoms);
  for (let i = 0; i < n; i++) s += atoms[Math.floor(rand() * atoms.length)];
  return s;
}

function fromJSON(tj) {
  return Tokenizer.fromString(JSON.stringify(tj));
}
function splitter(pre) {
  return fromJSON({version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null,
    pre_tokenizer: pre, post_processor: null, decoder: null,
    model: {type: 'BPE', vocab: {a: 0}, merges: []}}).getPreTokenizer();
}

(async () => {
  const out = {pretokenize: {inputs: []}, encode: {inputs: []}};
  for (let i = 0; i < 300; i++) out.pretokenize.inputs.push(randomString(12));
  for (const [name, re] of Object.entries(patterns)) {
    const pt = splitter({type: 'Split', pattern: {Regex: re}, behavior: 'Isolated', invert: false});
    out.pretokenize[name] = out.pretokenize.inputs.map(s => pt.preTokenizeString(s).map(x => x[0]));
  }

  for (let i = 0; i < 200; i++) out.encode.inputs.push(randomString(30));
  const trained = JSON.parse(fs.readFileSync(path.join(dir, 'trained.json')));
  for (const [name, tj] of [['gpt2', trained], ['llama3', llama3Variant(trained)]]) {
    const tok = fromJSON(tj);
    out.encode[name] = [];
    for (const s of out.encode.inputs) {
      const e = await tok.encode(s, null, {addSpecialTokens: false});
      out.encode[name].push(e.getIds());
    }
  }
  fs.writeFileSync(path.join(dir, 'hf.json'), JSON.stringify(out) + '\n');
})();
