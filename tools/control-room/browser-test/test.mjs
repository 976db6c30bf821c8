// The control room, end to end, in a real browser (Debian's chromium, driven by
// playwright-core): load, kill -9 payment-service, start it, re-deliver 10, and the page
// must show every accepted order applied, duplicates suppressed >= 10, lost 0, applied
// twice 0 — read from the DOM. Then the inbox and the fast path off: the banner is red,
// the business key catches N more copies, applied twice stays 0.
//
//   CONTROL_ROOM_URL=http://127.0.0.1:<port>/ node test.mjs      (run.sh starts one)
import { Fatal, log, openControlRoom } from "./page.mjs";

const N = 10;
const { url, artifacts, browser, page, text, number, until, press } = await openControlRoom();
let step = "open";
const shot = (name) => page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: true });

try {
  step = "the page goes live";
  await page.goto(url);
  await until("SSE connected", async () => (await text("conn")) === "live" || "not live", 60);
  if (!(await page.locator("#banner").isHidden())) throw new Error("the unsafe banner shows before any toggle");

  step = "a load";
  await page.fill("#load-rate", "10");
  await page.fill("#load-seconds", "40");
  await press("load-start");
  await until("orders accepted", async () => (await number("accepted")) >= 30 || "accepted < 30", 90);

  step = "kill -9 payment-service";
  await press("kill-payment-service");
  await until("payment-service shown down", async () => (await text("svc-payment-service")).includes("down") || "still up", 15);
  await page.waitForTimeout(5000);
  await shot("1-payment-service-killed");
  step = "start payment-service";
  await press("start-payment-service");
  await until("payment-service shown up", async () => (await text("svc-payment-service")).includes("up") || "still down", 30);

  step = `re-deliver ${N}`;
  await until("the load finished", async () => (await text("load-state")).startsWith("stopped") || "load running", 90);
  await page.fill("#redeliver-n", String(N));
  await press("redeliver");

  step = "every accepted order applied, duplicates suppressed, nothing lost or applied twice";
  await until("the verdict is clean and complete", async () => {
    const accepted = await number("v-accepted");
    const applied = await number("v-applied");
    const suppressed = await number("dup-total");
    const lost = await number("v-lost");
    const twice = await number("v-twice");
    const all = await text("all-applied");
    const liveAccepted = await number("accepted");
    const state = `accepted ${accepted} (live ${liveAccepted}), applied ${applied}, suppressed ${suppressed}, lost ${lost}, twice ${twice}, all applied: ${all}`;
    if (lost !== 0 || twice !== 0) throw new Fatal("the page shows a loss or a double effect: " + state);
    return (all === "yes" && accepted === liveAccepted && accepted >= 30 && suppressed >= N) || state;
  }, 240);
  log(`clean: accepted ${await number("v-accepted")}, applied ${await number("v-applied")}, suppressed ${await number("dup-total")}`);
  await shot("2-recovered-clean");

  step = "one order followed";
  await page.locator("#recent a.order-id").first().click();
  await until("the order's timeline", async () => (await page.locator("#order-timeline li").count()) >= 2 || "no timeline yet", 30);

  step = "DEDUP_INBOX=false with the fast path off";
  // Every message handled and its offset committed first: no earlier copy may reach the
  // restarted service and be counted among the N below.
  await until("consumer lag 0", async () => (await number("lag")) === 0 || `lag ${await text("lag")}`, 60);
  const before = await number("dup-bk");
  await press("toggle-inbox-off");
  await until("the red banner", async () => {
    const b = await text("banner");
    return (b.includes("DEDUP_INBOX=false") && b.includes("DEDUP_FAST_PATH=false")) || `banner: ${JSON.stringify(b)}`;
  }, 15);
  await press("redeliver");
  await until(`business-key suppressions up by ${N}`, async () => {
    const twice = await number("v-twice");
    if (twice !== 0) throw new Fatal(`the page shows ${twice} orders APPLIED TWICE with the inbox off`);
    const now = await number("dup-bk");
    if (now > before + N) throw new Fatal(`business key suppressed ${now - before}, more than the ${N} copies sent`);
    return now === before + N || `business key: ${before} → ${now}`;
  }, 120);
  // The next verdicts, after the copies were handled: still nothing applied twice.
  const checked = await text("v-checked");
  await until("a newer verdict", async () => (await text("v-checked")) !== checked || "same verdict", 60);
  const twice = await number("v-twice");
  if (twice !== 0) throw new Error(`applied twice: ${twice} with the inbox off`);
  await shot("3-inbox-off-business-key-holds");
  log(`inbox off: business key caught ${N}, applied twice ${twice}`);

  step = "heal all";
  await press("heal-all");
  await until("the banner gone", async () => (await page.locator("#banner").isHidden()) || "banner still shown", 30);
  await shot("4-healed");
  log("PASS");
  await browser.close();
} catch (e) {
  console.error(`FAIL at step "${step}": ${e.message}`);
  await shot("failure").catch(() => {});
  await browser.close();
  process.exit(1);
}
