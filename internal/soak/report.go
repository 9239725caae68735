package soak

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Judge makes the checks. watched says whether the server's stderr was
// read, and crash holds the lines of it that show a crash.
func (r *Report) Judge(watched bool, crash []string, maxSlowdown, maxGrowth float64) {
	r.Crash = crash
	add := func(name string, pass bool, detail string) {
		res := "PASS"
		if !pass {
			res = "FAIL"
		}
		r.Checks = append(r.Checks, Check{Name: name, Result: res, Detail: detail})
	}
	bodies := 0
	sum := map[string]*KindReport{}
	for _, k := range r.Kinds {
		bodies += k.Requests
		s := sum[k.Check]
		if s == nil {
			s = &KindReport{}
			sum[k.Check] = s
		}
		s.Requests, s.Good, s.RateLimited, s.Bad = s.Requests+k.Requests, s.Good+k.Good, s.RateLimited+k.RateLimited, s.Bad+k.Bad
	}
	stderr := "its stderr was not watched (--url)"
	if watched {
		stderr = "no panic, fatal error, stack dump or data race in its stderr"
		if len(crash) > 0 {
			stderr = fmt.Sprintf("its stderr shows a crash: %q", crash[0])
		}
	}
	detail := fmt.Sprintf("%s; %d of %d response bodies held a stack trace", stderr, r.Leaks, bodies)
	if r.Leak != "" {
		detail += fmt.Sprintf(" (the first: %q)", r.Leak)
	}
	add("no crash, no stack trace sent to a client", len(crash) == 0 && r.Leaks == 0, detail)

	w, m := sum["well-formed"], sum["malformed"]
	if w == nil {
		w = &KindReport{}
	}
	if m == nil {
		m = &KindReport{}
	}
	add("well-formed requests answered 200", w.Bad == 0,
		fmt.Sprintf("%d of %d good, %d failed, %d rate-limited (429, not counted)%s", w.Good, w.Requests, w.Bad, w.RateLimited, r.failuresOf("well-formed")))
	add("malformed requests refused with a 4xx", m.Bad == 0,
		fmt.Sprintf("%d of %d good, %d failed, %d rate-limited (429); %s%s", m.Good, m.Requests, m.Bad, m.RateLimited, r.slowBodies(), r.failuresOf("malformed")))

	name := fmt.Sprintf("memory after the load within %.0f%% of the start", 100*maxGrowth)
	switch {
	case r.RSSStart <= 0 || r.RSSEnd <= 0:
		r.Checks = append(r.Checks, Check{Name: name, Result: "SKIP", Detail: "the server's RSS could not be read (no /proc and no process_resident_memory_bytes in /metrics)"})
	default:
		g := float64(r.RSSEnd)/float64(r.RSSStart) - 1
		add(name, g <= maxGrowth, fmt.Sprintf("%.0f MiB after the load, %.0f MiB at the start (%+.1f%%), from %s", mib(r.RSSEnd), mib(r.RSSStart), 100*g, r.RSSFrom))
	}

	name = fmt.Sprintf("probe p99 during the flood within %gx its p99 alone", maxSlowdown)
	switch {
	case r.Alone.N == 0:
		add(name, false, "no probe alone was answered 200")
	case r.DuringFlood.N == 0:
		add(name, false, fmt.Sprintf("no probe during the flood was answered 200 (alone: p99 %.0f ms)", r.Alone.P99MS))
	default:
		x := r.DuringFlood.P99MS / max(r.Alone.P99MS, 1)
		add(name, x <= maxSlowdown, fmt.Sprintf("%.0f ms during (n %d, p50 %.0f ms), %.0f ms alone (n %d, p50 %.0f ms): %.1fx",
			r.DuringFlood.P99MS, r.DuringFlood.N, r.DuringFlood.P50MS, r.Alone.P99MS, r.Alone.N, r.Alone.P50MS, x))
	}
	if r.Idle {
		add("server idle after the load", true, fmt.Sprintf("no request in flight %.1fs after the load", r.IdleS))
	} else {
		add("server idle after the load", false, fmt.Sprintf("requests still in flight %.0fs after the load", r.IdleS))
	}
}

// failuresOf lists the bad outcomes of a check's kinds.
func (r *Report) failuresOf(check string) string {
	var b strings.Builder
	for _, k := range r.Kinds {
		if k.Check != check || k.Bad == 0 {
			continue
		}
		fmt.Fprintf(&b, "; %s: %s", k.Kind, outcomes(k.Outcomes))
	}
	return b.String()
}

func (r *Report) slowBodies() string {
	for _, k := range r.Kinds {
		if k.Kind == "slow body" {
			return fmt.Sprintf("stalled bodies: %d cut off by the server, %d given up on by the client, %d stopped by the load's end",
				k.Good, k.Outcomes["gave up"], k.Outcomes["cancelled"])
		}
	}
	return ""
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "braid soak of %s at %s: %s, %d clients, seed %d, flood %s in the middle third\n\n",
		r.Model, r.URL, time.Duration(r.DurationS*float64(time.Second)), r.Clients, r.Seed, r.Flood)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "kind\tcheck\trequests\tgood\t429\tbad\toutcomes")
	for _, k := range r.Kinds {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", k.Kind, k.Check, k.Requests, k.Good, k.RateLimited, k.Bad, outcomes(k.Outcomes))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "probe latency\tn\tp50 ms\tp99 ms")
	fmt.Fprintf(tw, "alone\t%d\t%.0f\t%.0f\n", r.Alone.N, r.Alone.P50MS, r.Alone.P99MS)
	fmt.Fprintf(tw, "during the flood\t%d\t%.0f\t%.0f\n", r.DuringFlood.N, r.DuringFlood.P50MS, r.DuringFlood.P99MS)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nmemory (RSS, from %s): %.0f MiB after the warm-up, %.0f MiB after the load\n", r.RSSFrom, mib(r.RSSStart), mib(r.RSSEnd))
	for _, f := range r.Failures {
		fmt.Fprintln(w, "failure:", f)
	}
	fmt.Fprintln(w)
	for _, c := range r.Checks {
		fmt.Fprintf(w, "%s  %s: %s\n", c.Result, c.Name, c.Detail)
	}
	return nil
}
