// Steady: a constant arrival rate the stack should hold comfortably.
// RATE orders/s (default 100) for DURATION (default 60s), each with its own
// Idempotency-Key. Fails when more than 1 % of requests fail, when POST /orders is
// slower than 250 ms at p95 / 500 ms at p99, or when the rate cannot be held.
import { createOrder, baseThresholds, summaryTrendStats, writeSummary } from './lib/orders.js';

const rate = Number(__ENV.RATE || 100);

export const options = {
  scenarios: {
    steady: {
      executor: 'constant-arrival-rate',
      rate,
      timeUnit: '1s',
      duration: __ENV.DURATION || '60s',
      preAllocatedVUs: Math.max(10, Math.ceil(rate / 10)),
      maxVUs: Math.max(50, rate),
    },
  },
  thresholds: {
    ...baseThresholds(250, 500),
    // Iterations k6 could not start because every VU was still waiting for an answer.
    dropped_iterations: ['count<1'],
  },
  summaryTrendStats,
};

export default function () {
  createOrder();
}

export function handleSummary(data) {
  return writeSummary('steady', data);
}
