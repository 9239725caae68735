package soak

import (
	"context"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/braid-dev/braid/task/countdown"
)

// A verdict is what an outcome means for a kind of request.
type verdict int

const (
	good verdict = iota
	rateLimited
	neutral // neither good nor bad: a stalled body the client gave up on
	bad
)

// requestKind is one kind of request in the mix.
type requestKind struct {
	name   string
	check  string // which check it counts toward: well-formed or malformed
	weight int    // in the load's mix; 0: not in it
	warm   bool   // sent once in the warm-up
	run    func(ctx context.Context, c *client, rng *rand.Rand) outcome
	judge  func(label string) verdict
}

// mix is the load's mix over the model.
func mix(model string, seed uint64) []requestKind {
	next, stop := iter.Pull(countdown.Problems(seed, countdown.Test))
	var problems []countdown.Problem
	for range 64 {
		p, _ := next()
		problems = append(problems, p)
	}
	stop()
	problem := func(rng *rand.Rand) countdown.Problem { return problems[rng.IntN(len(problems))] }
	chat := func(strategy string, stream bool) func(context.Context, *client, *rand.Rand) outcome {
		return func(ctx context.Context, c *client, rng *rand.Rand) outcome {
			req := map[string]any{"model": strategy + "/" + model, "stream": stream,
				"messages": []map[string]string{{"role": "user", "content": problem(rng).String()}}}
			if strategy != "direct" {
				// Bounded, so that 32 clients' searches finish on a few cores.
				req["max_tokens"] = 256
			}
			return c.do(ctx, c.api, call{method: "POST", path: "/v1/chat/completions", body: mustJSON(req), stream: stream})
		}
	}
	completion := func(stream bool) func(context.Context, *client, *rand.Rand) outcome {
		return func(ctx context.Context, c *client, rng *rand.Rand) outcome {
			req := map[string]any{"model": model, "prompt": countdown.RootPrompt(problem(rng), countdown.ModeSerial), "max_tokens": 16,
				"temperature": rng.IntN(2), "seed": rng.IntN(1000), "stream": stream}
			return c.do(ctx, c.api, call{method: "POST", path: "/v1/completions", body: mustJSON(req), stream: stream})
		}
	}
	get := func(path string) func(context.Context, *client, *rand.Rand) outcome {
		return func(ctx context.Context, c *client, _ *rand.Rand) outcome {
			return c.do(ctx, c.api, call{method: "GET", path: path})
		}
	}
	// variants sends one of a kind's bodies, chosen at random.
	variants := func(path string, bodies []string) func(context.Context, *client, *rand.Rand) outcome {
		return func(ctx context.Context, c *client, rng *rand.Rand) outcome {
			i := rng.IntN(len(bodies))
			o := c.do(ctx, c.api, call{method: "POST", path: path, body: []byte(bodies[i])})
			o.detail = fmt.Sprintf("body %q: %s", bodies[i], o.detail)
			return o
		}
	}
	msgs := `"messages":[{"role":"user","content":"27: 22 26 31 53"}]`
	direct := `"model":"direct/` + model + `",` + msgs
	huge := mustJSON(map[string]any{"model": "direct/" + model,
		"messages": []map[string]string{{"role": "user", "content": strings.Repeat("27: 22 26 31 53 ", hugeBody/16)}}})
	return []requestKind{
		{name: "chat apr", check: "well-formed", weight: 2, warm: true, run: chat("apr", false), judge: want("200")},
		{name: "chat apr stream", check: "well-formed", weight: 2, warm: true, run: chat("apr", true), judge: want("200")},
		{name: "chat serial", check: "well-formed", weight: 2, warm: true, run: chat("serial", false), judge: want("200")},
		{name: "chat serial stream", check: "well-formed", weight: 2, warm: true, run: chat("serial", true), judge: want("200")},
		{name: "chat direct", check: "well-formed", weight: 3, warm: true, run: chat("direct", false), judge: want("200")},
		{name: "chat direct stream", check: "well-formed", weight: 3, warm: true, run: chat("direct", true), judge: want("200")},
		{name: "completions", check: "well-formed", weight: 2, warm: true, run: completion(false), judge: want("200")},
		{name: "completions stream", check: "well-formed", weight: 2, warm: true, run: completion(true), judge: want("200")},
		{name: "healthz", check: "well-formed", weight: 1, warm: true, run: get("/healthz"), judge: want("200")},
		{name: "metrics", check: "well-formed", weight: 1, warm: true, run: get("/metrics"), judge: want("200")},
		{name: "abandoned stream", check: "well-formed", weight: 3, run: func(ctx context.Context, c *client, rng *rand.Rand) outcome {
			body := mustJSON(map[string]any{"model": "apr/" + model, "stream": true, "messages": []map[string]string{{"role": "user", "content": problem(rng).String()}}})
			return c.do(ctx, c.api, call{method: "POST", path: "/v1/chat/completions", body: body, stream: true, abandon: true})
		}, judge: want("abandoned")},
		{name: "trace", check: "well-formed", weight: 2, run: func(ctx context.Context, c *client, rng *rand.Rand) outcome {
			return c.do(ctx, c.api, call{method: "GET", path: "/v1/traces/" + c.traceID(rng)})
		}, judge: want("200", "404")},
		{name: "trace events", check: "well-formed", weight: 2, run: func(ctx context.Context, c *client, rng *rand.Rand) outcome {
			return c.do(ctx, c.api, call{method: "GET", path: "/v1/traces/" + c.traceID(rng) + "/events", stream: true})
		}, judge: want("200", "404")},
		{name: "trace events abandoned", check: "well-formed", weight: 1, run: func(ctx context.Context, c *client, rng *rand.Rand) outcome {
			return c.do(ctx, c.api, call{method: "GET", path: "/v1/traces/" + c.traceID(rng) + "/events", stream: true, abandon: true})
		}, judge: want("abandoned", "404")},
		{name: "malformed JSON", check: "malformed", weight: 3, run: variants("/v1/chat/completions", []string{
			`{` + direct, `{` + direct + `} {}`, ``, `hello`, `{"model":"direct/` + model + `",` + msgs + `,}`, "{\"model\":\"\xff\xfe\"," + msgs + "}",
		}), judge: want4xx},
		{name: "wrong types", check: "malformed", weight: 3, run: variants("/v1/chat/completions", []string{
			`{"model":27,` + msgs + `}`, `{"model":"direct/` + model + `","messages":"27: 22 26 31 53"}`,
			`{"model":"direct/` + model + `","messages":[{"role":"user","content":27}]}`, `{` + direct + `,"max_tokens":"64"}`,
			`{` + direct + `,"stream":"yes"}`, `[1,2,3]`, `{` + direct + `,"n":2}`, `{"model":"direct/` + model + `","messages":[]}`,
		}), judge: want4xx},
		{name: "wrong types completions", check: "malformed", weight: 1, run: variants("/v1/completions", []string{
			`{"model":"` + model + `","prompt":{"a":1}}`, `{"model":"` + model + `","prompt":"27","max_tokens":-1}`,
			`{"model":"` + model + `","prompt":"27","n":1000000000}`, `{"model":"` + model + `"}`,
		}), judge: want4xx},
		{name: "unknown model", check: "malformed", weight: 2, run: variants("/v1/chat/completions", []string{
			`{"model":"gpt-4o",` + msgs + `}`, `{"model":"nosuch/` + model + `",` + msgs + `}`, `{"model":"vote:k=0/` + model + `",` + msgs + `}`,
			`{"model":"",` + msgs + `}`,
		}), judge: want4xx},
		{name: "hostile numbers", check: "malformed", weight: 3, run: variants("/v1/chat/completions", []string{
			`{` + direct + `,"temperature":1e-320}`, `{` + direct + `,"max_tokens":9223372036854775807}`,
			`{` + direct + `,"top_p":"NaN"}`, `{` + direct + `,"max_tokens":-1}`, `{` + direct + `,"temperature":-1}`,
			`{` + direct + `,"temperature":1e999}`, `{` + direct + `,"seed":-1}`, `{` + direct + `,"max_tokens":1e300}`,
			`{` + direct + `,"max_tokens":9223372036854775808}`,
		}), judge: wantNo5xx},
		{name: "hostile numbers completions", check: "malformed", weight: 1, run: variants("/v1/completions", []string{
			`{"model":"` + model + `","prompt":"27","max_tokens":9223372036854775807,"temperature":1e-320}`,
			`{"model":"` + model + `","prompt":"27","max_tokens":4,"top_p":-1}`, `{"model":"` + model + `","prompt":"27","max_tokens":4,"top_k":-9223372036854775808}`,
			`{"model":"` + model + `","prompt":[-1, 9999999],"max_tokens":4}`, `{"model":"` + model + `","prompt":"27","max_tokens":4,"logprobs":1e9}`,
		}), judge: wantNo5xx},
		{name: "huge body", check: "malformed", weight: 1, run: func(ctx context.Context, c *client, _ *rand.Rand) outcome {
			return c.do(ctx, c.api, call{method: "POST", path: "/v1/chat/completions", body: huge})
		}, judge: want("413")},
		// Sent by the stallers, the flood and the probe, not in the mix.
		{name: "slow body", check: "malformed", judge: wantCutOff},
		{name: "flood", check: "well-formed", judge: want("200", "cancelled")},
		{name: "probe alone", check: "well-formed", judge: want("200")},
		{name: "probe in flood", check: "well-formed", judge: want("200")},
	}
}

