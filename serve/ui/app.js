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

async function solve(ev) {
  ev.preventDefault();
  nodes.clear();
  $("tree").textContent = "";
  $("answer").hidden = true;
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
