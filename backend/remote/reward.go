package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"

	"github.com/braid-dev/braid/backend"
)

var _ backend.Rewarder = (*Client)(nil)

// Reward implements backend.Rewarder over vLLM's pooling API (a reward
// model served with --runner pooling): POST /pooling at the server's root,
// one text an input. A text's reward is the last number the model gives
// it: an outcome reward model's one score, a process reward model's score
// of the last step.
func (c *Client) Reward(ctx context.Context, texts []string) ([]float64, error) {
	out := make([]float64, len(texts))
	for i, text := range texts {
		ep := c.route(text[:min(len(text), 64)])
		body, err := json.Marshal(map[string]any{"model": c.opts.Model, "input": text})
		if err != nil {
			return nil, err
		}
		url := strings.TrimSuffix(ep.base, "/v1") + "/pooling" + ep.query
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, fmt.Errorf("remote: reward from %s: %w", ep.name, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("remote: reward from %s: %w", ep.name, err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("remote: reward from %s: HTTP %d: %s", ep.name, resp.StatusCode, errorMessage(bytes.NewReader(data)))
		}
		var pooled struct {
			Data []struct {
				Data any `json:"data"`
			} `json:"data"`
		}
		if err := json.Unmarshal(data, &pooled); err != nil || len(pooled.Data) == 0 {
			return nil, fmt.Errorf("remote: reward from %s: not a pooling response: %.80q", ep.name, data)
		}
		v, ok := lastNumber(pooled.Data[0].Data)
		if !ok {
			return nil, fmt.Errorf("remote: reward from %s: no score in %.80q", ep.name, data)
		}
		out[i] = v
	}
	return out, nil
}

// lastNumber is the last number in a JSON value of numbers and lists.
func lastNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x)
	case []any:
		for i := len(x) - 1; i >= 0; i-- {
			if n, ok := lastNumber(x[i]); ok {
				return n, true
			}
		}
	}
	return 0, false
}
