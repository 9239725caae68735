// braid's web UI: ask a problem through the OpenAI-compatible API, and
// draw the run's tree of threads live from the trace API's events.
"use strict";

const $ = (id) => document.getElementById(id);
const keyInput = $("key");
keyInput.value = localStorage.getItem("braid-key") || "";
keyInput.addEventListener("change", () => localStorage.setItem("braid-key", keyInput.value));

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (keyInput.value) h["Authorization"] = "Bearer " + keyInput.value;
  return h;
}

// readSSE calls onEvent(name, data, id) for each server-sent event of a
// fetch response, until the stream ends.
async function readSSE(resp, onEvent) {
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let name = "message", data = "", id = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
        else if (line.startsWith("id: ")) id = line.slice(4);
      }
      onEvent(name, data, id);
    }
  }
}

async function errorText(resp) {
  try {
    const e = await resp.json();
    return e.error && e.error.message ? e.error.message : resp.statusText;
  } catch (_) {
    return resp.statusText;
  }
}

// The tree: one box per thread, children inside their parent's box.
const nodes = new Map();

function node(id, parent) {
  if (nodes.has(id)) return nodes.get(id);
  const el = document.createElement("div");
  el.className = "node";
  el.dataset.thread = id;
  el.dataset.state = "running";
  el.innerHTML = '<div class="head"><b></b><span class="state">running</span><span class="tokens">0 tokens</span><span class="time"></span></div><pre></pre><div class="children"></div>';
  el.querySelector("b").textContent = "thread " + id;
  const n = { el, text: el.querySelector("pre"), tokens: 0, start: performance.now() };
  nodes.set(id, n);
  const holder = parent ? node(parent).el.querySelector(".children") : $("tree");
  // Siblings in spawn order (0,2 before 0,10), whichever started first.
  const after = [...holder.children].find((c) => byNode(c.dataset.thread, id) > 0);
  holder.insertBefore(el, after || null);
  return n;
}

// byNode orders thread names by their numbers: "0,2" < "0,10", "sample 2/0" < "sample 10/0".
function byNode(a, b) {
  const na = a.match(/\d+/g) || [], nb = b.match(/\d+/g) || [];
  for (let i = 0; i < Math.min(na.length, nb.length); i++) {
    if (+na[i] !== +nb[i]) return +na[i] - +nb[i];
  }
  return na.length - nb.length || a.localeCompare(b);
}

function onTraceEvent(e) {
  switch (e.kind) {
    case "thread_started":
      node(e.thread, e.parent);
      break;
    case "delta": {
      const n = node(e.thread, e.parent);
      n.text.textContent += e.text || "";
      n.text.scrollTop = n.text.scrollHeight;
      n.tokens += e.tokens || 0;
      n.el.querySelector(".tokens").textContent = n.tokens + " tokens";
      break;
    }
    case "thread_finished": {
      const n = node(e.thread, e.parent);
      n.el.dataset.state = "done";
      // A Countdown thread's verdict is in its own text: it reached the
      // goal, or searched its part and found nothing.
      const text = n.text.textContent;
      let verdict = "";
      if (text.includes("equal: Goal Reached")) verdict = " · reached the goal";
      else if (text.includes("No solution found")) verdict = " · no solution here";
      n.el.dataset.verdict = verdict ? (verdict.includes("goal") ? "goal" : "none") : "";
      n.el.querySelector(".state").textContent = (e.parent ? "joined" : "finished") + verdict;
      n.el.querySelector(".tokens").textContent = (e.tokens || n.tokens) + " tokens";
      n.el.querySelector(".time").textContent = ((performance.now() - n.start) / 1000).toFixed(1) + " s";
      break;
    }
  }
}

function showAnswer(view, content, usage) {
  const a = $("answer");
  a.hidden = false;
  a.dataset.correct = view.correct === undefined ? "unknown" : String(view.correct);
  const verdict = view.correct === undefined ? "" : view.correct ? " ✓ verified" : " ✗ wrong";
  const r = view.result || {};
  a.textContent = (content || view.answer || "no answer") + verdict +
    ` — ${r.threads || 0} threads, ${r.total_tokens || 0} tokens (critical path ${r.critical_path_tokens || 0})` +
    (usage ? `, prompt ${usage.prompt_tokens} tokens` : "");
}

// The timeline: once a run has finished, one bar per thread over the
// run's wall time, so that a person sees which threads ran at once, and
// which chain of them the run's latency in tokens waited on.

// startedMS reads an RFC 3339 time as milliseconds since the epoch,
// keeping the fraction below a millisecond: Date.parse drops it, and
// threads of a fast run start microseconds apart.
function startedMS(s) {
  const m = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$/.exec(s);
  if (!m) return Date.parse(s);
  return Date.parse(m[1] + m[3]) + (m[2] ? parseFloat("0" + m[2]) * 1000 : 0);
}

