package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// hidden stands for a credential in redacted text, as in url.Redacted.
const hidden = "xxxxx"

// Redact hides the credentials in text that holds URLs, such as a
// database address or a backend list: the password of each URL's user,
// and the values of query and fragment parameters whose names say they
// are secret (api_key, token, password, signature, ...). It keeps the
// user, the host, the path and every other parameter, so that two
// different servers or accounts stay told apart. Text with nothing to hide
// comes back unchanged, byte for byte: run ids hash it.
func Redact(text string) string {
	if !strings.Contains(text, "://") {
		return text
	}
	var b strings.Builder
	rest := text
	for {
		i := strings.Index(rest, "://")
		if i < 0 {
			break
		}
		start := i
		for start > 0 && isSchemeByte(rest[start-1]) {
			start--
		}
		// Comma and space end a URL: lists of URLs are joined with them
		// (--backend a,b; a run's "URLS MODEL").
		end := strings.IndexFunc(rest[i+3:], func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
		if end < 0 {
			end = len(rest)
		} else {
			end += i + 3
		}
		b.WriteString(rest[:start])
		b.WriteString(redactURL(rest[start:end]))
		rest = rest[end:]
	}
	b.WriteString(rest)
	return b.String()
}

func isSchemeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}

// redactURL hides the credentials of one URL by editing its text, not by
// parsing and printing it again, which would respell URLs that hold none.
func redactURL(u string) string {
	scheme, rest, _ := strings.Cut(u, "://")
	// The authority ends at the first '/', '?' or '#' (RFC 3986), and the
	// user's part at its last '@'.
	authEnd := strings.IndexAny(rest, "/?#")
	if authEnd < 0 {
		authEnd = len(rest)
	}
	auth, tail := rest[:authEnd], rest[authEnd:]
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		if user, pw, _ := strings.Cut(auth[:at], ":"); pw != "" {
			auth = user + ":" + hidden + auth[at:]
		}
	}
	// Tokens ride in the query (?api_key=) and, for OAuth's implicit
	// flow, in the fragment (#access_token=).
	tail, frag, hasFrag := strings.Cut(tail, "#")
	path, query, hasQuery := strings.Cut(tail, "?")
	out := scheme + "://" + auth + path
	if hasQuery {
		out += "?" + redactParams(query)
	}
	if hasFrag {
		out += "#" + redactParams(frag)
	}
	return out
}

// redactParams hides the values of the secret parameters of a query
// (a=1&api_key=s), keeping the others and their order as written.
func redactParams(query string) string {
	params := strings.Split(query, "&")
	for i, p := range params {
		name, value, ok := strings.Cut(p, "=")
		if !ok || value == "" {
			continue
		}
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if secretName(name) {
			params[i] = p[:len(p)-len(value)] + hidden
		}
	}
	return strings.Join(params, "&")
}

// secretName says whether a parameter's name says it holds a credential:
// password, passwd, secret, token (access_token, X-Amz-Security-Token),
// signature, credential, auth, and any name ending in key (key, api_key,
// api-key, subscription-key).
func secretName(name string) bool {
	n := strings.NewReplacer("-", "", "_", "", ".", "").Replace(strings.ToLower(name))
	switch n {
	case "auth", "pass", "pwd", "sig", "jwt":
		return true
	}
	if strings.HasSuffix(n, "key") {
		return true
	}
	for _, w := range []string{"password", "passwd", "secret", "token", "signature", "credential", "authorization"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// redactJSON hides the credentials in every string of a JSON document
// (Redact), rewriting only the strings that held some: a document without
// credentials comes back as it was, byte for byte.
func redactJSON(doc []byte) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(doc); i++ {
		if doc[i] != '"' {
			continue
		}
		j := i + 1
		for j < len(doc) && doc[j] != '"' {
			if doc[j] == '\\' {
				j++
			}
			j++
		}
		if j >= len(doc) {
			break // not JSON: nothing more to read strings from
		}
		lit := doc[i : j+1]
		var s string
		if bytes.Contains(lit, []byte("://")) && json.Unmarshal(lit, &s) == nil {
			if r := Redact(s); r != s {
				enc, _ := json.Marshal(r) // a string always marshals
				out = append(append(out, doc[last:i]...), enc...)
				last = j + 1
			}
		}
		i = j
	}
	if out == nil {
		return doc
	}
	return append(out, doc[last:]...)
}

// configJSON is a run's configuration as stored: JSON, credentials hidden.
func configJSON(config any) ([]byte, error) {
	b, err := json.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("store: run configuration: %w", err)
	}
	return redactJSON(b), nil
}

// RunID names a run by its configuration, so that the same command run
// again finds its run and resumes it: the first 12 hex digits of the
// SHA-256 of the configuration as stored, credentials hidden. A key
// therefore never shapes an id (which would let one test guesses at it),
// and a rotated key resumes its run: a configuration that differs only in
// a credential names the same server, account and model. One without
// credentials keeps the id it always had.
func RunID(config any) (string, error) {
	b, err := configJSON(config)
	if err != nil {
		return "", err
	}
	// The newline: ids were first hashed from json.Encoder's output.
	h := sha256.Sum256(append(b, '\n'))
	return hex.EncodeToString(h[:])[:12], nil
}
