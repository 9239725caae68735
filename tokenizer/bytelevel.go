package tokenizer

import (
	"unicode/utf8"
)

// The byte-level alphabet is GPT-2's bytes_to_unicode: every byte stands for
// one printable rune, so that every token of a vocabulary is a printable
// string and no token holds a raw space or control byte. The 188 bytes that
// are printable Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for their own
// code point; the other 68 (controls, space, DEL, the C1 range, NBSP and the
// soft hyphen) stand, in byte order, for U+0100 onwards: ' ' is 'Ġ' (U+0120),
// '\n' is 'Ċ' (U+010A), 0xAD is 'Ń' (U+0143).
//
// These tables are computed once and never written after.
var (
	// byteRune is the rune that stands for each byte.
	byteRune [256]rune
	// byteOrder lists the bytes in bytes_to_unicode order, printable ones
	// first. A trained vocabulary gives byteOrder[i] the id i, as GPT-2's does
	// ('!' is 0, 'Ġ' is 220).
	byteOrder [256]byte
	// runeByte inverts byteRune: the byte a rune below maxByteRune stands
	// for, or -1 where it stands for none.
	runeByte [maxByteRune]int16
)

// maxByteRune bounds the runes of the alphabet: the last one is U+0143.
const maxByteRune = 0x144

func init() {
	printable := func(b int) bool {
		return '!' <= b && b <= '~' || 0xA1 <= b && b <= 0xAC || 0xAE <= b && b <= 0xFF
	}
	for i := range runeByte {
		runeByte[i] = -1
	}
	n, next := 0, rune(0x100)
	for b := range 256 {
		if printable(b) {
			byteRune[b] = rune(b)
			byteOrder[n] = byte(b)
			n++
		}
	}
	for b := range 256 {
		if !printable(b) {
			byteRune[b] = next
			byteOrder[n] = byte(b)
			next++
			n++
		}
	}
	for b, r := range byteRune {
		runeByte[r] = int16(b)
	}
}

// byteLevel returns the byte-level form of raw, as vocabularies spell
// tokens: one alphabet rune for each byte.
func byteLevel(raw string) string {
	buf := make([]byte, 0, 2*len(raw))
	for i := 0; i < len(raw); i++ {
		buf = utf8.AppendRune(buf, byteRune[raw[i]])
	}
	return string(buf)
}

// rawBytes returns the bytes a vocabulary token stands for. ok is false when
// the token holds a rune outside the byte-level alphabet; such a token (a
// special token kept in the vocabulary, say) then stands for its own UTF-8
// bytes, as in Hugging Face's ByteLevel decoder.
func rawBytes(token string) (raw string, ok bool) {
	buf := make([]byte, 0, len(token))
	for _, r := range token {
		if r >= maxByteRune || runeByte[r] < 0 {
			return token, false
		}
		buf = append(buf, byte(runeByte[r]))
	}
	return string(buf), true
}
