package serve

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of its own
// (no global state: two servers in one process count apart).
type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	tokens     *prometheus.CounterVec
	malformed  *prometheus.CounterVec
	threads    prometheus.Gauge
	inFlight   prometheus.Gauge
	firstToken prometheus.Histogram
}

func newMetrics(stats func() (running, waiting int)) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "braid_requests_total",
		Help: "API requests by route and status code."}, []string{"route", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "braid_request_duration_seconds",
		Help: "API request latency, to the last byte.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 16)}, []string{"route"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "braid_tokens_total",
		Help: "Tokens over every thread, by kind: prompt or completion."}, []string{"kind"})
	m.malformed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "braid_format_errors_total",
		Help: "Places a model's parallel structure was malformed and closed by braid, by strategy."}, []string{"strategy"})
	m.threads = prometheus.NewGauge(prometheus.GaugeOpts{Name: "braid_live_threads", Help: "Reasoning threads running now."})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "braid_requests_in_flight", Help: "Completion requests being answered now."})
	m.firstToken = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "braid_time_to_first_token_seconds",
		Help: "From a request's arrival to its first streamed token.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)})
	m.reg.MustRegister(m.requests, m.duration, m.tokens, m.malformed, m.threads, m.inFlight, m.firstToken,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if stats != nil {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "braid_engine_running_threads", Help: "Threads the engine is decoding."},
				func() float64 { r, _ := stats(); return float64(r) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "braid_engine_queue_depth", Help: "Threads waiting for a place in the engine's batch."},
				func() float64 { _, w := stats(); return float64(w) }))
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) request(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}
