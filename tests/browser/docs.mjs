// Opens the api's /docs page (Swagger UI, vendored) in Debian's Chromium and
// waits until it has rendered the OpenAPI document, collecting every content
// security policy violation, page error and request to another origin.
// Usage: node docs.mjs <docs url> <expected title> <path of a GET to try, e.g. /v1/stats>
// Env: CHROMIUM (default /usr/bin/chromium).
// Prints one JSON line; exits 1 if the document never renders.
import { chromium } from "playwright-core";

const [url, expected, tried] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
let failed = false;
try {
  const page = await browser.newPage();
  const problems = [];
  const consoleErrors = [];
  const elsewhere = [];
  const origin = new URL(url).origin;
  page.on("pageerror", (e) => problems.push(`page error: ${e}`));
  // Kept apart: a request "Try it out" sends may rightly fail (401 without a key).
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("request", (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith("data:")) elsewhere.push(r.url()); });
  // Every violation, reported or not to the console.
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(url);
  try {
    await page.waitForFunction(
      (title) => (document.querySelector(".swagger-ui .info .title") || {}).textContent?.includes(title),
      expected,
      { timeout: 30000 },
    );
    // An operation opens (React renders its parameters): the page works, not only its first paint.
    await page.click(`.opblock-get .opblock-summary:has([data-path="${tried}"])`);
    await page.waitForSelector(".opblock.is-open", { timeout: 10000 });
    // "Try it out" sends a request to this api and renders its answer.
    await page.click(".opblock.is-open .try-out__btn");
    await page.click(".opblock.is-open .execute");
    await page.waitForSelector(".opblock.is-open .live-responses-table", { timeout: 10000 });
    // The Authorize dialog (where a key is typed) opens too.
    await page.click(".auth-wrapper .authorize");
    await page.waitForSelector(".dialog-ux .modal-ux", { timeout: 10000 });
  } catch (e) {
    failed = true;
    problems.push(`the document never rendered: ${e.message.split("\n")[0]}`);
  }
  const violations = await page.evaluate(() => window.cspViolations);
  const operations = await page.evaluate(() => document.querySelectorAll(".opblock").length);
  console.log(JSON.stringify({ operations, violations, elsewhere, problems, console: consoleErrors }));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
