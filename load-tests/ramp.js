// Ramp to saturation: the arrival rate climbs from START_RATE (default 20/s) to
// MAX_RATE (default 1500/s) over DURATION (default 2m). Somewhere on the way the stack
// saturates: latency climbs, and k6 drops iterations once MAX_VUS requests are waiting.
// The web-dashboard report shows where (request rate flattening while latency rises).
// Errors must stay rare even past that point: a saturated service queues, it must not
// fail or lose orders — the reconciliation afterwards checks the latter.
import { createOrder, baseThresholds, summaryTrendStats, writeSummary } from './lib/orders.js';

export const options = {
  scenarios: {
    ramp: {
      executor: 'ramping-arrival-rate',
      startRate: Number(__ENV.START_RATE || 20),
      timeUnit: '1s',
      stages: [{ target: Number(__ENV.MAX_RATE || 1500), duration: __ENV.DURATION || '2m' }],
      preAllocatedVUs: 50,
      maxVUs: Number(__ENV.MAX_VUS || 300),
    },
  },
  // Latency is allowed to grow here (that is what saturation looks like); errors are not.
  thresholds: baseThresholds(2000, 5000),
  summaryTrendStats,
};

export default function () {
  createOrder();
}

export function handleSummary(data) {
  return writeSummary('ramp', data);
}
