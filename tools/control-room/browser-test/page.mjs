// What both browser scripts drive the control room with: Debian's chromium opened on
// the page, the DOM read as text and numbers, a bounded wait, and a button pressed and
// its answer awaited.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

// A probe throws Fatal for what must never show (lost, applied twice): no more waiting.
export class Fatal extends Error {}

export const log = (msg) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

// Opens chromium on CONTROL_ROOM_URL; screenshots go to ARTIFACTS.
export async function openControlRoom() {
  const url = process.env.CONTROL_ROOM_URL;
  const artifacts = process.env.ARTIFACTS || new URL("./artifacts/", import.meta.url).pathname;
  if (!url) throw new Error("CONTROL_ROOM_URL is not set");
  mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // Root in CI containers: chromium's sandbox needs user namespaces it may not get.
    args: ["--no-sandbox"],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1500 } });

  const text = (id) => page.locator("#" + id).innerText();
  const number = async (id) => {
    const t = (await text(id)).trim();
    const n = Number(t);
    if (t === "" || Number.isNaN(n)) throw new Error(`#${id} shows ${JSON.stringify(t)}, not a number`);
    return n;
  };

  // Polls `probe` (which returns true or a string saying what it still waits for).
  async function until(what, probe, seconds) {
    const deadline = Date.now() + seconds * 1000;
    let why = "";
    while (Date.now() < deadline) {
      try {
        const r = await probe();
        if (r === true) return;
        why = r;
      } catch (e) {
        if (e instanceof Fatal) throw e;
        why = String(e.message || e);
      }
      await page.waitForTimeout(1000);
    }
    throw new Error(`${what}: not within ${seconds} s (last: ${why})`);
  }

  // Clicks #id and waits up to `seconds` for the page's answer ("done: ..." or
  // "FAILED: ..."); anything but "done:" throws unless `expectOk` is false.
  async function press(id, { expectOk = true, seconds = 120 } = {}) {
    log(`press #${id}`);
    await page.click("#" + id);
    await until(`#${id} answered`, async () => {
      const m = await text("message");
      return m.startsWith("done:") || m.startsWith("FAILED:") || `message: ${m}`;
    }, seconds);
    const m = await text("message");
    log(`  ${m}`);
    if (expectOk && !m.startsWith("done:")) throw new Error(`#${id}: ${m}`);
  }

  return { url, artifacts, browser, page, text, number, until, press };
}
