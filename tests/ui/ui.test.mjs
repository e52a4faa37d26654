// End-to-end tests of durafn's web UI in a real headless Chromium.
//
// Run by scripts/ui-test.sh (which installs Chromium and playwright-core and
// builds target/debug/durafn first):
//   node --test --test-concurrency=1 ui.test.mjs
//
// - `durafn dev` with the repo's template.yaml: an order whose input carries
//   "<script>alert(1)</script>", watched live from the list to its page until
//   it succeeds; the status filter; cancel from the UI; screenshots at
//   1280×800 into test-output/ui/; reset from a timeline entry and rerun.
// - `durafn server` with --token-file: the UI asks for the token (signing in
//   sets an HttpOnly session cookie), rejects a
//   wrong one, and shows the list with the right one.
//
// Every process started here is killed when the tests end (and its pid is
// written to $UI_TEST_PIDFILE so the shell script's trap can kill it too).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = path.join(ROOT, 'test-output', 'ui');
const BIN = path.join(ROOT, 'target', 'debug');
const DURAFN = process.env.DURAFN_BIN || path.join(BIN, 'durafn');
const ORDER = path.join(BIN, 'order');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const VIEWPORT = { width: 1280, height: 800 };
const XSS = '<script>alert(1)</script>';

fs.mkdirSync(OUT, { recursive: true });

// ------------------------------------------------------------------ helpers

const children = new Set();

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function remember(pid) {
  const file = process.env.UI_TEST_PIDFILE;
  if (file && pid) fs.appendFileSync(file, `${pid}\n`);
}

/** Starts `durafn ARGS` in its own process group; its log goes to test-output/ui/NAME.log. */
function startDurafn(name, args) {
  const log = fs.openSync(path.join(OUT, `${name}.log`), 'w');
  const child = spawn(DURAFN, args, {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
  });
  fs.closeSync(log);
  children.add(child);
  remember(child.pid);
  child.on('exit', () => children.delete(child));
  return child;
}

/** SIGINT (durafn stops its handler processes), then SIGKILL of the whole group. */
async function stop(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try { process.kill(child.pid, 'SIGINT'); } catch { /* already gone */ }
  const timer = new Promise((resolve) => setTimeout(resolve, 5000));
  await Promise.race([exited, timer]);
  try { process.kill(-child.pid, 'SIGKILL'); } catch { /* group gone */ }
  try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
}

function killAllNow() {
  for (const child of children) {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
}
process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { killAllNow(); process.exit(130); });
}

/** `--exe NAME=PATH` for the examples already built in target/debug. */
function prebuiltExes() {
  const args = ['--exe', `order=${ORDER}`];
  for (const fn of ['approval', 'alert-escalation']) {
    if (fs.existsSync(path.join(BIN, fn))) args.push('--exe', `${fn}=${path.join(BIN, fn)}`);
  }
  return args;
}

async function call(base, method, p, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = text; }
  return { status: res.status, json, headers: res.headers };
}