// want is the verdict of a kind whose good outcomes are labels; 429 is
// always a rate limit, anything else bad.
func want(labels ...string) func(string) verdict {
	return func(l string) verdict {
		switch {
		case l == "429":
			return rateLimited
		case slices.Contains(labels, l):
			return good
		}
		return bad
	}
}

func want4xx(l string) verdict {
	switch {
	case l == "429":
		return rateLimited
	case len(l) == 3 && l[0] == '4':
		return good
	}
	return bad
}

// wantNo5xx judges hostile numbers: the server may take one it can
// bound (a tiny temperature) or refuse it, but never fail on it.
func wantNo5xx(l string) verdict {
	if l == "200" {
		return good
	}
	return want4xx(l)
}

// wantCutOff judges a stalled body: the server should refuse it or hang
// up; a client that gave up first, or one stopped by the load's end, is
// reported, not failed.
func wantCutOff(l string) verdict {
	switch l {
	case "closed":
		return good
	case "gave up", "cancelled":
		return neutral
	}
	return want4xx(l)
}

func weighted(kinds []requestKind) func(*rand.Rand) int {
	var cum []int
	total := 0
	for _, k := range kinds {
		total += k.weight
		cum = append(cum, total)
	}
	return func(rng *rand.Rand) int {
		x := rng.IntN(total)
		for i, c := range cum {
			if x < c {
				return i
			}
		}
		return len(cum) - 1
	}
}
