// Shared by every scenario: the order request, the counters the reconciliation reads,
// and the end-of-run summary (a JSON file for tools, a table for people).
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';

export const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';

// Orders this run created, as the clients saw them: one per distinct order id answered
// with 201. The reconciliation after the run expects exactly this many new orders and
// exactly this many new payments — no more (a retry that made a second order), no
// fewer (an accepted order that was lost on the way to its payment).
export const ordersCreated = new Counter('orders_created');
// Answers replayed from an Idempotency-Key (header `Idempotent-Replayed: true`).
export const ordersReplayed = new Counter('orders_replayed');

// The thresholds every scenario has; a scenario adds its own.
export function baseThresholds(p95, p99) {
  return {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    'http_req_duration{name:POST /orders}': [`p(95)<${p95}`, `p(99)<${p99}`],
  };
}

export const summaryTrendStats = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'];

// An order body. One in twenty amounts ends in 13, which the simulated provider
// declines: a declined payment is still a payment (PAYMENT_FAILED), so it counts as
// applied in the reconciliation like an approved one.
export function orderBody() {
  let amount = 1000 + Math.floor(Math.random() * 9000);
  if (amount % 100 === 13) amount += 1;
  if (Math.random() < 0.05) amount = 1013 + 100 * Math.floor(Math.random() * 80);
  return JSON.stringify({ customer_id: `k6-${__VU}`, amount_minor: amount, currency: 'EUR' });
}

// A key nobody else uses: VU, iteration, time and randomness.
export function newKey() {
  return `k6-${__VU}-${__ITER}-${Date.now()}-${Math.random().toString(36).slice(2, 10)}`;
}

export function orderParams(key) {
  const headers = { 'Content-Type': 'application/json' };
  if (key) headers['Idempotency-Key'] = key;
  return { headers, tags: { name: 'POST /orders' }, timeout: '10s' };
}

function orderId(res) {
  try {
    return res.json('id');
  } catch (_) {
    return undefined;
  }
}

export function isReplay(res) {
  return res.headers['Idempotent-Replayed'] === 'true';
}

// One order, sent with its own Idempotency-Key as a careful client does
// (IDEMPOTENCY_KEYS=0 sends none). Counts it when it was created.
export function createOrder() {
  const key = __ENV.IDEMPOTENCY_KEYS === '0' ? undefined : newKey();
  const res = http.post(`${BASE_URL}/orders`, orderBody(), orderParams(key));
  const id = res.status === 201 ? orderId(res) : undefined;
  check(res, {
    'order created (201 with an id)': () => id !== undefined,
  });
  if (id !== undefined) ordersCreated.add(1);
  return res;
}

export { orderId };

function fmt(v, digits = 1) {
  return v === undefined || v === null || Number.isNaN(v) ? '-' : Number(v).toFixed(digits);
}

// The table printed at the end of a run.
export function summaryTable(scenario, data) {
  const m = data.metrics;
  const v = (name, field) => (m[name] && m[name].values ? m[name].values[field] : undefined);
  const d = (field) => v('http_req_duration{name:POST /orders}', field) ?? v('http_req_duration', field);
  const rows = [
    ['scenario', scenario],
    ['duration (s)', fmt(data.state.testRunDurationMs / 1000, 1)],
    ['HTTP requests', `${v('http_reqs', 'count') ?? 0}  (${fmt(v('http_reqs', 'rate'), 1)}/s)`],
    ['failed requests', `${fmt((v('http_req_failed', 'rate') ?? 0) * 100, 2)} %`],
    ['POST /orders ms p50 / p90 / p95 / p99 / max',
      `${fmt(d('med'))} / ${fmt(d('p(90)'))} / ${fmt(d('p(95)'))} / ${fmt(d('p(99)'))} / ${fmt(d('max'))}`],
    ['orders created (distinct ids)', `${v('orders_created', 'count') ?? 0}`],
    ['answers replayed (Idempotency-Key)', `${v('orders_replayed', 'count') ?? 0}`],
    ['iterations dropped (not enough VUs: saturated)', `${v('dropped_iterations', 'count') ?? 0}`],
    ['VUs at most', `${v('vus_max', 'max') ?? v('vus_max', 'value') ?? '-'}`],
  ];
  for (const [name, metric] of Object.entries(m)) {
    for (const [expr, result] of Object.entries(metric.thresholds || {})) {
      rows.push([`threshold ${name}: ${expr}`, result.ok ? 'ok' : 'FAILED']);
    }
  }
  const width = Math.max(...rows.map((r) => r[0].length));
  const line = '-'.repeat(width + 40);
  return `\n${line}\n${rows.map(([k, val]) => `${k.padEnd(width)}  ${val}`).join('\n')}\n${line}\n`;
}

// handleSummary of every scenario: the full k6 summary as JSON (SUMMARY_JSON) and the
// table on stdout.
export function writeSummary(scenario, data) {
  const out = { stdout: summaryTable(scenario, data) };
  if (__ENV.SUMMARY_JSON) out[__ENV.SUMMARY_JSON] = JSON.stringify(data, null, 2);
  return out;
}
