package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/braid-dev/braid/serve"
	"github.com/braid-dev/braid/store"
	"github.com/braid-dev/braid/tasks"
)

// serveFlags are the flags of 'serve'.
type serveFlags struct {
	ef                    engineFlags
	addr, name, dbPath    string
	remoteURLs            []string
	remoteModel, apiKey   string
	maxBody               int64
	perClient, keep       int
	timeout, grace        time.Duration
	readTimeout, writeTO  time.Duration
	reqThreads, reqTokens int
	allowOrigins, hosts   []string
	quiet, guided         bool
	api                   string
	retryBudget           int
	servers               serverFlags
	traceMiB              int64
	defaultStrategy, kind string
}

func newServeCmd() *cobra.Command {
	var fl serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve an OpenAI-compatible API that reasons in parallel, and a web UI that shows the threads",
		Long: `Serve the model behind an OpenAI-compatible API, with braid's strategies
chosen by the model name: "apr/countdown", "serial/countdown",
"vote:k=8/countdown", or a "braid" object in the body ({"strategy": ...});
reasoning_effort low, medium and high map to hybrid:effort=off, light and
deep. Streamed answers carry every thread's text as reasoning_content, then
the answer as content; usage sums every thread.

On the embedded Countdown model a chat message states a problem in words
("Using the numbers 22, 26, 31, 53, create an equation that equals 27", or
"27: 22 26 31 53"). /v1/completions serves the model raw, so one braid can be
another's --backend. With --backend, braid serves a remote model's chat
through its strategies instead.

Endpoints: /v1/chat/completions, /v1/completions, /v1/models,
/v1/traces/{id} (the thread tree), /v1/traces/{id}/events (SSE, resumable
with Last-Event-ID), /healthz, /readyz, /metrics (Prometheus) and the web UI
at /.

No one request can take the server: the engine shares each step fairly
between requests (--fair-share), each request's threads and tokens are
bounded (--request-threads, --request-tokens), bodies must arrive within
--read-timeout and a client must read within --write-timeout. Browsers'
requests from other origins are refused unless --allow-origin names them,
and on a loopback address so are Host names other than loopback's.
With BRAID_API_KEY set (or --api-key), /v1 requests need
"Authorization: Bearer KEY". Ctrl-C stops gracefully: requests in flight
get --grace to finish, then are cancelled.`,
		Example: `  braid serve
  braid serve --addr :8080 --db braid.db          # all interfaces; the UI lists braid.db's eval runs
  BRAID_API_KEY=secret braid serve --model runs/countdown/checkpoint
  braid serve --backend http://127.0.0.1:8000/v1 --backend-model Qwen/Qwen3-8B`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return fl.run(cmd) },
	}
	fl.ef.register(cmd)
	f := cmd.Flags()
	f.StringVar(&fl.addr, "addr", "localhost:8080", "address to listen on (:8080 for every interface)")
	f.StringVar(&fl.name, "name", "countdown", "the embedded or --model model's name in the API")
	f.StringVar(&fl.kind, "task", "", "what chat messages state: countdown (problems in words; the default for the embedded model) or general (questions for the task-agnostic strategies; the default with --backend); countdown:apr for the released APR checkpoints' prompts")
	f.StringVar(&fl.defaultStrategy, "strategy", "", "the strategy when a request names none (default apr for countdown, serial otherwise)")
	f.StringVar(&fl.apiKey, "api-key", "", "the bearer token clients must send (default $BRAID_API_KEY; none: no auth)")
	f.StringSliceVar(&fl.remoteURLs, "backend", nil, "serve a remote OpenAI-compatible model instead (its key from $BRAID_BACKEND_API_KEY)")
	f.StringVar(&fl.remoteModel, "backend-model", "", "the remote model's name")
	registerAPIFlag(f, &fl.api)
	registerRetryBudgetFlag(f, &fl.retryBudget)
	fl.servers.register(f)
	f.BoolVar(&fl.guided, "guided-choice", false, "send the Countdown environment's choices to --backend as guided decoding (vLLM, or another braid serve)")
	f.StringVar(&fl.dbPath, "db", "", "an evaluation database (SQLite file or postgres://) whose runs the UI lists and charts")
	f.Int64Var(&fl.maxBody, "max-body", 1<<20, "most bytes in a request body")
	f.IntVar(&fl.perClient, "per-client", 16, "most requests in flight per client (API key, else address)")
	f.DurationVar(&fl.timeout, "timeout", 10*time.Minute, "most time a request may take")
	f.DurationVar(&fl.readTimeout, "read-timeout", 30*time.Second, "most time a request body may take to arrive")
	f.DurationVar(&fl.writeTO, "write-timeout", 30*time.Second, "most time one write to a client may block: a client that stops reading a stream is cut off")
	f.IntVar(&fl.reqThreads, "request-threads", 4096, "most threads (model calls) one chat request may run")
	f.IntVar(&fl.reqTokens, "request-tokens", 4_000_000, "most completion tokens one request's threads may decode together")
	f.StringSliceVar(&fl.allowOrigins, "allow-origin", nil, "browser origins whose pages may call the API (https://app.example; * for any); the UI's own always may, others get 403")
	f.StringSliceVar(&fl.hosts, "allow-host", nil, "Host names answered besides loopback's when listening on loopback (a reverse proxy's name); others get 403, against DNS rebinding")
	f.DurationVar(&fl.grace, "grace", 30*time.Second, "on shutdown, how long requests in flight get to finish before they are cancelled")
	f.IntVar(&fl.keep, "keep-traces", 256, "recent traces kept for the trace API")
	f.Int64Var(&fl.traceMiB, "trace-memory", 32, "MiB the kept traces' events may hold, oldest finished dropped first: a run keeps an event for every few tokens of each of its threads")
	f.BoolVar(&fl.quiet, "quiet", false, "no log line per request")
	return cmd
}

