// Every button of the control room, pressed in chromium (`make control-room-drill`),
// against a control room on a Kafka cluster of its own (--own-cluster: split topology,
// brokers 1-3 and a controller, so a broker stop shrinks the ISR for real). Under a load,
// one fault after the other, each healed; at the end the page must show every accepted
// order applied, nothing lost, nothing applied twice. Screenshots per fault.
import { Fatal, log, openControlRoom } from "./page.mjs";

const { url, artifacts, browser, page, text, number, until, press: pressWithin } = await openControlRoom();
let n = 0;
const shot = async (name) => page.screenshot({ path: `${artifacts}/${String(++n).padStart(2, "0")}-${name}.png`, fullPage: true });
// The broker faults take longer to answer than the test's buttons.
const press = (id) => pressWithin(id, { seconds: 180 });

// A fault, a few seconds of it under load, a screenshot, then its undo.
async function fault(name, on, off, seconds = 8) {
  await press(on);
  await page.waitForTimeout(seconds * 1000);
  await shot(name);
  if (off) await press(off);
}

let step = "open";
try {
  await page.goto(url);
  await until("SSE connected", async () => (await text("conn")) === "live" || "not live", 60);
  await page.fill("#load-rate", "5");
  await page.fill("#load-seconds", "420");
  await press("load-start");
  await until("orders accepted", async () => (await number("accepted")) >= 10 || "few orders", 60);

  step = "services";
  await fault("order-service-killed", "kill-order-service", "start-order-service");
  await fault("payment-service-killed", "kill-payment-service", "start-payment-service");
  step = "brokers";
  await fault("broker-2-stopped", "stop-broker-2", "start-broker-2", 15);
  await fault("leader-frozen", "freeze-leader", "heal-all", 15);
  step = "Redis and the database";
  await fault("redis-stopped", "stop-redis", "start-redis");
  await fault("payment-db-cut", "cut-db", "restore-db");
  step = "copies and poison";
  await press("redeliver");
  await press("poison");
  await until("dead letters", async () => (await number("dlq")) >= 4 || "no dead letters yet", 60);
  step = "toggles";
  await fault("offset-before-effect", "toggle-offset-before-effect", "heal-all", 5);
  await fault("inbox-off", "toggle-inbox-off", null, 5);
  await press("redeliver");
  await press("heal-all");
  step = "two brokers stopped: the combined-mode note";
  await press("stop-broker-1");
  await press("stop-broker-3");
  await page.waitForTimeout(10000);
  await shot("two-brokers-stopped");
  await press("heal-all");

  step = "recovery";
  await press("load-stop");
  await until("every accepted order applied, nothing lost or applied twice", async () => {
    const lost = await number("v-lost");
    const twice = await number("v-twice");
    if (lost !== 0 || twice !== 0) throw new Fatal(`lost ${lost}, applied twice ${twice}`);
    return (await text("all-applied")) === "yes" && (await number("v-accepted")) === (await number("accepted")) || "not yet";
  }, 300);
  await shot("recovered");
  log("PASS: every button pressed, nothing lost, nothing applied twice");
  await browser.close();
} catch (e) {
  console.error(`FAIL at step "${step}": ${e.message}`);
  await shot("failure").catch(() => {});
  await browser.close();
  process.exit(1);
}
