// The control room's page: renders the state the server sends every second (server-sent
// events, /api/events) and posts the buttons. Every number comes from the server; the
// verdict is tools/reconcile's, not computed here.
"use strict";

const $ = (id) => document.getElementById(id);
const fmt = (v) => (v === null || v === undefined ? "?" : String(v));
let last = null;

function setText(id, v) {
  const el = $(id);
  if (el) el.textContent = fmt(v);
}

function render(s) {
  last = s;
  const c = s.counters;
  $("stack").textContent = s.stack;
  setText("accepted", c.accepted);
  setText("backlog", c.outbox_backlog);
  $("oldest").textContent = c.outbox_oldest_age_s == null ? "–" : c.outbox_oldest_age_s.toFixed(1) + " s";
  setText("published", c.published);
  setText("consumed", c.consumed);
  setText("lag", c.consumer_lag);
  setText("applied", c.applied);
  setText("paid", c.paid);
  setText("failed", c.payment_failed);
  setText("dup-redis", c.duplicates_redis);
  setText("dup-inbox", c.duplicates_inbox);
  setText("dup-bk", c.duplicates_business_key);
  setText("dup-total", c.duplicates_redis + (c.duplicates_inbox || 0) + c.duplicates_business_key);
  setText("dlq", c.dead_lettered);

  const banner = $("banner");
  banner.hidden = !s.unsafe_banner;
  banner.textContent = s.unsafe_banner || "";
  const refused = $("refused");
  refused.hidden = !s.refused;
  refused.textContent = s.refused || "";

  renderVerdict(s.verdict);
  renderInfra(s);
  renderLoad(s.load);
  renderMarks(s.marks);
  drawChart(s.history, s.marks);
}

function renderVerdict(v) {
  const r = v.report;
  setText("v-settle", v.settle_secs);
  if (!r) {
    $("v-result").textContent = v.error ? "no verdict yet: " + v.error : "first reconciliation running…";
    return;
  }
  setText("v-accepted", r.accepted);
  setText("v-published", r.published_unique);
  setText("v-copies", r.published_duplicate_copies);
  setText("v-applied", r.applied);
  setText("v-inflight", v.in_flight);
  setText("v-lost", v.lost);
  setText("v-twice", r.double_applied);
  setText("v-charged", r.double_charged);
  for (const id of ["v-lost", "v-twice", "v-charged"]) {
    $(id).classList.toggle("nonzero", $(id).textContent !== "0");
  }
  $("all-applied").textContent = r.accepted > 0 && r.applied === r.accepted && v.in_flight === 0 ? "yes" : "no";
  const clean = v.lost === 0 && r.double_applied === 0 && r.double_charged === 0;
  const result = $("v-result");
  result.textContent = clean
    ? (v.in_flight > 0 ? `OK so far — ${v.in_flight} in flight, nothing lost, nothing applied twice`
                       : "OK — nothing lost, nothing applied twice")
    : "FAILED — lost or applied twice";
  result.className = "result " + (clean ? "ok" : "failed");
  $("v-checked").textContent = new Date(v.checked_at_ms).toLocaleTimeString() + ` (took ${v.took_ms} ms)`;
  $("v-error").textContent = v.error ? "last run failed: " + v.error : "";
}

