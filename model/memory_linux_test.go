package model

import "testing"

func TestParseMemAvailable(t *testing.T) {
	for _, tt := range []struct {
		name    string
		meminfo string
		want    int64
		wantOK  bool
	}{
		{"kernel text", "MemTotal:       24576000 kB\nMemFree:        20000000 kB\nMemAvailable:   21000000 kB\nBuffers:           12345 kB\n", 21000000 * 1024, true},
		{"last line without newline", "MemTotal: 2 kB\nMemAvailable: 1 kB", 1024, true},
		{"no MemAvailable (kernels before 3.14)", "MemTotal: 2 kB\nMemFree: 1 kB\n", 0, false},
		{"another unit", "MemAvailable: 1 MB\n", 0, false},
		{"not a number", "MemAvailable: lots kB\n", 0, false},
		{"negative", "MemAvailable: -1 kB\n", 0, false},
		{"overflows in bytes", "MemAvailable: 9223372036854775807 kB\n", 0, false},
		{"empty", "", 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseMemAvailable([]byte(tt.meminfo))
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseMemAvailable() = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