func (fl *serveFlags) run(cmd *cobra.Command) error {
	opts, err := fl.options(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	closeBackend, err := fl.backend(&opts)
	if err != nil {
		return err
	}
	defer closeBackend()
	if fl.dbPath != "" {
		st, err := store.Open(cmd.Context(), fl.dbPath)
		if err != nil {
			return err
		}
		defer st.Close()
		opts.Runs = st
	}
	srv, err := serve.New(opts)
	if err != nil {
		return err
	}
	return srv.ListenAndServe(cmd.Context(), fl.addr, fl.grace, func(a net.Addr) {
		auth := "no API key"
		if fl.apiKey != "" {
			auth = "API key required"
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "braid serving %s on http://%s (%s); the UI is at /\n", opts.Model, a, auth)
	})
}

// options are the server's options but for its backend and its runs; it
// logs requests to log unless --quiet.
func (fl *serveFlags) options(log io.Writer) (serve.Options, error) {
	if fl.apiKey == "" {
		fl.apiKey = os.Getenv("BRAID_API_KEY")
	}
	if fl.maxBody <= 0 || fl.perClient <= 0 || fl.keep <= 0 || fl.traceMiB <= 0 || fl.timeout <= 0 || fl.grace < 0 ||
		fl.readTimeout <= 0 || fl.writeTO <= 0 || fl.reqThreads <= 0 || fl.reqTokens <= 0 {
		return serve.Options{}, usageErrorf("--max-body, --per-client, --keep-traces, --trace-memory, --timeout, --read-timeout, --write-timeout, --request-threads and --request-tokens must be positive, --grace >= 0")
	}
	opts := serve.Options{APIKey: fl.apiKey, MaxBodyBytes: fl.maxBody, PerClient: fl.perClient, Timeout: fl.timeout,
		ReadTimeout: fl.readTimeout, WriteTimeout: fl.writeTO, RequestThreads: fl.reqThreads, RequestTokens: fl.reqTokens,
		AllowOrigins: fl.allowOrigins, AllowHosts: fl.hosts,
		KeepTraces: fl.keep, TraceBytes: fl.traceMiB << 20, DefaultStrategy: fl.defaultStrategy}
	if !fl.quiet {
		opts.Log = slog.New(slog.NewTextHandler(log, nil))
	}
	kind, options, configured := strings.Cut(fl.kind, ":")
	switch kind {
	case "":
		kind = "countdown"
		if len(fl.remoteURLs) > 0 {
			kind = "general"
		}
	case "countdown", "general":
	default:
		return serve.Options{}, usageErrorf("--task %q: want countdown or general", fl.kind)
	}
	fl.kind = kind
	// A general model's chat messages are free-text questions.
	spec := map[string]string{"countdown": "countdown", "general": "math"}[kind]
	if configured {
		spec += ":" + options
	}
	t, err := tasks.Lookup(spec)
	if err != nil {
		return serve.Options{}, usageErrorf("--task: %v", err)
	}
	opts.Task = t
	if fl.kind == "general" {
		opts.Temperature = 1 // OpenAI's default; the Countdown model searches greedily
	}
	return opts, nil
}

// backend sets opts' backend: --backend's remote model, or the engine
// over --model. The function it returns releases the backend.
func (fl *serveFlags) backend(opts *serve.Options) (func(), error) {
	if len(fl.remoteURLs) > 0 {
		if fl.remoteModel == "" {
			return nil, usageErrorf("--backend needs --backend-model: the name the server knows the model by")
		}
		chat, err := chatAPI(fl.api, opts.Task)
		if err != nil {
			return nil, err
		}
		ropts, err := fl.servers.options(fl.remoteURLs, fl.remoteModel, os.Getenv("BRAID_BACKEND_API_KEY"), fl.guided, chat)
		if err != nil {
			return nil, err
		}
		b, closeB, err := openBackend(&fl.ef, ropts, fl.api)
		if err != nil {
			return nil, err
		}
		opts.Backend, opts.Model, opts.RetryBudget = b, fl.remoteModel, fl.retryBudget
		return closeB, nil
	}
	e, err := fl.ef.open()
	if err != nil {
		return nil, err
	}
	chat, err := chatAPI(fl.api, opts.Task)
	if err != nil {
		e.Close()
		return nil, err
	}
	b, err := fl.ef.chatOver(e, chat, fl.api)
	if err != nil {
		e.Close()
		return nil, err
	}
	opts.Backend, opts.Model, opts.Raw = b, fl.name, e
	opts.Stats = func() (int, int) { s := e.Stats(); return s.Running, s.Waiting }
	opts.Health = e.Err
	return func() { e.Close() }, nil
}