function renderInfra(s) {
  const c = s.counters;
  $("services").innerHTML = "";
  for (const svc of c.services) {
    const span = document.createElement("span");
    span.className = "node " + (svc.up ? "up" : "down");
    span.id = "svc-" + svc.name;
    span.textContent = `${svc.name} ${svc.up ? "up" : "down"}`;
    $("services").appendChild(span);
  }
  $("brokers").innerHTML = "";
  let down = 0;
  for (const b of c.brokers) {
    const frozen = s.faulted.frozen_brokers.includes(b.node);
    const up = b.port_open && !frozen;
    if (!up) down += 1;
    const span = document.createElement("span");
    span.className = "node " + (frozen ? "frozen" : up ? "up" : "down");
    span.id = "broker-" + b.node;
    span.textContent = `broker ${b.node} ${frozen ? "frozen" : up ? "up" : "down"}` + (b.in_metadata ? "" : " (not in metadata)");
    $("brokers").appendChild(span);
  }
  const p = c.partitions;
  $("partitions").textContent = p
    ? `order topic: ${p.total} partitions, ${p.under_replicated} under-replicated, ${p.under_min_isr} under min ISR (2), ${p.leaderless} without leader; leader of partition 0: broker ${fmt(p.leader_of_0)}`
    : "order topic metadata: no answer from the cluster";
  let note = "";
  if (s.faulted.frozen_brokers.length > 0) {
    note = `Broker ${s.faulted.frozen_brokers.join(", ")} is frozen (SIGSTOP): its port still accepts connections, but nothing answers. Clients wait for their timeouts; once its controller session expires, leadership moves to an in-sync follower and the outbox drains again. "heal all" thaws it. `;
  }
  if (s.combined_nodes && down >= 2) {
    note += "Two of three nodes are down. In this demo cluster each node is broker AND controller, so the controller quorum (2 of 3 votes) is lost: the cluster is frozen — no leader can move, no ISR can shrink. This is not a min-ISR refusal; start a node again to thaw it.";
  } else if (s.combined_nodes) {
    note += "Demo cluster: each node is broker and controller. Stopping two nodes loses the controller quorum (a frozen cluster), not just min ISR.";
  } else if (p && p.under_min_isr > 0) {
    note += "Under min ISR: acks=all sends are refused (NOT_ENOUGH_REPLICAS); the outbox keeps the orders until a broker returns.";
  }
  $("quorum-note").textContent = note;
}

function renderLoad(l) {
  $("load-state").textContent = l.rate > 0
    ? `running ${l.rate}/s, ${l.remaining_s} s left — sent ${l.sent}, created ${l.created}, failed ${l.failed}`
    : `stopped — sent ${l.sent}, created ${l.created}, failed ${l.failed} (cap ${l.max_rate}/s, ${l.max_seconds} s)`;
  $("load-rate").max = l.max_rate;
  $("load-seconds").max = l.max_seconds;
}

function renderMarks(marks) {
  const ol = $("marks");
  ol.innerHTML = "";
  for (const m of marks.slice().reverse()) {
    const li = document.createElement("li");
    li.className = m.ok ? "ok" : "failed";
    li.textContent = `${new Date(m.at_ms).toLocaleTimeString()} ${m.label}${m.ok ? "" : " — FAILED"}${m.detail ? ": " + m.detail : ""}`;
    ol.appendChild(li);
  }
}

function drawChart(history, marks) {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (history.length < 2) return;
  const t0 = history[0][0];
  const t1 = history[history.length - 1][0];
  const rates = (k) => history.slice(1).map((h, i) => [h[0], Math.max(0, h[k] - history[i][k])]);
  const acc = rates(1);
  const app = rates(2);
  const max = Math.max(1, ...acc.map((p) => p[1]), ...app.map((p) => p[1]));
  const x = (t) => ((t - t0) / Math.max(1, t1 - t0)) * (canvas.width - 10) + 5;
  const y = (v) => canvas.height - 10 - (v / max) * (canvas.height - 25);
  ctx.fillStyle = "#6a737d";
  ctx.fillText(`${max}/s`, 5, 12);
  let lastLabel = -Infinity;
  for (const m of marks) {
    if (m.at_ms < t0) continue;
    ctx.strokeStyle = m.ok ? "#cf222e" : "#999";
    ctx.beginPath();
    ctx.moveTo(x(m.at_ms), 0);
    ctx.lineTo(x(m.at_ms), canvas.height);
    ctx.stroke();
    // A label only where it has room: the timeline beside the chart lists every one.
    if (x(m.at_ms) - lastLabel > 90) {
      ctx.fillStyle = "#cf222e";
      ctx.fillText(m.label, x(m.at_ms) + 2, 24);
      lastLabel = x(m.at_ms);
    }
  }
  for (const [series, colour] of [[acc, "#0969da"], [app, "#1a7f37"]]) {
    ctx.strokeStyle = colour;
    ctx.beginPath();
    series.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
    ctx.stroke();
  }
}

