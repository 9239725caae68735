// Package tokenizer is byte-level BPE, the tokenizer of the GPT-2, Llama 3
// and Qwen2 families: it encodes text to token ids and back, reads and
// writes Hugging Face tokenizer.json files, and trains new vocabularies.
//
// # Encoding
//
// [Tokenizer.Encode] first finds the added tokens in the text (special ones
// such as "<|endoftext|>" or "<|im_start|>", matched verbatim, leftmost and
// longest first, never split). The text between them is cut into pieces by
// the tokenizer's pattern, each piece's bytes become the 256 byte tokens,
// and BPE merges adjacent tokens, the merge of lowest rank first, until no
// merge applies. [Tokenizer.EncodeOrdinary] skips the special tokens, for
// text that must not contain control tokens. Every byte has a token, so any
// input, valid UTF-8 or not, encodes, and [Tokenizer.DecodeBytes] gives its
// bytes back. Encodings are Hugging Face's, token for token; added tokens
// decode to their text verbatim, as in current Hugging Face versions.
//
// Three patterns are known, each reproduced by a hand-written scanner
// because Go's regexp has no lookahead:
//
//   - GPT-2's, used by a ByteLevel pre-tokenizer with use_regex (and by
//     [Train]): 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   - Llama 3's (tiktoken's cl100k_base): (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   - Qwen2's, the same with \p{N} for \p{N}{1,3}.
//
// # tokenizer.json
//
// [Load] and [Parse] read files whose model is BPE over the byte-level
// alphabet (GPT-2's bytes_to_unicode, all 256 byte tokens in the vocab),
// with merges as "a b" strings or ["a", "b"] pairs, and ignore_merges (Llama
// 3 sets it). The pre_tokenizer must be a ByteLevel (GPT-2's pattern), or a
// Sequence of a Split by one of the known patterns (behavior Isolated) and
// a ByteLevel with use_regex false; the decoder ByteLevel or null. The ids
// of the vocab and the added tokens together must run from 0 to n-1.
//
// Some parts are read but not applied, because they do not change the ids
// Encode returns for the inputs braid gives it: the post_processor (Encode
// adds no BOS; add it yourself), truncation and padding, the unk_token
// (every byte has a token), and an NFC normalizer (Qwen2's), which braid
// keeps and writes back but does not apply, so text must already be in NFC,
// as nearly all text is. Other normalizers, other pre-tokenizers, BPE
// dropout, byte_fallback, subword prefixes and suffixes, and added tokens
// with lstrip, rstrip or single_word are errors that wrap
// errors.ErrUnsupported; a malformed file is an error that does not.
//
// [Tokenizer.Save] writes what Hugging Face tokenizers writes: version 1.0,
// added_tokens, the pre_tokenizer and decoder, and a BPE model with its
// vocab in id order and merges as strings. The tests hold braid to
// encodings that the tokenizers library (its Rust core) gives for a file
// braid wrote, so a trained tokenizer can be used from Python as it is.
//
// # Training
//
// [Train] learns a vocabulary by classic BPE over the pieces of a corpus
// cut by GPT-2's pattern: the 256 byte tokens first, then repeatedly the
// most frequent adjacent pair merged into a new token, then the special
// tokens. Pair counts are updated incrementally through an index from each
// pair to the words that hold it, so a merge costs only the words it
// changes: tens of megabytes train in seconds.
package tokenizer
