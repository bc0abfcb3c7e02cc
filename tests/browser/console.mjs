// Walks the stagegate console's whole workflow in Debian's headless Chromium, driven by
// playwright-core. Run by tests/console_browser.rs:
//
//   node tests/browser/console.mjs <console-url> <admin-token> <screenshot-dir>
//
// with CONSOLE_UPSTREAM_1 / CONSOLE_UPSTREAM_2 the base URLs of two loopback echo upstreams
// (each answers JSON naming its tag). Exits non-zero, naming the step, on the first failure.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [, , consoleUrl, token, outDir] = process.argv;
const up1 = process.env.CONSOLE_UPSTREAM_1;
const up2 = process.env.CONSOLE_UPSTREAM_2;
if (!consoleUrl || !token || !outDir || !up1 || !up2) {
  console.error('usage: CONSOLE_UPSTREAM_1=.. CONSOLE_UPSTREAM_2=.. node console.mjs <console-url> <token> <out-dir>');
  process.exit(2);
}
const executablePath = process.env.STAGEGATE_CHROMIUM || '/usr/bin/chromium';

let current = 'start';
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

const userDataDir = await mkdtemp(join(tmpdir(), 'stagegate-chromium-'));
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  viewport: { width: 1280, height: 800 },
  acceptDownloads: true,
  // Without the background-networking flags Chromium dials out at start, which a closed
  // network refuses.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = ctx.pages()[0] || (await ctx.newPage());
page.setDefaultTimeout(15000);
const pageErrors = [];
const cspViolations = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
page.on('console', (m) => {
  if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) cspViolations.push(m.text());
});

const dialog = page.locator('#dialog');
const h1 = (name) => page.getByRole('heading', { level: 1, name, exact: true });
const shot = async (name) => {
  await page.waitForTimeout(150);
  await page.screenshot({ path: join(outDir, `${name}.png`) });
};
const nav = async (name, heading) => {
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name, exact: true }).click();
  await h1(heading).waitFor();
};
/** The error shown next to a control (its aria-describedby error slot). */
const errorOf = async (locator) => {
  const id = await locator.getAttribute('id');
  return page.locator(`[id="${id}-err"]`);
};
const dialogOpen = () => page.evaluate(() => document.getElementById('dialog').open);

/** Every control a person can use has an accessible name, as Chromium computes it. */
async function assertLabelled(where) {
  const cdp = await ctx.newCDPSession(page);
  const { nodes } = await cdp.send('Accessibility.getFullAXTree');
  await cdp.detach();
  const roles = new Set(['textbox', 'combobox', 'checkbox', 'searchbox', 'spinbutton', 'listbox', 'button', 'link', 'tab', 'radio']);
  const bad = nodes.filter((n) => !n.ignored && roles.has(n.role?.value) && !(n.name?.value || '').trim());
  check(bad.length === 0, `${where}: controls without an accessible name: ${JSON.stringify(bad.map((n) => n.role.value))}`);
  const inputs = nodes.filter((n) => !n.ignored && ['textbox', 'combobox', 'checkbox', 'searchbox'].includes(n.role?.value));
  return inputs.length;
}

/** Tab from the top of the page reaches every visible control, in order, and wraps. */
async function assertTabReachesEverything(where) {
  const total = await page.evaluate(() => {
    const sel = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex="0"]';
    const els = [...document.querySelectorAll(sel)].filter((e) => e.offsetParent !== null && e.tabIndex >= 0 && !e.closest('dialog:not([open])'));
    els.forEach((e, i) => { e.dataset.kb = String(i); });
    document.activeElement?.blur();
    window.scrollTo(0, 0);
    return els.length;
  });
  const seen = new Set();
  for (let i = 0; i < total + 8 && seen.size < total; i += 1) {
    await page.keyboard.press('Tab');
    const kb = await page.evaluate(() => document.activeElement?.dataset?.kb);
    if (kb !== undefined) seen.add(kb);
  }
  check(seen.size === total, `${where}: Tab reached ${seen.size} of ${total} controls`);
}

