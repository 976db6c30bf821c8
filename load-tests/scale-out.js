// Scale-out: several order-service instances behind a client that balances over them,
// as a load balancer would. RATE orders/s (default 40) for DURATION (default 60s), over
// BASE_URLS (comma-separated; default BASE_URL alone).
//
// An instance may be killed -9 mid-run (`make drills-scale-out` does it). The client
// then does what a careful client behind a balancer does: it sends the same order, with
// the same Idempotency-Key, to the next instance. The key lives in the shared database,
// so whichever instance got the first attempt, the order exists once.
//
// Fails when an order could not be placed on any instance within PATIENCE_MS (60 s).
import http from 'k6/http';
import { check, sleep } from 'k6';
import { BASE_URL, newKey, orderBody, orderId, orderParams, ordersCreated, ordersReplayed, isReplay, summaryTrendStats, writeSummary } from './lib/orders.js';

const rate = Number(__ENV.RATE || 40);
const instances = (__ENV.BASE_URLS || BASE_URL).split(',').map((u) => u.trim()).filter((u) => u);
// How long one order is retried across the instances: long enough for a killed
// instance's clients to move over and for a slow one to answer.
const patienceMs = Number(__ENV.PATIENCE_MS || 60000);

export const options = {
  scenarios: {
    scale_out: {
      executor: 'constant-arrival-rate',
      rate,
      timeUnit: '1s',
      duration: __ENV.DURATION || '60s',
      preAllocatedVUs: Math.max(10, Math.ceil(rate / 5)),
      maxVUs: Math.max(50, rate * 2),
    },
  },
  thresholds: {
    // Every order placed in the end, whatever instance died under it. Requests that hit
    // a killed instance fail (and are retried elsewhere), so no http_req_failed bound.
    checks: ['rate==1'],
  },
  summaryTrendStats,
};

export default function () {
  const key = newKey();
  const body = orderBody();
  const first = (__VU + __ITER) % instances.length;
  let id;
  const deadline = Date.now() + patienceMs;
  for (let attempt = 0; id === undefined && Date.now() < deadline; attempt += 1) {
    const base = instances[(first + attempt) % instances.length];
    const res = http.post(`${base}/orders`, body, orderParams(key));
    if (res.status === 201) {
      id = orderId(res);
      if (isReplay(res)) ordersReplayed.add(1);
    } else if (res.status >= 400 && res.status < 500) {
      break; // the order itself is wrong: retrying elsewhere will not help
    } else {
      sleep(0.2); // no answer (killed instance) or 5xx: the next instance, same key
    }
  }
  check(id, { 'order placed on some instance': (v) => v !== undefined });
  // One order per key whatever the number of attempts: counted once.
  if (id !== undefined) ordersCreated.add(1);
}

export function handleSummary(data) {
  return writeSummary('scale-out', data);
}
