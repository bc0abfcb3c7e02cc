// CORS in a real browser: Debian's headless Chromium (driven by playwright-core) opens a page
// served from another loopback origin; the page's own script calls a signed stagegate API with
// `fetch` and records what it could read. Run by tests/cors_browser.rs:
//
//   node tests/browser/cors.mjs <allowed-page-url> <other-page-url> <expected-error-code>
//
// Exits non-zero, naming the check, on the first failure; prints the results as JSON.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [, , allowedUrl, otherUrl, errorCode] = process.argv;
if (!allowedUrl || !otherUrl || !errorCode) {
  console.error('usage: node cors.mjs <allowed-page-url> <other-page-url> <expected-error-code>');
  process.exit(2);
}
const executablePath = process.env.STAGEGATE_CHROMIUM || '/usr/bin/chromium';

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

const userDataDir = await mkdtemp(join(tmpdir(), 'stagegate-chromium-'));
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

/** Opens a page and waits for its script's results (an object keyed by call name). */
async function run(url) {
  const page = await ctx.newPage();
  page.setDefaultTimeout(15000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForFunction(() => window.corsResults !== undefined);
  const results = await page.evaluate(() => window.corsResults);
  check(errors.length === 0, `${url}: page errors: ${errors.join('; ')}`);
  await page.close();
  return results;
}

let status = 0;
try {
  const allowed = await run(allowedUrl);
  console.log(JSON.stringify({ allowed }));
  const good = allowed.good;
  check(good.ok === true, `allowed origin, signed call: fetch resolved (${good.error})`);
  check(good.status === 200, `allowed origin, signed call: status 200 (got ${good.status})`);
  const body = JSON.parse(good.body);
  check(body.tag === 'cors-up' && body.path === '/orders', `the upstream's body is readable: ${good.body}`);
  check(body.headers.origin === new URL(allowedUrl).origin, 'the upstream saw the page origin');
  check(/^[0-9A-Za-z-]{8,}$/.test(good.requestId || ''), `X-Ca-Request-Id is exposed (got ${good.requestId})`);
  check(good.upstream === null, 'a header not in the expose list stays hidden from the script');

  const bad = allowed.badSignature;
  check(bad.ok === true, `allowed origin, wrong signature: fetch resolved (${bad.error})`);
  check(bad.status === 403, `wrong signature: status 403 (got ${bad.status})`);
  check(bad.errorCode === errorCode, `X-Ca-Error-Code readable on the error (got ${bad.errorCode})`);
  check(/^[0-9A-Za-z-]{8,}$/.test(bad.requestId || ''), 'X-Ca-Request-Id readable on the error');

  const other = await run(otherUrl);
  console.log(JSON.stringify({ other }));
  check(other.good.ok === false, 'another origin: fetch rejects');
  check(other.good.error.includes('TypeError') || other.good.error.includes('Failed to fetch'),
    `another origin: a network (CORS) error (got ${other.good.error})`);
  console.log('ok - cors in chromium');
} catch (e) {
  console.error(e.stack || String(e));
  status = 1;
} finally {
  await ctx.close();
  await rm(userDataDir, { recursive: true, force: true });
}
process.exit(status);