async function post(url, body, button) {
  const msg = $("message");
  if (button) button.disabled = true;
  msg.textContent = "…";
  msg.className = "message";
  try {
    const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const out = await r.json().catch(() => ({ ok: false, detail: `HTTP ${r.status}` }));
    msg.textContent = (out.ok ? "done: " : "FAILED: ") + out.detail;
    msg.className = "message " + (out.ok ? "ok" : "failed");
  } catch (e) {
    msg.textContent = "FAILED: the control room did not answer (" + e + ")";
    msg.className = "message failed";
  } finally {
    if (button) button.disabled = false;
  }
}

for (const b of document.querySelectorAll("button[data-action]")) {
  b.addEventListener("click", () => post("/api/action", JSON.parse(b.dataset.action), b));
}
$("redeliver").addEventListener("click", (e) =>
  post("/api/action", { action: "redeliver", n: Number($("redeliver-n").value) }, e.target));
$("load-start").addEventListener("click", (e) =>
  post("/api/load", { rate: Number($("load-rate").value), seconds: Number($("load-seconds").value) }, e.target));
$("load-stop").addEventListener("click", (e) => post("/api/load", { rate: 0, seconds: 1 }, e.target));

async function refreshRecent() {
  try {
    const orders = await (await fetch("/api/orders/recent")).json();
    const ul = $("recent");
    ul.innerHTML = "";
    for (const o of orders) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.textContent = o.id;
      a.className = "order-id";
      a.addEventListener("click", () => follow(o.id));
      li.appendChild(a);
      li.append(" " + o.status);
      ul.appendChild(li);
    }
  } catch (_) { /* the next refresh tries again */ }
}

async function follow(id) {
  const box = $("order-detail");
  box.textContent = "loading " + id + "…";
  const f = await (await fetch("/api/orders/" + id)).json();
  box.innerHTML = "";
  const h = document.createElement("h3");
  h.textContent = "order " + id + (f.order ? " — " + f.order.status : "");
  box.appendChild(h);
  const tl = document.createElement("ul");
  tl.id = "order-timeline";
  const add = (text) => { const li = document.createElement("li"); li.textContent = text; tl.appendChild(li); };
  if (f.order && f.order.timeline) {
    const detail = (d) => (d && typeof d === "object"
      ? Object.entries(d).filter(([, v]) => v !== null).map(([k, v]) => `${k} ${v}`).join(", ")
      : d);
    for (const e of f.order.timeline) add(`${e.at} ${e.what}${e.detail ? " — " + detail(e.detail) : ""}`);
  } else if (f.order_error) add(f.order_error);
  for (const d of f.deliveries) add(`${d.received_at} delivered to payment-service: partition ${d.kafka_partition}, offset ${d.kafka_offset}, duplicate deliveries suppressed ${d.duplicate_deliveries}`);
  for (const p of f.payments) add(`${p.created_at} payment ${p.id} ${p.status}`);
  box.appendChild(tl);
  const wf = document.createElement("div");
  wf.className = "waterfall";
  wf.id = "waterfall";
  const end = Math.max(1, ...f.spans.map((s) => s.start_ms + s.duration_ms));
  for (const s of f.spans) {
    const row = document.createElement("div");
    row.className = "wf-row";
    const name = document.createElement("span");
    name.textContent = "\u00a0".repeat(2 * s.depth) + `${s.service}: ${s.name}`;
    const track = document.createElement("span");
    const bar = document.createElement("span");
    bar.className = "wf-bar" + (s.error ? " error" : "");
    bar.style.display = "block";
    bar.style.marginLeft = (100 * s.start_ms / end) + "%";
    bar.style.width = Math.max(0.5, 100 * s.duration_ms / end) + "%";
    bar.title = s.attributes.map(([k, v]) => `${k}=${v}`).join("\n");
    track.appendChild(bar);
    const ms = document.createElement("span");
    ms.textContent = `${s.start_ms.toFixed(1)} +${s.duration_ms.toFixed(1)} ms`;
    row.append(name, track, ms);
    wf.appendChild(row);
  }
  box.appendChild(wf);
  const pre = document.createElement("pre");
  pre.textContent = f.trace_text;
  box.appendChild(pre);
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("state", (e) => {
    $("conn").textContent = "live";
    $("conn").className = "pill live";
    render(JSON.parse(e.data));
  });
  source.onerror = () => {
    $("conn").textContent = "reconnecting…";
    $("conn").className = "pill";
  };
}

connect();
refreshRecent();
setInterval(refreshRecent, 5000);