// threadRows lists the tree's threads depth first, parents before their
// children, each with its depth and its start (NaN for one that never
// started, a failed one).
function threadRows(tree) {
  const rows = [];
  const walk = (t, depth) => {
    rows.push({ t, depth, start: t.started ? startedMS(t.started) : NaN });
    for (const c of t.children || []) walk(c, depth + 1);
  };
  walk(tree, 0);
  return rows;
}

// criticalPath follows, as reason's account counts it, the chain of
// threads the run's latency waited on: a thread's chain is its tokens
// plus its longest child's, and the path goes on at each thread through
// the child with the longest chain, the first of those that tie.
function criticalPath(tree) {
  const chain = new Map();
  const measure = (t) => {
    let longest = 0;
    for (const c of t.children || []) longest = Math.max(longest, measure(c));
    chain.set(t, (t.tokens || 0) + longest);
    return chain.get(t);
  };
  measure(tree);
  const path = [];
  for (let t = tree; t;) {
    path.push(t);
    let next = null;
    for (const c of t.children || []) {
      if (!next || chain.get(c) > chain.get(next)) next = c;
    }
    t = next;
  }
  return { threads: path, tokens: chain.get(tree) };
}

// tickStep picks a round step (1, 2 or 5 times a power of ten) that cuts
// span milliseconds into four to six parts: enough to read a bar's time
// off, few enough that the labels do not crowd.
function tickStep(span) {
  const p = Math.pow(10, Math.floor(Math.log10(span / 4)));
  return [1, 2, 5, 10].map((k) => k * p).find((s) => span / s <= 6);
}

// msLabel writes a time on the axis in seconds for a run of a second or
// more, else in milliseconds, with as many decimals as the step needs.
function msLabel(ms, step, span) {
  const decimals = (x) => Math.max(0, Math.ceil(-Math.log10(x) - 1e-9));
  if (span >= 1000) return (ms / 1000).toFixed(decimals(step / 1000)) + " s";
  return ms.toFixed(decimals(step)) + " ms";
}

// el makes an element of a class, with its text.
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// drawTimeline draws tree's threads into box as a Gantt chart: a summary
// of the critical path, a time axis, and a lane per thread in tree order.
// It reads nothing but its arguments, so a test can draw any tree.
function drawTimeline(box, tree) {
  box.textContent = "";
  box.classList.add("timeline"); // the style's sheet draws any box so marked
  const rows = threadRows(tree);
  const critical = criticalPath(tree);
  const onPath = new Set(critical.threads);
  const total = rows.reduce((n, r) => n + (r.t.tokens || 0), 0);
  const ran = rows.filter((r) => !isNaN(r.start));
  const t0 = Math.min(...ran.map((r) => r.start));
  // The scale spans from the first start to the last end; a run too fast
  // to measure still gets a scale, so that its bars have a place.
  const span = Math.max(1, ...ran.map((r) => r.start - t0 + (r.t.wall_ms || 0)));
  const pct = (ms) => +(100 * ms / span).toFixed(3) + "%";

  const summary = el("p", "summary",
    `critical path: ${critical.tokens} tokens over ${critical.threads.length} thread${critical.threads.length === 1 ? "" : "s"} · ` +
    `parallel speedup ${critical.tokens ? (total / critical.tokens).toFixed(2) + "×" : "n/a"} ` +
    `(${total} tokens in all threads)`);
  summary.dataset.criticalTokens = critical.tokens;
  summary.dataset.criticalThreads = critical.threads.length;
  summary.dataset.totalTokens = total;
  box.appendChild(summary);

  const axis = el("div", "lane axis");
  axis.appendChild(el("span", "label", "wall time"));
  const ticks = el("div", "track");
  const step = tickStep(span);
  for (let i = 0; i * step <= span * (1 + 1e-9); i++) {
    const ms = i * step;
    const tick = el("span", "tick", msLabel(ms, step, span));
    tick.style.left = pct(ms);
    ticks.appendChild(tick);
  }
  axis.appendChild(ticks);
  box.appendChild(axis);

  for (const r of rows) box.appendChild(lane(r, t0, pct, onPath.has(r.t)));
}

