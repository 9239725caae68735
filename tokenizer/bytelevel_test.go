package tokenizer

import "testing"

func TestByteRune(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    byte
		r    rune
	}{
		{"NUL is the first unprintable", 0x00, 'Ā'},
		{"newline", '\n', 'Ċ'},
		{"tab", '\t', 'ĉ'},
		{"space", ' ', 'Ġ'},
		{"printable ASCII is itself", '!', '!'},
		{"tilde", '~', '~'},
		{"DEL", 0x7F, 'ġ'},
		{"NBSP", 0xA0, 'ł'},
		{"inverted exclamation is itself", 0xA1, '¡'},
		{"soft hyphen is the last unprintable", 0xAD, 'Ń'},
		{"registered sign is itself", 0xAE, '®'},
		{"0xFF is itself", 0xFF, 'ÿ'},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := byteRune[tc.b]; got != tc.r {
				t.Errorf("byteRune[0x%02x] = %q (U+%04X), want %q (U+%04X)", tc.b, got, got, tc.r, tc.r)
			}
			if got := runeByte[tc.r]; got != int16(tc.b) {
				t.Errorf("runeByte[%q] = %d, want 0x%02x", tc.r, got, tc.b)
			}
		})
	}
}

func TestByteAlphabetIsBijective(t *testing.T) {
	seen := make(map[rune]bool)
	for b, r := range byteRune {
		if seen[r] {
			t.Fatalf("rune %q stands for two bytes", r)
		}
		seen[r] = true
		if r >= maxByteRune || runeByte[r] != int16(b) {
			t.Fatalf("byte 0x%02x maps to %q, which does not map back", b, r)
		}
	}
	if len(seen) != 256 {
		t.Errorf("%d runes, want 256", len(seen))
	}
	mapped := 0
	for _, b := range runeByte {
		if b >= 0 {
			mapped++
		}
	}
	if mapped != 256 {
		t.Errorf("runeByte maps %d runes, want 256", mapped)
	}
}

func TestByteOrder(t *testing.T) {
	// GPT-2's vocab gives '!' the id 0, 'ÿ' 187, NUL 188 and ' ' 220.
	for _, tc := range []struct {
		id int
		b  byte
	}{{0, '!'}, {93, '~'}, {187, 0xFF}, {188, 0x00}, {220, ' '}, {255, 0xAD}} {
		if byteOrder[tc.id] != tc.b {
			t.Errorf("byteOrder[%d] = 0x%02x, want 0x%02x", tc.id, byteOrder[tc.id], tc.b)
		}
	}
	seen := make(map[byte]bool)
	for _, b := range byteOrder {
		seen[b] = true
	}
	if len(seen) != 256 {
		t.Errorf("byteOrder holds %d distinct bytes, want 256", len(seen))
	}
}

func TestRawBytes(t *testing.T) {
	for _, tc := range []struct {
		name, token, raw string
		ok               bool
	}{
		{"word with a space", "Ġhello", " hello", true},
		{"newlines", "ĊĊ", "\n\n", true},
		{"UTF-8 bytes of é", "Ã©", "é", true},
		{"a rune outside the alphabet stands for itself", "<|im start|>", "<|im start|>", false},
		{"CJK is outside the alphabet", "日本", "日本", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, ok := rawBytes(tc.token)
			if raw != tc.raw || ok != tc.ok {
				t.Errorf("rawBytes(%q) = %q, %t; want %q, %t", tc.token, raw, ok, tc.raw, tc.ok)
			}
			if ok && byteLevel(raw) != tc.token {
				t.Errorf("byteLevel(%q) = %q, want %q", raw, byteLevel(raw), tc.token)
			}
		})
	}
}