async function assertNoHorizontalScroll(where) {
  const [sw, iw] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(sw <= iw, `${where}: the page scrolls sideways at ${iw} px (content is ${sw} px wide)`);
}

async function adminGet(path) {
  return page.evaluate(async (p) => {
    const root = location.pathname.replace(/\/console\/[^/]*$/, '');
    const r = await fetch(root + p, { headers: { Authorization: `Bearer ${sessionStorage.getItem('stagegate.admin-token')}` } });
    return { status: r.status, body: await r.json() };
  }, path);
}

const steps = [];
async function step(name, fn) {
  current = name;
  const t = Date.now();
  await fn();
  steps.push(`${name} (${Date.now() - t} ms)`);
  console.log(`ok - ${name}`);
}

let backendId;
let apiId;
let appId;

try {
  await step('sign in: a wrong token is refused next to the field; the right one opens the console', async () => {
    await page.goto(consoleUrl);
    await h1('Sign in to the stagegate console').waitFor();
    await assertLabelled('sign-in');
    const input = page.getByLabel('Admin token');
    await input.fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const err = await errorOf(input);
    await err.getByText('refused this token').waitFor();
    check((await input.getAttribute('aria-invalid')) === 'true', 'the token field is marked invalid');
    await shot('sign-in');
    await input.fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await h1('Backend Services').waitFor();
    check(!page.url().includes(token), 'the token is not in the URL');
    check(await page.evaluate(() => document.cookie === ''), 'no cookie');
    check(await page.evaluate((t) => sessionStorage.getItem('stagegate.admin-token') === t, token), 'token kept in sessionStorage');
    await page.getByText('No backend service yet').waitFor();
  });

  await step('create backend service dialog: labelled, traps focus, closes on Escape', async () => {
    await page.getByRole('button', { name: 'Create Backend Service' }).click();
    check(await dialogOpen(), 'dialog opens');
    await assertLabelled('create backend dialog');
    for (let i = 0; i < 14; i += 1) {
      await page.keyboard.press(i % 5 === 4 ? 'Shift+Tab' : 'Tab');
      check(await page.evaluate(() => document.getElementById('dialog').contains(document.activeElement)), `focus stays in the dialog (Tab ${i + 1})`);
    }
    await page.keyboard.press('Escape');
    check(!(await dialogOpen()), 'Escape closes the dialog');
    check(await page.evaluate(() => document.activeElement?.textContent === 'Create Backend Service'), 'focus returns to the button that opened it');
  });

  await step('create a backend service; a name clash is shown next to the name', async () => {
    await page.getByRole('button', { name: 'Create Backend Service' }).click();
    await dialog.getByLabel('Name').fill('orders_http');
    await dialog.getByLabel('Type').selectOption('HTTP');
    await dialog.getByLabel('Description').fill('the orders service');
    await dialog.getByRole('button', { name: 'Create', exact: true }).click();
    await h1('orders_http HTTP').waitFor();
    backendId = /#\/backends\/([^/]+)\//.exec(page.url())[1];
    await nav('Backend Services', 'Backend Services');
    await page.getByRole('button', { name: 'Create Backend Service' }).click();
    const name = dialog.getByLabel('Name');
    await name.fill('orders_http');
    await dialog.getByRole('button', { name: 'Create', exact: true }).click();
    await (await errorOf(name)).getByText('orders_http').waitFor();
    await page.keyboard.press('Escape');
    await page.getByLabel('Search by name').fill('nothing-like-it');
    await page.getByText('No backend service matches.').waitFor();
    await page.getByLabel('Search by name').fill('orders');
    await page.getByLabel('Type').selectOption('MOCK');
    await page.getByText('No backend service matches.').waitFor();
    await page.getByLabel('Type').selectOption('HTTP');
    await page.getByRole('link', { name: 'orders_http' }).waitFor();
    await shot('backend-services');
    await assertTabReachesEverything('backend services');
  });

  await step('define it for TEST; the tabs follow the arrow keys', async () => {
    await page.getByRole('link', { name: 'orders_http' }).click();
    await page.getByRole('tab', { name: 'TEST' }).waitFor();
    await page.getByText('No definition in TEST').waitFor();
    await page.getByRole('button', { name: 'Create TEST definition' }).click();
    await dialog.getByLabel('Backend URL').fill(up1);
    await dialog.getByRole('button', { name: 'Create definition' }).click();
    await page.getByRole('definition').filter({ hasText: up1 }).waitFor();
    await page.getByRole('tab', { name: /TEST/ }).focus();
    await page.keyboard.press('ArrowRight');
    await page.getByText('No definition in PRE').waitFor();
    await page.keyboard.press('ArrowLeft');
    await page.getByRole('definition').filter({ hasText: up1 }).waitFor();
    await assertLabelled('backend service page');
    await shot('backend-service');
  });

  await step('create a group and an API bound to the backend service', async () => {
    await nav('APIs', 'APIs');
    await page.getByText('No group yet').waitFor();
    await page.getByRole('button', { name: 'Create group' }).click();
    await dialog.getByLabel('Name').fill('shop');
    await dialog.getByRole('button', { name: 'Create group' }).click();
    await page.getByText('No API in this group yet.').waitFor();
    await page.getByRole('button', { name: 'Create API' }).click();
    await h1('Create API').waitFor();
    await page.getByLabel('Name', { exact: true }).fill('getOrder');
    await page.getByLabel('Method', { exact: true }).selectOption('GET');
    await page.getByLabel('Path', { exact: true }).fill('/orders');
    await page.getByLabel('Parameter handling').selectOption('MAPPING');
    await page.getByRole('button', { name: 'Add parameter' }).click();
    const row = page.getByRole('group', { name: 'Parameter' });
    await row.getByLabel('Name').fill('lang');
    await row.getByLabel('Location').selectOption('QUERY');
    await row.getByLabel('Allowed values (comma-separated)').fill('en,zh');
    await row.getByLabel('Default').fill('en');
    await page.getByLabel('Backend service').selectOption({ label: 'orders_http (HTTP)' });
    await page.getByLabel('Response content type').fill('application/json');
    await assertLabelled('API form');
    await page.getByRole('button', { name: 'Create API' }).click();
    await h1('getOrder').waitFor();
    apiId = /#\/apis\/([^/?]+)/.exec(page.url())[1];
  });

  await step('publish to TEST; publishing to PRE is refused next to the environment', async () => {
    await page.getByRole('button', { name: 'Publish', exact: true }).click();
    await dialog.getByLabel('Environment').selectOption('TEST');
    await dialog.getByLabel('Description').fill('first version');
    await dialog.getByRole('button', { name: 'Publish', exact: true }).click();
    await page.getByRole('button', { name: 'Unpublish from TEST' }).waitFor();
    await page.getByRole('button', { name: 'Publish', exact: true }).click();
    const env = dialog.getByLabel('Environment');
    await env.selectOption('PRE');
    await dialog.getByRole('button', { name: 'Publish', exact: true }).click();
    const err = await errorOf(env);
    await err.filter({ hasText: /PRE/ }).waitFor();
    check(await dialogOpen(), 'the dialog stays open with the refusal');
    await shot('publish-refused');
    await page.keyboard.press('Escape');
    const pre = await adminGet(`/apis/${apiId}/deployments`);
    check(pre.body.every((d) => d.stage !== 'PRE'), 'nothing was published to PRE');
    await nav('APIs', 'APIs');
    await page.getByText('TEST ✓').waitFor();
    await shot('apis');
  });

  await step('create an app: secrets hidden until revealed; authorize it for the API in TEST', async () => {
    await nav('Apps', 'Apps');
    await page.getByText('No app yet').waitFor();
    await page.getByRole('button', { name: 'Create app' }).click();
    await dialog.getByLabel('Name').fill('mobile_app');
    await dialog.getByRole('button', { name: 'Create app' }).click();
    await h1('mobile_app').waitFor();
    appId = /#\/apps\/([^/?]+)/.exec(page.url())[1];
    const app = await adminGet(`/apps/${appId}`);
    const secret = app.body.app_secret;
    check(!(await page.locator('main').innerText()).includes(secret), 'the AppSecret is hidden');
    await page.getByRole('button', { name: 'Reveal AppSecret' }).click();
    await page.getByText(secret).waitFor();
    await page.getByRole('button', { name: 'Hide AppSecret' }).click();
    check(!(await page.locator('main').innerText()).includes(secret), 'hidden again');
    await page.getByRole('button', { name: 'Copy AppCode' }).waitFor();
    await page.getByRole('button', { name: 'Authorize an API' }).click();
    await dialog.getByLabel('API').selectOption({ index: 0 });
    await dialog.getByLabel('Environment').selectOption('TEST');
    await dialog.getByLabel('Expires').fill('2031-01-01T00:00');
    await dialog.getByRole('button', { name: 'Authorize' }).click();
    await page.getByRole('link', { name: 'getOrder' }).waitFor();
    await assertLabelled('app page');
    await shot('app');
  });

  const debugOnce = async (expectTag) => {
    await nav('Debug', 'Debug API');
    await page.getByLabel('API', { exact: true }).selectOption({ label: 'getOrder' });
    await page.getByLabel('Environment').selectOption('TEST');
    await page.getByLabel('App', { exact: true }).selectOption({ label: 'mobile_app' });
    await page.getByLabel('Authentication').selectOption('SIGNATURE');
    await page.getByLabel(/^lang/).fill('zh');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('[data-debug="status"]').waitFor();
    const status = await page.locator('[data-debug="status"]').innerText();
    const body = await page.locator('[data-debug="body"]').innerText();
    check(status === '200', `debug status 200, got ${status}: ${body}`);
    check(body.includes(`"tag":"${expectTag}"`), `the response comes from ${expectTag}: ${body}`);
    check(body.includes('lang=zh'), `the parameter reached the backend: ${body}`);
    const sts = await page.locator('[data-debug="string-to-sign"]').innerText();
    check(sts.startsWith('GET') && sts.includes('/orders'), `the string to sign is shown: ${sts}`);
    const sent = await page.locator('[data-debug="request"]').innerText();
    check(/x-ca-signature:/i.test(sent), 'the request as sent shows its signature header');
    await page.getByRole('heading', { name: 'Gateway trace' }).waitFor();
  };

  await step('debug the API as the app in TEST', async () => {
    await debugOnce('v1');
    await assertLabelled('debug page');
    await page.evaluate(() => document.querySelector('[aria-label="Debug result"] h2')?.scrollIntoView({ block: 'start' }));
    await shot('debug');
  });

  await step('docs: the OpenAPI document, readable and downloadable', async () => {
    await nav('Docs', 'API documentation');
    await page.getByLabel('Environment').selectOption('TEST');
    await page.getByRole('heading', { name: 'GET /orders' }).waitFor();
    await page.getByRole('cell', { name: 'one of en, zh' }).waitFor();
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download OpenAPI JSON' }).click(),
    ]);
    check(download.suggestedFilename() === 'shop-TEST-openapi.json', `file name ${download.suggestedFilename()}`);
    const doc = JSON.parse(await readFile(await download.path(), 'utf8'));
    check(doc.paths && doc.paths['/orders'], 'the download is the OpenAPI document');
    await shot('docs');
  });

  await step('edit the TEST definition: the impact is listed first, then the debug response follows', async () => {
    await page.goto(`${consoleUrl}#/backends/${backendId}/TEST`);
    await page.getByRole('button', { name: 'Edit TEST definition' }).click();
    await dialog.getByLabel('Backend URL').fill(up2);
    await dialog.getByRole('button', { name: 'Review impact' }).click();
    const impact = dialog.getByRole('region', { name: 'Impact in TEST' });
    await impact.locator('[data-impact="repointed"]').getByRole('link', { name: 'getOrder' }).waitFor();
    const still = await adminGet(`/backends/${backendId}/stages/TEST`);
    check(still.body.url === up1, 'the review changed nothing');
    await shot('impact-edit');
    await dialog.getByRole('button', { name: 'Apply change' }).click();
    await page.getByRole('definition').filter({ hasText: up2 }).waitFor();
    await debugOnce('v2');
  });

  await step('a backend service in use cannot be deleted; the refusal lists the API', async () => {
    await nav('Backend Services', 'Backend Services');
    await page.getByRole('button', { name: 'Delete orders_http' }).click();
    await dialog.getByRole('button', { name: 'Delete backend service' }).click();
    await dialog.getByRole('alert').filter({ hasText: 'getOrder' }).waitFor();
    await page.keyboard.press('Escape');
  });

  await step('delete the TEST definition: the impact lists the API, which is then unpublished', async () => {
    await page.getByRole('link', { name: 'orders_http' }).click();
    await page.getByRole('button', { name: 'Delete TEST definition' }).click();
    await dialog.locator('[data-impact="unpublished"]').getByRole('link', { name: 'getOrder' }).waitFor();
    const still = await adminGet(`/apis/${apiId}/deployments`);
    check(still.body.some((d) => d.stage === 'TEST' && d.live), 'the review changed nothing');
    await shot('impact-delete');
    await dialog.getByRole('button', { name: 'Delete TEST definition' }).click();
    await page.getByText('No definition in TEST').waitFor();
    await page.goto(`${consoleUrl}#/apis/${apiId}`);
    await h1('getOrder').waitFor();
    check((await page.getByRole('button', { name: 'Unpublish from TEST' }).count()) === 0, 'no longer published in TEST');
    await page.getByRole('cell', { name: 'not published' }).first().waitFor();
  });

  await step('a 390-px phone: no main page scrolls sideways', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [hash, heading] of [
      ['#/backends', 'Backend Services'], [`#/backends/${backendId}/TEST`, 'orders_http HTTP'], ['#/apis', 'APIs'],
      [`#/apis/${apiId}`, 'getOrder'], [`#/apis/${apiId}/edit`, 'Edit getOrder'], ['#/apps', 'Apps'],
      [`#/apps/${appId}`, 'mobile_app'], ['#/debug', 'Debug API'], ['#/docs', 'API documentation'],
    ]) {
      await page.goto(`${consoleUrl}${hash}`);
      await h1(heading).waitFor();
      await assertNoHorizontalScroll(hash);
    }
    await page.goto(`${consoleUrl}#/backends`);
    await h1('Backend Services').waitFor();
    await shot('phone-backend-services');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await step('a lost token sends the user back to sign-in', async () => {
    await page.evaluate(() => sessionStorage.setItem('stagegate.admin-token', 'revoked'));
    await page.goto(`${consoleUrl}#/apps`);
    await page.reload();
    await h1('Sign in to the stagegate console').waitFor();
    await page.getByText('no longer accepts your token').waitFor();
    check(await page.evaluate(() => sessionStorage.getItem('stagegate.admin-token') === null), 'the token is forgotten');
  });

  check(pageErrors.length === 0, `no script errors: ${pageErrors.join(' | ')}`);
  check(cspViolations.length === 0, `no CSP violations: ${cspViolations.join(' | ')}`);
  check((await ctx.cookies()).length === 0, 'no cookies were set');
  console.log(JSON.stringify({ backendId, apiId, appId, steps }));
} catch (e) {
  console.error(`FAILED at step "${current}": ${e.message}`);
  try { await page.screenshot({ path: join(outDir, 'failure.png') }); } catch { /* best effort */ }
  process.exitCode = 1;
} finally {
  await ctx.close();
  await rm(userDataDir, { recursive: true, force: true });
}
