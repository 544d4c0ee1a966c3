// Opens the api's /live page in Debian's Chromium (headless, through
// playwright-core; no browser download) with a fake camera playing a video
// made from a test photo, and waits until the page names the person.
// Usage: node live.mjs <page url> <video.y4m> <expected name> <screenshot.png>
// Env: CHROMIUM (default /usr/bin/chromium), FACEREC_KEY (typed into the page).
// Prints one JSON line with what the page showed; exits 1 if the name never appears.
import { chromium } from "playwright-core";

const [url, video, expected, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    `--use-file-for-fake-video-capture=${video}`,
  ],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e}`));
  const origin = new URL(url).origin;
  const wsOrigin = origin.replace(/^http/, "ws");
  const elsewhere = [];
  page.on("request", (r) => { if (!r.url().startsWith(origin)) elsewhere.push(r.url()); });
  page.on("websocket", (ws) => { if (!ws.url().startsWith(wsOrigin)) elsewhere.push(ws.url()); });
  await page.goto(url);
  if (process.env.FACEREC_KEY) await page.fill("#key", process.env.FACEREC_KEY);
  await page.click("#start");
  try {
    await page.waitForFunction((name) => document.querySelector("#names").textContent.includes(name), expected, { timeout: 45000 });
  } catch (e) {
    failed = true;
    problems.push(`the name never appeared: ${e.message.split("\n")[0]}`);
  }
  // Stream a while longer, so the rate shown is the page's steady one.
  await page.waitForTimeout(3000);
  const shown = await page.evaluate(() => {
    const overlay = document.querySelector("#overlay");
    const pixels = overlay.width && overlay.height ? overlay.getContext("2d").getImageData(0, 0, overlay.width, overlay.height).data : [];
    let drawn = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) drawn++;
    return {
      names: document.querySelector("#names").textContent,
      fps: Number(document.querySelector("#fps").textContent),
      latency_ms: Number(document.querySelector("#latency").textContent),
      worker_ms: Number(document.querySelector("#worker").textContent),
      dropped: Number(document.querySelector("#dropped").textContent),
      status: document.querySelector("#status").textContent,
      video: [document.querySelector("#video").videoWidth, document.querySelector("#video").videoHeight],
      overlay_pixels_drawn: drawn,
      errors: window.facerecErrors,
    };
  });
  if (screenshot) await page.screenshot({ path: screenshot });
  console.log(JSON.stringify({ ...shown, elsewhere, problems }));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
