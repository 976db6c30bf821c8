// Retry storm: clients resending the same order with the same Idempotency-Key,
// concurrently — a client library retrying on a timeout while the first attempt is
// still running, times COPIES. RATE keys/s (default 20) for DURATION (default 60s);
// each key is sent COPIES times at once (default 8), then once more after all answers
// came back (a late retry).
//
// What must hold, per key: every answer is 201 with the same order id, exactly one of
// them is the original and the others are replays (`Idempotent-Replayed: true`). Across
// the run: not one extra order (threshold `storm_extra_orders`), and afterwards the
// reconciliation finds exactly one order and one payment per key.
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import {
  BASE_URL, baseThresholds, isReplay, newKey, orderBody, orderId, orderParams,
  ordersCreated, ordersReplayed, summaryTrendStats, writeSummary,
} from './lib/orders.js';

const copies = Number(__ENV.COPIES || 8);
const rate = Number(__ENV.RATE || 20);
// Orders beyond the first for one key: must stay 0.
const extraOrders = new Counter('storm_extra_orders');

export const options = {
  scenarios: {
    storm: {
      executor: 'constant-arrival-rate',
      rate,
      timeUnit: '1s',
      duration: __ENV.DURATION || '60s',
      preAllocatedVUs: Math.max(10, rate),
      maxVUs: Math.max(50, rate * 5),
    },
  },
  thresholds: {
    ...baseThresholds(1000, 2000),
    storm_extra_orders: ['count==0'],
  },
  summaryTrendStats,
};

export default function () {
  const key = newKey();
  // The same body bytes every time: a retry resends the request, it does not rebuild it.
  const body = orderBody();
  const request = ['POST', `${BASE_URL}/orders`, body, orderParams(key)];
  const answers = http.batch(Array.from({ length: copies }, () => request));
  answers.push(http.post(`${BASE_URL}/orders`, body, orderParams(key)));

  const ids = new Set();
  let originals = 0;
  for (const res of answers) {
    if (res.status !== 201) continue;
    ids.add(orderId(res));
    if (isReplay(res)) ordersReplayed.add(1);
    else originals += 1;
  }
  check(answers, {
    'every copy answered 201': (a) => a.every((r) => r.status === 201),
    'one order id for the key': () => ids.size === 1,
    'exactly one original answer, the rest replays': () => originals === 1,
  });
  ordersCreated.add(ids.size);
  // Added every time (0 as well), so the threshold always has samples to judge.
  extraOrders.add(Math.max(0, ids.size - 1));
}

export function handleSummary(data) {
  return writeSummary('retry-storm', data);
}