// lane is one thread's row of the timeline: its name and tokens, indented
// by its depth, and its bar, or a note for a thread that never ran.
function lane(r, t0, pct, critical) {
  const t = r.t;
  const row = el("div", "lane");
  row.dataset.thread = t.node;
  row.dataset.critical = String(critical);
  const label = el("span", "label", `${t.node} · ${t.tokens || 0} tokens`);
  label.style.paddingLeft = r.depth * 0.9 + "em";
  row.appendChild(label);
  const track = el("div", "track");
  if (isNaN(r.start)) {
    track.appendChild(el("span", "norun", "did not run" + (t.finish ? ` (${t.finish})` : "")));
  } else {
    const bar = el("div", "bar");
    bar.dataset.thread = t.node;
    bar.dataset.depth = r.depth;
    bar.dataset.critical = String(critical);
    // As variables the style's sheet places: it keeps a sliver of a bar
    // that starts at the very end inside its track.
    bar.style.setProperty("--start", pct(r.start - t0));
    bar.style.setProperty("--wall", pct(t.wall_ms || 0));
    bar.title = `${t.node}: ${t.tokens || 0} tokens (${t.filled_tokens || 0} filled), ` +
      `from ${(r.start - t0).toFixed(1)} ms for ${t.wall_ms || 0} ms, ${t.finish || ""}`;
    track.appendChild(bar);
  }
  row.appendChild(track);
  return row;
}

// showTimeline draws the finished run's timeline below the tree, with
// the trace's id on it, whose result it draws.
function showTimeline(view, traceID) {
  const tree = view.result && view.result.tree;
  if (!tree) return;
  $("timeline-section").hidden = false;
  $("timeline").dataset.trace = traceID;
  drawTimeline($("timeline"), tree);
}

async function solve(ev) {
  ev.preventDefault();
  nodes.clear();
  $("tree").textContent = "";
  $("answer").hidden = true;
  $("timeline-section").hidden = true;
  $("timeline").textContent = "";
  $("solve").disabled = true;
  $("status").textContent = "asking…";
  const started = performance.now();
  try {
    const resp = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({
        model: $("model").value,
        messages: [{ role: "user", content: $("problem").value }],
        stream: true,
        stream_options: { include_usage: true },
      }),
    });
    if (!resp.ok) {
      $("status").textContent = "error: " + (await errorText(resp));
      return;
    }
    const traceID = resp.headers.get("X-Braid-Trace");
    $("status").textContent = "reasoning… (trace " + traceID + ")";
    // The tree follows the trace's events while the answer streams.
    const tree = fetch(`/v1/traces/${traceID}/events`, { headers: headers() }).then((tr) =>
      readSSE(tr, (name, data) => {
        if (name === "end") return;
        onTraceEvent(JSON.parse(data));
      }));
    let content = "", usage = null, failure = "";
    await readSSE(resp, (_, data) => {
      if (data === "[DONE]") return;
      const c = JSON.parse(data);
      if (c.error) failure = c.error.message;
      if (c.usage) usage = c.usage;
      for (const ch of c.choices || []) {
        if (ch.delta && ch.delta.content) content += ch.delta.content;
      }
    });
    await tree;
    if (failure) {
      $("status").textContent = "error: " + failure;
      return;
    }
    const view = await (await fetch(`/v1/traces/${traceID}`, { headers: headers() })).json();
    showAnswer(view, content, usage);
    showTimeline(view, traceID);
    $("status").textContent = `done in ${((performance.now() - started) / 1000).toFixed(1)} s`;
  } catch (err) {
    $("status").textContent = "error: " + err;
  } finally {
    $("solve").disabled = false;
  }
}

async function loadModels() {
  const resp = await fetch("/v1/models", { headers: headers() });
  if (!resp.ok) {
    $("status").textContent = "models: " + (await errorText(resp)) + " (set the API key)";
    return;
  }
  const list = await resp.json();
  const sel = $("model");
  sel.textContent = "";
  for (const m of list.data) {
    const o = document.createElement("option");
    o.value = o.textContent = m.id;
    sel.appendChild(o);
  }
}

async function loadRuns() {
  const box = $("runs");
  const resp = await fetch("/v1/braid/runs", { headers: headers() });
  if (!resp.ok) {
    box.textContent = await errorText(resp);
    return;
  }
  const body = await resp.json();
  body.runs = body.runs || [];
  if (!body.runs.length) {
    box.innerHTML = '<p class="hint"></p>';
    box.firstChild.textContent = body.note || "No evaluation runs yet: braid eval records them.";
    return;
  }
  const ul = document.createElement("ul");
  for (const r of body.runs) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = "#";
    a.textContent = `${r.id} (${r.created})`;
    a.addEventListener("click", async (e) => {
      e.preventDefault();
      const page = await fetch(`/v1/braid/runs/${encodeURIComponent(r.id)}/report`, { headers: headers() });
      const frame = $("report");
      frame.hidden = false;
      frame.srcdoc = await page.text();
    });
    li.appendChild(a);
    ul.appendChild(li);
  }
  box.textContent = "";
  box.appendChild(ul);
}

$("form").addEventListener("submit", solve);
keyInput.addEventListener("change", () => { loadModels(); loadRuns(); });
loadModels();
loadRuns();