async function waitHealthy(base, child, limitMs) {
  const deadline = Date.now() + limitMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`durafn exited with ${child.exitCode}; see test-output/ui/*.log`);
    try {
      const r = await call(base, 'GET', '/healthz');
      if (r.status === 200) return;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`durafn did not come up at ${base}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function startOrder(base, name, input, token) {
  return startExec(base, 'order', name, input, token);
}

async function startExec(base, fn, name, input, token) {
  const r = await call(base, 'POST', `/v1/functions/${fn}/executions`, { name, input }, token);
  assert.ok([200, 201, 202].includes(r.status), `start ${name}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

async function waitStatus(base, id, want, limitMs, token) {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const r = await call(base, 'GET', `/v1/executions/${id}`, undefined, token);
    if (r.json && r.json.status === want) return r.json;
    if (Date.now() > deadline) throw new Error(`${id} did not reach ${want}: ${JSON.stringify(r.json)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/** A page that records dialogs (an executed alert would show here) and script errors. */
async function watchedPage(context) {
  const page = await context.newPage();
  const problems = { dialogs: [], errors: [], csp: [] };
  page.on('dialog', async (d) => { problems.dialogs.push(`${d.type()}: ${d.message()}`); await d.dismiss(); });
  page.on('pageerror', (e) => problems.errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) problems.csp.push(m.text());
  });
  return { page, problems };
}

// ------------------------------------------------------------ durafn dev

describe('durafn dev: the UI', () => {
  let dev;
  let base;
  let browser;
  let context;
  let page;
  let problems;
  let state;

  before(async () => {
    state = fs.mkdtempSync(path.join(os.tmpdir(), 'durafn-ui-dev-'));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const args = ['dev', '--port', String(port), '--state', path.join(state, '.durafn'), '--template', path.join(ROOT, 'template.yaml')];
    // UI_TEST_PREBUILT=1: use the examples' binaries in target/debug as they
    // are instead of letting `durafn dev` build them.
    if (process.env.UI_TEST_PREBUILT === '1') args.push(...prebuiltExes());
    dev = startDurafn('dev', args);
    // `durafn dev` builds the template's functions first (a no-op when built).
    await waitHealthy(base, dev, 600_000);
    browser = await launch();
    context = await browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1 });
    ({ page, problems } = await watchedPage(context));
  });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    await stop(dev);
    if (state) fs.rmSync(state, { recursive: true, force: true });
  });

  test('serves the pages with a strict Content-Security-Policy and embedded assets', async () => {
    for (const p of ['/ui/', '/ui/executions/anything', '/ui/assets/app.js', '/ui/assets/app.css']) {
      const r = await fetch(base + p);
      assert.equal(r.status, 200, p);
      const csp = r.headers.get('content-security-policy') || '';
      assert.match(csp, /default-src 'self'/, p);
      assert.match(csp, /script-src 'self'/, p);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, p);
    }
    const counts = await call(base, 'GET', '/ui/api/counts');
    assert.equal(counts.status, 200);
    assert.ok(counts.json.functions.includes('order'), JSON.stringify(counts.json));
    assert.equal(typeof counts.json.counts.SUCCEEDED, 'number');
  });

  test('the list shows a new execution live, with its status', { timeout: 60_000 }, async () => {
    await page.goto(`${base}/ui/`);
    await page.locator('#executions').waitFor();
    // Started after the page is open: it must appear without a reload.
    await page.evaluate(() => { window.__noReload = true; });
    await startOrder(base, 'ui-order-1', { order_id: 'o-ui-1', amount_cents: 1999, note: XSS });
    await startOrder(base, 'ui-declined-1', { order_id: 'o-ui-2', amount_cents: 0 });
    await startOrder(base, 'ui-retry-1', { order_id: 'o-ui-3', amount_cents: 4200, fail_reserve_attempts: 2 });
    const row = page.locator('tr[data-id="ui-order-1"]');
    await row.waitFor({ timeout: 15_000 });
    await assertText(row.locator('.badge'), /pending|running|suspended/i);
    await assertText(page.locator('tr[data-id="ui-declined-1"] .badge'), /failed/i, 15_000);
    // "Now at": the order waits on its cool-off timer.
    await assertText(row.locator('.c-now'), /cool-off/, 15_000);
    assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was reloaded');
    // Counts per status.
    await assertText(page.locator('.chip[data-status="FAILED"] .chip-count'), /^1$/, 15_000);
  });

  test('the status filter narrows the list', { timeout: 30_000 }, async () => {
    await page.locator('.chip[data-status="FAILED"]').click();
    await page.waitForURL(/status=FAILED/);
    await page.locator('tr[data-id="ui-order-1"]').waitFor({ state: 'detached', timeout: 10_000 });
    await page.locator('tr[data-id="ui-declined-1"]').waitFor();
    const statuses = await page.locator('#executions tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.status));
    assert.deepEqual([...new Set(statuses)], ['FAILED']);
    await assertText(page.locator('tr[data-id="ui-declined-1"] .c-now'), /declined/, 10_000);
    await page.locator('.chip[data-status="ALL"]').click();
    await page.locator('tr[data-id="ui-order-1"]').waitFor({ timeout: 10_000 });
    // Search by id.
    await page.locator('#f-q').fill('retry');
    await page.locator('tr[data-id="ui-order-1"]').waitFor({ state: 'detached', timeout: 10_000 });
    await page.locator('tr[data-id="ui-retry-1"]').waitFor();
    await page.locator('#f-q').fill('');
    await page.locator('tr[data-id="ui-order-1"]').waitFor({ timeout: 10_000 });
    // Filter by a field of the input (applied on Enter).
    await page.locator('#f-where').fill('input.order_id=o-ui-1');
    await page.locator('#f-where').press('Enter');
    await page.waitForURL(/where=input.order_id/);
    await page.locator('tr[data-id="ui-retry-1"]').waitFor({ state: 'detached', timeout: 10_000 });
    await page.locator('tr[data-id="ui-order-1"]').waitFor();
    await page.locator('#f-where').fill('');
    await page.locator('#f-where').press('Enter');
    await page.locator('tr[data-id="ui-retry-1"]').waitFor({ timeout: 10_000 });
    // A search attribute (indexed): no order sets one, so nothing matches.
    await page.locator('#f-where').fill('attr.customer=42');
    await page.locator('#f-where').press('Enter');
    await page.waitForURL(/where=attr.customer/);
    await assertText(page.locator('.table-note'), /No executions match/, 10_000);
    // A bad filter: the API's 400 message, shown as text (markup escaped).
    await page.locator('#f-where').fill('<b>x</b>.y=1');
    await page.locator('#f-where').press('Enter');
    await assertText(page.locator('.alert-error').first(), /must start with input\., output\. or attr\./, 10_000);
    assert.equal(await page.locator('.alert-error b').count(), 0, 'the filter text is not markup');
    await page.locator('#f-where').fill('');
    await page.locator('#f-where').press('Enter');
    await page.locator('tr[data-id="ui-retry-1"]').waitFor({ timeout: 10_000 });
    // Function and time range.
    await page.locator('#f-function').selectOption('order');
    await page.waitForURL(/function=order/);
    await page.locator('#f-range').selectOption('15m');
    await page.waitForURL(/range=15m/);
    await page.locator('tr[data-id="ui-order-1"]').waitFor({ timeout: 10_000 });
    await page.locator('#f-range').selectOption('custom');
    await page.locator('#f-since').fill('2099-01-01T00:00');
    await assertText(page.locator('.table-note'), /No executions match/, 10_000);
    await assertText(page.locator('.chip[data-status="ALL"] .chip-count'), /^0$/, 10_000);
    await page.locator('button', { hasText: 'Clear filters' }).click();
    await page.locator('tr[data-id="ui-order-1"]').waitFor({ timeout: 10_000 });
    await page.waitForURL((u) => u.pathname === '/ui/' && u.search === '');
  });

  test('the execution page shows steps, payloads and waits, escaping user input', { timeout: 30_000 }, async () => {
    await page.locator('tr[data-id="ui-order-1"] a').click();
    await page.waitForURL(/\/ui\/executions\/ui-order-1$/);
    await page.locator('.op-row[data-name="charge"]').waitFor({ timeout: 10_000 });
    await page.locator('.op-row[data-name="cool-off"]').waitFor();
    // The charge step's result, right in its row.
    await assertText(page.locator('.op-row[data-name="charge"] .op-result'), /ch-o-ui-1-1/);
    // What it waits for, with a countdown.
    const now = page.locator('#now');
    const nowText = await now.textContent();
    if (/Waiting for/i.test(nowText)) {
      assert.match(nowText, /timer/);
      assert.match(nowText, /cool-off/);
      assert.match(nowText, /in \d+(\.\d)? s|due now/);
      await page.screenshot({ path: path.join(OUT, 'execution-waiting.png') });
    }
    // The input renders "<script>" as text: visible, never executed.
    await assertText(page.locator('#input-panel'), /<script>alert\(1\)<\/script>/);
    assert.equal(await page.locator('#input-panel script').count(), 0);
    assert.equal(await page.evaluate(() => document.scripts.length), 1);
    assert.deepEqual(problems.dialogs, []);
    // A step expands to its pretty-printed result.
    await page.locator('.op-row[data-name="charge"]').click();
    const detail = page.locator('.op-row[data-name="charge"] + .op-detail');
    await detail.waitFor({ state: 'visible' });
    await assertText(detail.locator('.json-pre'), /"ch-o-ui-1-1"/);
  });

  test('the page follows the execution live until it succeeds', { timeout: 60_000 }, async () => {
    await page.evaluate(() => { window.__noReload = true; });
    await assertText(page.locator('#exec-head .badge'), /succeeded/i, 45_000);
    assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was reloaded');
    for (const name of ['charge', 'cool-off', 'reserve', 'email']) {
      await page.locator(`.op-row[data-name="${name}"]`).waitFor({ timeout: 5_000 });
      assert.equal(await page.locator(`.op-row[data-name="${name}"]`).getAttribute('class'), 'op-row op-status-SUCCEEDED'.concat(name === 'charge' ? ' open' : ''));
    }
    assert.equal(await page.locator('.op-row[data-name="reserve"] .op-bar.op-ok').count(), 1);
    await assertText(page.locator('#output-panel'), /rsv-o-ui-1/);
    await assertText(page.locator('#now'), /succeeded/);
    // The charge row stayed expanded through the live updates.
    await page.locator('.op-row[data-name="charge"] + .op-detail').waitFor({ state: 'visible' });
    await page.locator('.op-row[data-name="charge"]').click();
    await page.screenshot({ path: path.join(OUT, 'execution.png') });
    assert.deepEqual(problems.dialogs, []);
  });

  test('a retried step shows its attempts', { timeout: 60_000 }, async () => {
    await waitStatus(base, 'ui-retry-1', 'SUCCEEDED', 45_000);
    await page.goto(`${base}/ui/executions/ui-retry-1`);
    const reserve = page.locator('.op-row[data-name="reserve"]');
    await reserve.waitFor({ timeout: 10_000 });
    await assertText(reserve.locator('.tag'), /3 attempts/);
    assert.equal(await reserve.locator('.att-bar').count(), 3);
    await page.screenshot({ path: path.join(OUT, 'execution-retried.png') });
  });

  test('a step failing 3 times: 4 attempt bars with their errors, invocations and logs, live', { timeout: 90_000 }, async () => {
    await startOrder(base, 'ui-retry-2', { order_id: 'o-ui-8', amount_cents: 4300, fail_reserve_attempts: 3 });
    await page.goto(`${base}/ui/executions/ui-retry-2`);
    await page.evaluate(() => { window.__noReload = true; });
    const reserve = page.locator('.op-row[data-name="reserve"]');
    await reserve.waitFor({ timeout: 30_000 });
    // While it runs, the failed attempts appear as red bars.
    await reserve.locator('.att-bar.att-bad').first().waitFor({ timeout: 20_000 });
    assert.notEqual((await call(base, 'GET', '/v1/executions/ui-retry-2')).json.status, 'SUCCEEDED');
    await assertText(page.locator('#exec-head .badge'), /succeeded/i, 60_000);
    await assertText(reserve.locator('.tag'), /4 attempts/);
    assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was reloaded');
    // Each attempt its own bar: three red, one green.
    await assertText(page.locator('#inv-summary'), /invocations/);
    const counts = async () => [await reserve.locator('.att-bar').count(), await reserve.locator('.att-bar.att-bad').count(), await reserve.locator('.att-bar.att-ok').count()];
    const deadline = Date.now() + 10_000;
    while (JSON.stringify(await counts()) !== '[4,3,1]' && Date.now() < deadline) await page.waitForTimeout(200);
    assert.deepEqual(await counts(), [4, 3, 1]);
    // The error on hover (the bar's title)...
    for (let n = 1; n <= 3; n++) {
      const title = await reserve.locator(`.att-bar[data-attempt="${n}"]`).getAttribute('title');
      assert.match(title, new RegExp(`attempt ${n}: retrying .*inventory service timed out \\(attempt ${n}\\)`));
    }
    assert.match(await reserve.locator('.att-bar[data-attempt="4"]').getAttribute('title'), /attempt 4: succeeded/);
    // ...and on click, in the step's detail, the clicked attempt selected.
    await reserve.locator('.att-bar[data-attempt="2"]').click();
    const detail = page.locator('.op-row[data-name="reserve"] + .op-detail');
    await detail.waitFor({ state: 'visible' });
    assert.equal(await detail.locator('.attempt').count(), 4);
    assert.equal(await detail.locator('.attempt-bad').count(), 3);
    await assertText(detail.locator('.attempt.selected'), /Attempt 2[\s\S]*inventory service timed out \(attempt 2\)/);
    // Invocation boundaries: one bar per invocation, a mark per invocation across each row.
    const hist = (await call(base, 'GET', '/v1/executions/ui-retry-2/history')).json;
    const invs = hist.invocations;
    assert.ok(invs.length >= 5, JSON.stringify(invs));
    const reserveOp = hist.operations.find((o) => o.name === 'reserve');
    assert.equal(reserveOp.attempts.length, 4);
    assert.equal(await page.locator('#invocations .inv-bar').count(), invs.length);
    assert.equal(await reserve.locator('.inv-mark').count(), invs.length);
    // The history interleaves invocations, attempts, waits and the handler's logs, in time order.
    const events = await page.locator('#events-list .ev-text').allTextContents();
    const at = (re, from = 0) => events.findIndex((t, i) => i >= from && re.test(t));
    const charged = at(/charged card/);
    assert.ok(charged >= 0, events.join('\n'));
    const coolOff = at(/sleep “cool-off” started waiting/);
    const failed = [1, 2, 3].map((n) => at(new RegExp(`step “reserve” attempt ${n} retrying: .*inventory service timed out \\(attempt ${n}\\)`)));
    const ok = at(/step “reserve” attempt 4 succeeded/);
    assert.ok(charged < coolOff && coolOff < failed[0] && failed[0] < failed[1] && failed[1] < failed[2] && failed[2] < ok,
      `out of order: ${[charged, coolOff, ...failed, ok]}\n${events.join('\n')}`);
    for (let n = 0; n < 2; n++) {
      const next = at(/^Invocation \d+ started/, failed[n]);
      assert.ok(next > failed[n] && next < failed[n + 1], `no invocation between attempts ${n + 1} and ${n + 2}:\n${events.join('\n')}`);
    }
    assert.ok(await page.locator('#log-lane .log-tick').count() >= 1);
    await page.screenshot({ path: path.join(OUT, 'execution-attempts.png'), fullPage: true });
    assert.equal(await page.evaluate(() => document.scripts.length), 1);
    assert.deepEqual(problems.dialogs, []);
    assert.deepEqual(problems.errors, []);
  });

  test('large payloads start collapsed behind "Show all"', { timeout: 30_000 }, async () => {
    const big = 'x'.repeat(6000);
    await startOrder(base, 'ui-big-1', { order_id: 'o-ui-6', amount_cents: 0, blob: big });
    await waitStatus(base, 'ui-big-1', 'FAILED', 15_000);
    await page.goto(`${base}/ui/executions/ui-big-1`);
    const input = page.locator('#input-panel');
    const more = input.locator('.json-more');
    await more.waitFor({ timeout: 10_000 });
    await assertText(more, /Show all \(\d+(\.\d)? KB\)/);
    assert.ok(!(await input.locator('.json-pre').textContent()).includes(big), 'not collapsed');
    await more.click();
    assert.ok((await input.locator('.json-pre').textContent()).includes(big), 'not expanded');
    // A failed execution shows its error and where it failed.
    await assertText(page.locator('#output-panel h2'), /Error/);
    await assertText(page.locator('#now'), /charge/);
  });

  test('reset from a timeline entry forks the execution; rerun starts it afresh', { timeout: 60_000 }, async () => {
    await waitStatus(base, 'ui-order-1', 'SUCCEEDED', 45_000);
    await page.goto(`${base}/ui/executions/ui-order-1`);
    const reserve = page.locator('.op-row[data-name="reserve"]');
    await reserve.waitFor({ timeout: 10_000 });
    await reserve.click();
    await page.locator('.op-row[data-name="reserve"] + .op-detail [data-action="reset-op"]').click();
    const dialog = page.locator('#dialog');
    await dialog.waitFor({ state: 'visible' });
    await assertText(dialog, /Reset to step “reserve”\?/);
    await page.locator('#dialog-ok').click();
    // The UI moves to the fork, which keeps charge and cool-off and runs the rest.
    await page.waitForURL(/\/ui\/executions\/ui-order-1(:|%3A)reset-1$/, { timeout: 10_000 });
    await assertText(page.locator('#fork-of'), /Reset of ui-order-1/);
    await assertText(page.locator('#exec-head .badge'), /succeeded/i, 30_000);
    await assertText(page.locator('.op-row[data-name="charge"] .op-result'), /ch-o-ui-1-1/);
    await page.screenshot({ path: path.join(OUT, 'execution-reset.png') });
    const fork = (await call(base, 'GET', '/v1/executions/ui-order-1:reset-1')).json;
    assert.equal(fork.reset_from, 'ui-order-1');
    // The original links to it and is unchanged.
    await page.locator('#fork-of a').click();
    await page.waitForURL(/\/ui\/executions\/ui-order-1$/);
    await assertText(page.locator('#forks'), /ui-order-1:reset-1/);
    const original = (await call(base, 'GET', '/v1/executions/ui-order-1')).json;
    assert.equal(original.status, 'SUCCEEDED');
    assert.deepEqual(original.forks, ['ui-order-1:reset-1']);
    // Rerun: same input, fresh journal.
    await page.locator('#act-rerun').click();
    await dialog.waitFor({ state: 'visible' });
    await assertText(dialog, /Rerun this execution\?/);
    await page.locator('#dialog-ok').click();
    await page.waitForURL(/\/ui\/executions\/ui-order-1(:|%3A)rerun-1$/, { timeout: 10_000 });
    await assertText(page.locator('#fork-of'), /Rerun of ui-order-1/);
    const rerun = (await call(base, 'GET', '/v1/executions/ui-order-1:rerun-1')).json;
    assert.deepEqual(rerun.input, original.input);
    assert.deepEqual(problems.dialogs, []);
    assert.deepEqual(problems.errors, []);
  });

  test('cancel asks for confirmation, then cancels', { timeout: 40_000 }, async () => {
    await startOrder(base, 'ui-cancel-1', { order_id: 'o-ui-4', amount_cents: 500 });
    await waitStatus(base, 'ui-cancel-1', 'SUSPENDED', 15_000);
    await page.goto(`${base}/ui/executions/ui-cancel-1`);
    await page.locator('#act-cancel').click();
    const dialog = page.locator('#dialog');
    await dialog.waitFor({ state: 'visible' });
    await assertText(dialog, /Cancel this execution\?/);
    // Backing out changes nothing.
    await page.locator('#dialog-cancel').click();
    await dialog.waitFor({ state: 'hidden' });
    assert.equal((await call(base, 'GET', '/v1/executions/ui-cancel-1')).json.status, 'SUSPENDED');
    await page.locator('#act-cancel').click();
    await page.locator('#dialog-ok').click();
    await assertText(page.locator('#exec-head .badge'), /cancelled/i, 10_000);
    assert.equal((await call(base, 'GET', '/v1/executions/ui-cancel-1')).json.status, 'CANCELLED');
  });

  test('pause asks for confirmation, shows the pause, and unpause lets it go', { timeout: 40_000 }, async () => {
    await startOrder(base, 'ui-pause-1', { order_id: 'o-ui-p', amount_cents: 300 });
    await waitStatus(base, 'ui-pause-1', 'SUSPENDED', 15_000);
    await page.goto(`${base}/ui/executions/ui-pause-1`);
    await page.locator('#act-pause').click();
    const dialog = page.locator('#dialog');
    await dialog.waitFor({ state: 'visible' });
    await assertText(dialog, /Pause this execution\?/);
    await page.locator('#dialog-ok').click();
    await page.locator('#paused-badge').waitFor({ state: 'visible', timeout: 10_000 });
    let now = (await call(base, 'GET', '/v1/executions/ui-pause-1')).json;
    assert.equal(now.paused, true);
    assert.equal(now.status, 'SUSPENDED');
    await page.screenshot({ path: path.join(OUT, 'execution-paused.png') });
    await page.locator('#act-unpause').click();
    await page.locator('#paused-badge').waitFor({ state: 'detached', timeout: 10_000 });
    await page.locator('#act-pause').waitFor({ state: 'visible', timeout: 10_000 });
    now = (await call(base, 'GET', '/v1/executions/ui-pause-1')).json;
    assert.equal(now.paused, false);
  });

  test('send event: the dialog posts it and reports the outcome', { timeout: 40_000 }, async () => {
    await startOrder(base, 'ui-event-1', { order_id: 'o-ui-5', amount_cents: 700 });
    await waitStatus(base, 'ui-event-1', 'SUSPENDED', 15_000);
    await page.goto(`${base}/ui/executions/ui-event-1`);
    await page.locator('#act-event').click();
    await page.locator('#dlg-name').fill('nudge');
    await page.locator('#dlg-payload').fill('{"hello": "<b>world</b>"}');
    await page.locator('#dialog-ok').click();
    // Until POST /v1/executions/{id}/events/{name} exists the server answers
    // 404 and the dialog shows why; once it does, a toast confirms.
    const outcome = await Promise.race([
      page.locator('#dialog-error').waitFor({ state: 'visible', timeout: 10_000 }).then(() => 'error'),
      page.locator('.toast-ok').waitFor({ timeout: 10_000 }).then(() => 'sent'),
    ]);
    if (outcome === 'error') {
      assert.match(await page.locator('#dialog-error').textContent(), /events|404|405|not/i);
      await page.locator('#dialog-cancel').click();
    }
    await call(base, 'POST', '/v1/executions/ui-event-1/cancel');
  });

  test('approval: complete the callback from the UI and watch it finish', { timeout: 60_000 }, async () => {
    await startExec(base, 'approval', 'ui-approval-1', { request: 'deploy', approver: 'ops' });
    await waitStatus(base, 'ui-approval-1', 'SUSPENDED', 20_000);
    await page.goto(`${base}/ui/executions/ui-approval-1`);
    const now = page.locator('#now');
    await assertText(now, /Waiting for\s*callback “approval”/, 10_000);
    await assertText(now, /times out/);
    await assertText(page.locator('.op-row[data-name="approval"] .op-result'), /waiting for the callback/);
    await page.screenshot({ path: path.join(OUT, 'execution-approval-waiting.png') });
    await now.locator('[data-action="callback-succeed"]').click();
    const dialog = page.locator('#dialog');
    await dialog.waitFor({ state: 'visible' });
    await assertText(dialog.locator('h2'), /Complete callback “approval”/);
    const id = page.locator('#dlg-callback');
    assert.ok((await id.inputValue()).length > 8, 'the callback id is filled in');
    assert.equal(await id.getAttribute('readonly'), '');
    await page.locator('#dlg-result').fill('{"approved": true, "by": "ops"}');
    await page.locator('#dialog-ok').click();
    await dialog.waitFor({ state: 'hidden', timeout: 10_000 });
    await assertText(page.locator('#exec-head .badge'), /succeeded/i, 30_000);
    await page.locator('.op-row[data-name="execute"]').waitFor({ timeout: 10_000 });
    await assertText(page.locator('.op-row[data-name="approval"] .op-result'), /"approved":true/);
    await assertText(page.locator('#output-panel'), /"status": "approved"/);
    await page.screenshot({ path: path.join(OUT, 'execution-approval.png') });
  });

  test('approval: fail the callback from the UI', { timeout: 60_000 }, async () => {
    await startExec(base, 'approval', 'ui-approval-2', { request: 'drop-table', approver: 'ops' });
    await waitStatus(base, 'ui-approval-2', 'SUSPENDED', 20_000);
    await page.goto(`${base}/ui/executions/ui-approval-2`);
    const row = page.locator('.op-row[data-name="approval"]');
    await row.waitFor({ timeout: 10_000 });
    await row.click();
    const detail = page.locator('.op-row[data-name="approval"] + .op-detail');
    await detail.locator('[data-action="callback-fail"]').click();
    await page.locator('#dlg-message').fill('not on a Friday');
    await page.locator('#dialog-ok').click();
    await page.locator('#dialog').waitFor({ state: 'hidden', timeout: 10_000 });
    await assertText(page.locator('#exec-head .badge'), /failed/i, 30_000);
    await assertText(page.locator('#output-panel'), /not on a Friday/);
  });

  test('alert escalation: a timed-out wait, then the ack event sent from the UI', { timeout: 60_000 }, async () => {
    await startExec(base, 'alert-escalation', 'ui-alert-1', { alert: 'db down', oncall: ['ana', 'bo', 'cy'], ack_within_secs: 4 });
    await page.goto(`${base}/ui/executions/ui-alert-1`);
    // ana does not answer: her wait times out and bo is paged.
    await page.locator('.op-row[data-name="page-1"]').waitFor({ timeout: 20_000 });
    await assertText(page.locator('#now'), /Waiting for\s*event “ack”/, 10_000);
    await assertText(page.locator('.op-row[data-name="ack"] .op-result'), /Timeout/);
    await page.screenshot({ path: path.join(OUT, 'execution-alert-waiting.png') });
    await page.locator('#now button', { hasText: 'Send “ack” event' }).click();
    assert.equal(await page.locator('#dlg-name').inputValue(), 'ack');
    await page.locator('#dlg-payload').fill('{"by": "bo"}');
    await page.locator('#dialog-ok').click();
    await page.locator('#dialog').waitFor({ state: 'hidden', timeout: 10_000 });
    await assertText(page.locator('#exec-head .badge'), /succeeded/i, 20_000);
    await assertText(page.locator('#output-panel'), /"acknowledged_by": "bo"/);
  });

  test('list screenshot', { timeout: 30_000 }, async () => {
    // Executions in flight, so the list shows what each one waits on.
    await startExec(base, 'approval', 'ui-approval-3', { request: 'release v2', approver: 'ops' });
    await startOrder(base, 'ui-order-2', { order_id: 'o-ui-7', amount_cents: 2500 });
    await waitStatus(base, 'ui-order-2', 'SUSPENDED', 15_000);
    await waitStatus(base, 'ui-approval-3', 'SUSPENDED', 15_000);
    await page.goto(`${base}/ui/`);
    await assertText(page.locator('tr[data-id="ui-order-2"] .c-now'), /cool-off.*in \d/, 10_000);
    await assertText(page.locator('tr[data-id="ui-approval-3"] .c-now'), /callback.*approval.*since/i, 10_000);
    await page.locator('tr[data-id="ui-order-1"]').waitFor({ timeout: 10_000 });
    await assertText(page.locator('tr[data-id="ui-order-1"] .badge'), /succeeded/i);
    await page.locator('.chip[data-status="SUCCEEDED"]').click();
    await page.locator('tr[data-id="ui-declined-1"]').waitFor({ state: 'detached', timeout: 10_000 });
    await page.locator('tr[data-id="ui-order-1"]').waitFor();
    await page.locator('.chip[data-status="ALL"]').click();
    await page.locator('tr[data-id="ui-declined-1"]').waitFor({ timeout: 10_000 });
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(OUT, 'list.png') });
    assert.deepEqual(problems.dialogs, []);
    assert.deepEqual(problems.errors, []);
    assert.deepEqual(problems.csp, []);
  });
});

// --------------------------------------------------------- durafn server

describe('durafn server: the UI asks for the API token', () => {
  let server;
  let base;
  let browser;
  let dir;
  const token = randomBytes(20).toString('hex');

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'durafn-ui-server-'));
    fs.writeFileSync(path.join(dir, 'token'), token + '\n', { mode: 0o600 });
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = startDurafn('server', [
      'server', '--store', `sqlite://${path.join(dir, 'durafn.db')}`, '--bind', `127.0.0.1:${port}`,
      '--token-file', path.join(dir, 'token'), '--template', path.join(ROOT, 'template.yaml'),
      ...prebuiltExes(),
    ]);
    await waitHealthy(base, server, 600_000);
    browser = await launch();
  });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    await stop(server);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the API and the counts endpoint refuse requests without the token', async () => {
    assert.equal((await call(base, 'GET', '/v1/executions')).status, 401);
    assert.equal((await call(base, 'GET', '/ui/api/counts')).status, 401);
    assert.equal((await call(base, 'GET', '/ui/api/counts', undefined, 'wrong-token')).status, 401);
    assert.equal((await call(base, 'GET', '/ui/api/counts', undefined, token)).status, 200);
    // The page itself loads without a token.
    assert.equal((await fetch(`${base}/ui/`)).status, 200);
    // The sign-in refuses a wrong token and sets an HttpOnly cookie for the right one.
    const bad = await fetch(`${base}/ui/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 'wrong-token' }) });
    assert.equal(bad.status, 401);
    const good = await fetch(`${base}/ui/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) });
    assert.equal(good.status, 204);
    const cookie = good.headers.get('set-cookie') || '';
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    const withCookie = await fetch(`${base}/v1/executions`, { headers: { cookie: cookie.split(';')[0] } });
    assert.equal(withCookie.status, 200);
  });

  test('the UI shows the token form, rejects a wrong token, then lists with the right one', { timeout: 60_000 }, async () => {
    await startOrder(base, 'srv-order-1', { order_id: 'o-srv-1', amount_cents: 1999 }, token);
    const context = await browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1 });
    const { page, problems } = await watchedPage(context);
    const urls = [];
    page.on('request', (r) => urls.push(r.url()));
    await page.goto(`${base}/ui/`);
    const auth = page.locator('#auth');
    await auth.waitFor({ timeout: 10_000 });
    await assertText(auth, /API token/);
    await page.screenshot({ path: path.join(OUT, 'token.png') });
    await page.locator('#token-input').fill('not-the-token');
    await page.locator('#auth button[type="submit"]').click();
    await assertText(page.locator('#auth .alert-error'), /rejected/i, 10_000);
    await page.locator('#token-input').fill(token);
    await page.locator('#auth button[type="submit"]').click();
    await page.locator('tr[data-id="srv-order-1"]').waitFor({ timeout: 10_000 });
    // The execution page works with the token too.
    await page.locator('tr[data-id="srv-order-1"] a').click();
    await page.locator('.op-row[data-name="charge"]').waitFor({ timeout: 10_000 });
    assert.ok(urls.every((u) => !u.includes(token)), 'the token leaked into a URL');
    // The token is not kept by the page: the session is an HttpOnly,
    // SameSite=Strict cookie that is not the token either.
    const stored = await page.evaluate(() => JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage }) + document.cookie);
    assert.ok(!stored.includes(token), 'the token is kept in the page');
    const cookies = await context.cookies(base);
    const session = cookies.find((c) => c.name === 'durafn_session');
    assert.ok(session, 'the session cookie is set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.notEqual(session.value, token);
    // Signing out clears it: the form comes back.
    await page.locator('#signout').click();
    await page.locator('#auth').waitFor({ timeout: 10_000 });
    assert.ok(!(await context.cookies(base)).some((c) => c.name === 'durafn_session' && c.value));
    assert.deepEqual(problems.errors, []);
    assert.deepEqual(problems.csp, []);
    await context.close();
  });
});

/** Waits until the locator's text matches. */
async function assertText(locator, re, timeout = 5_000) {
  const deadline = Date.now() + timeout;
  let text = '';
  for (;;) {
    try {
      text = (await locator.first().textContent({ timeout: Math.max(100, deadline - Date.now()) })) || '';
    } catch { text = '(not found)'; }
    if (re.test(text)) return text;
    if (Date.now() > deadline) assert.fail(`expected ${re} in ${JSON.stringify(text)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
