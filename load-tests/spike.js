// Spike: BASE_RATE (default 50/s) for 20 s, a jump to SPIKE_RATE (default 600/s) within
// 5 s held for SPIKE_HOLD (default 20s), back down, then 30 s to recover. The outbox
// absorbs the burst (the API only writes rows); the relay and the consumer catch up
// afterwards — the reconciliation waits for that and then counts.
import { createOrder, baseThresholds, summaryTrendStats, writeSummary } from './lib/orders.js';

const base = Number(__ENV.BASE_RATE || 50);
const spike = Number(__ENV.SPIKE_RATE || 600);

export const options = {
  scenarios: {
    spike: {
      executor: 'ramping-arrival-rate',
      startRate: base,
      timeUnit: '1s',
      stages: [
        { target: base, duration: '20s' },
        { target: spike, duration: '5s' },
        { target: spike, duration: __ENV.SPIKE_HOLD || '20s' },
        { target: base, duration: '5s' },
        { target: base, duration: '30s' },
      ],
      preAllocatedVUs: 50,
      maxVUs: Number(__ENV.MAX_VUS || 400),
    },
  },
  thresholds: baseThresholds(1000, 3000),
  summaryTrendStats,
};

export default function () {
  createOrder();
}

export function handleSummary(data) {
  return writeSummary('spike', data);
}
