// The dashboard in a real headless Chromium (Debian's), driven by playwright-core against
// `switchback demo`: logged out, see the routes but no phones or events (and the page
// never asks for them); log in, see every route on the primary, break the primary
// softswitch, watch sip fail over and the phones converge, force a failback, log out.
// The status comes pushed over /api/stream: the page never polls /api/status while the
// stream is up, and shows a failover within a second of the API.
//
//   SWITCHBACK_BIN=target/debug/switchback node tests/browser/dashboard.spec.mjs
//
// Every wait polls the page with a deadline; none sleeps a fixed time. Screenshots of
// each step go to tests/artifacts/. Exits non-zero with the reason on any failure.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = resolve(ROOT, process.env.SWITCHBACK_BIN || 'target/debug/switchback');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'tests', 'artifacts');
const TOKEN = 'demo-admin-token'; // the demo's admin token

// The demo checks every 5 s (1 s while failing) and confirms a failure for 3 s; its
// phones poll every 4 s. These deadlines leave room for a loaded CI machine.
const START_DEADLINE = 30_000;
const STEP_DEADLINE = 45_000;
/// The whole run, in case something hangs outside a step (a browser that never starts).
const RUN_DEADLINE = 240_000;

const started = Date.now();
let demo = null;
let demoLog = '';
let context = null;
let page = null;
let profile = null;
let shot = 0;
const problems = []; // console errors, page errors, CSP violations
/// The page's requests for phone data and history, which need a session.
const PRIVATE_READS = ['/api/events', '/api/phones', '/api/alerts'];
const privateReads = [];
let statusPolls = 0;
/// `status` events the page received over /api/stream, seen through the DevTools protocol.
let statusEvents = 0;
/// How soon a route change in /api/status must show on the page.
const PUSHED_WITHIN = 1_000;

function log(message) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${message}`);
}

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

/// Polls `probe` (which answers `{ ok, seen }`) until it is ok or the deadline passes.
async function until(what, probe, deadline = STEP_DEADLINE) {
  const end = Date.now() + deadline;
  let last;
  for (;;) {
    last = await probe();
    if (last.ok) return last.seen;
    if (Date.now() > end) {
      throw new Error(`timed out after ${deadline / 1000} s waiting for ${what}; last seen: ${JSON.stringify(last.seen)}`);
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
}

const text = async (testid) => ((await page.getByTestId(testid).first().textContent()) || '').trim();

async function expectText(testid, expected, deadline) {
  return until(`${testid} = ${JSON.stringify(expected)}`, async () => {
    const seen = await text(testid);
    return { ok: seen === expected, seen };
  }, deadline);
}

async function expectVisible(testid, visible = true) {
  return until(`${testid} ${visible ? 'visible' : 'gone'}`, async () => {
    const seen = await page.getByTestId(testid).first().isVisible();
    return { ok: seen === visible, seen };
  });
}

async function screenshot(name, fullPage = true) {
  shot += 1;
  const file = join(ARTIFACTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage });
  log(`screenshot ${file.slice(ROOT.length + 1)}`);
}

async function startDemo() {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  log(`starting ${BIN} demo --listen 127.0.0.1:${port}`);
  demo = spawn(BIN, ['demo', '--listen', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SWITCHBACK_LOG: process.env.SWITCHBACK_LOG || 'info,sqlx=warn' },
  });
  const keep = (chunk) => {
    demoLog = (demoLog + chunk.toString()).slice(-20_000);
  };
  demo.stdout.on('data', keep);
  demo.stderr.on('data', keep);
  const exited = new Promise((ok) => demo.once('exit', (code, signal) => ok({ code, signal })));
  await until('the demo to answer /healthz', async () => {
    const gone = await Promise.race([exited, Promise.resolve(null)]);
    if (gone) throw new Error(`the demo exited early (${JSON.stringify(gone)})`);
    try {
      const response = await fetch(`${base}/healthz`);
      return { ok: response.ok, seen: response.status };
    } catch (err) {
      return { ok: false, seen: err.cause?.code || err.message };
    }
  }, START_DEADLINE);
  return base;
}

async function stopDemo() {
  if (!demo || demo.exitCode !== null || demo.signalCode !== null) return;
  const exited = new Promise((ok) => demo.once('exit', ok));
  demo.kill('SIGTERM');
  const timer = setTimeout(() => demo.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

async function launch() {
  profile = mkdtempSync(join(tmpdir(), 'switchback-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
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
    ],
    viewport: { width: 1280, height: 900 },
    timezoneId: 'America/Chicago', // 3 a.m. somewhere: the page must not depend on it
  });
  page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(STEP_DEADLINE);
  const devtools = await context.newCDPSession(page);
  await devtools.send('Network.enable');
  devtools.on('Network.eventSourceMessageReceived', (message) => {
    if (message.eventName === 'status') statusEvents += 1;
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('request', (request) => {
    const path = new URL(request.url()).pathname;
    if (PRIVATE_READS.includes(path)) privateReads.push(path);
    if (path === '/api/status') statusPolls += 1;
  });
  page.on('console', (message) => {
    // The refused resume below answers 409 on purpose; Chromium logs every 4xx.
    const expected = message.text().includes('status of 409');
    if (message.type() === 'error' && !expected) problems.push(`console error: ${message.text()}`);
  });
  // The only dialogs are the failover/failback and lift confirmations: an operator says yes.
  page.on('dialog', (dialog) => {
    log(`confirm: ${dialog.message()}`);
    dialog.accept();
  });
}

/// A page whose stream is refused (503, as when too many are open) polls /api/status
/// every 2 s instead, and stops polling once its stream is back.
async function fallBackToPolling(base) {
  const other = await context.newPage();
  let polls = 0;
  let events = 0;
  other.on('request', (request) => {
    if (new URL(request.url()).pathname === '/api/status') polls += 1;
  });
  const devtools = await context.newCDPSession(other);
  await devtools.send('Network.enable');
  devtools.on('Network.eventSourceMessageReceived', (message) => {
    if (message.eventName === 'status') events += 1;
  });
  await other.route('**/api/stream', (route) => route.fulfill({
    status: 503,
    contentType: 'application/json',
    body: JSON.stringify({ error: 'too many dashboard streams are open; poll /api/status instead' }),
  }));
  await other.goto(`${base}/`);
  await until('the status polled while the stream is refused', async () => ({ ok: polls >= 2, seen: polls }));
  if (events !== 0) throw new Error(`${events} status events over a refused stream`);
  if ((await other.getByTestId('updated').textContent()) !== 'live') throw new Error('the polled page is not live');
  await other.unroute('**/api/stream');
  await until('the stream back', async () => ({ ok: events >= 1, seen: { events, polls } }));
  const pollsBack = polls;
  await until('another status event', async () => ({ ok: events >= 2, seen: { events, polls } }));
  // A poll already on its way when the stream came back may still be counted.
  if (polls > pollsBack + 1) throw new Error(`${polls - pollsBack} status polls after the stream came back`);
  log(`stream refused: ${pollsBack} status polls; stream back: ${events} events, ${polls - pollsBack} polls since`);
  await other.close();
}

async function run() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const base = await startDemo();
  await launch();

  // 1. Logged out: the state is there, the buttons are not.
  const response = await page.goto(`${base}/`);
  const csp = response.headers()['content-security-policy'] || '';
  if (!csp.includes("default-src 'self'")) throw new Error(`no Content-Security-Policy on the page: ${JSON.stringify(csp)}`);
  await expectVisible('login-form');
  if ((await page.locator('meta[name="csrf-token"]').count()) !== 0) throw new Error('a CSRF token on a logged-out page');
  if ((await page.getByTestId('action-sip-failover').count()) !== 0) throw new Error('operator buttons while logged out');
  await expectText('route-sip-state', 'primary');
  await expectText('route-stun-state', 'primary');
  await expectText('updated', 'live'); // the script is running and the APIs answer
  // Phones and events wait for a login: a note instead, and the script does not ask.
  await expectVisible('events-login');
  for (const testid of ['events', 'event', 'stale-phones']) {
    if ((await page.getByTestId(testid).count()) !== 0) throw new Error(`${testid} shown while logged out`);
  }
  const eventsBefore = statusEvents;
  await until('two more status events while logged out', async () => ({ ok: statusEvents >= eventsBefore + 2, seen: statusEvents }));
  if (statusPolls !== 0) throw new Error(`the page polled /api/status ${statusPolls} times while its stream was up`);
  if (privateReads.length) throw new Error(`the logged-out page asked for ${privateReads.join(', ')}`);
  log(`logged out: ${statusEvents} status events over the stream, no status polls, no events or phones asked for`);
  await screenshot('logged-out');
  await fallBackToPolling(base);

  // 2. A wrong token is refused with a message.
  await page.getByTestId('login-name').fill('night shift');
  await page.getByTestId('login-token').fill('not-the-token');
  await Promise.all([page.waitForURL('**/?login=failed'), page.getByTestId('login-submit').click()]);
  await expectText('login-message', 'Wrong admin token.');
  await screenshot('login-failed');

  // 3. Log in.
  await page.getByTestId('login-name').fill('night shift');
  await page.getByTestId('login-token').fill(TOKEN);
  await Promise.all([page.waitForURL(`${base}/`), page.getByTestId('login-submit').click()]);
  await expectText('who-name', 'night shift');
  const pollsLoggedIn = statusPolls; // the old page's, if any, are behind us
  await expectVisible('logout');
  await expectVisible('action-sip-failback');
  if ((await page.getByTestId('events-login').count()) !== 0) throw new Error('the login note after login');
  await until('the events list polled with the session', async () => ({
    ok: privateReads.includes('/api/events'),
    seen: privateReads,
  }));
  if ((await page.getByTestId('events').count()) !== 1) throw new Error('no event list after login');
  // A sample phone is called `Lobby & Co <main>`: it must show as text, never as markup.
  if ((await page.locator('main').count()) !== 1) throw new Error('a phone name was rendered as HTML');
  for (const route of ['sip', 'stun']) {
    await expectText(`route-${route}-state`, 'primary');
    await expectText(`route-${route}-active`, await text('route-sip-active'));
    await expectText(`route-${route}-role`, 'primary');
  }
  const primarySite = await text('route-sip-active');
  const total = await until('the sample phones on the first generation', async () => {
    const [current, all] = [await text('convergence-current'), await text('convergence-total')];
    return { ok: Number(all) > 0 && current === all, seen: Number(all) };
  });
  const firstGeneration = Number(await text('generation'));
  log(`logged in; both routes on ${primarySite}; ${total} phones on generation ${firstGeneration}`);

  // An action the engine refuses shows the server's JSON error.
  await page.getByTestId('action-stun-resume').click();
  await until('the refused resume to be explained', async () => {
    const seen = await text('action-stun-result');
    return { ok: seen.includes('refused (409)'), seen };
  });
  await screenshot('logged-in');

  // 4. Break the primary softswitch.
  await page.getByTestId('demo-primary-softswitch-break').click();
  await expectText('demo-primary-softswitch-state', 'broken');
  await expectText('service-primary-softswitch-health', 'down');
  log(`primary softswitch down: ${await text('service-primary-softswitch-reason')}`);
  await screenshot('softswitch-broken');

  // 5. sip fails over (on the page within a second of the API, pushed); stun stays; the
  // phones fetch the new generation.
  await until('sip failed over in /api/status', async () => {
    const status = await (await fetch(`${base}/api/status`)).json();
    return { ok: status.routes.sip.state === 'failed_over', seen: status.routes.sip.state };
  });
  const failedOverAt = Date.now();
  await expectText('route-sip-state', 'failed_over', PUSHED_WITHIN);
  log(`sip failed over on the page ${Date.now() - failedOverAt} ms after /api/status showed it`);
  const backupSite = await text('route-sip-active');
  if (backupSite === primarySite) throw new Error(`sip failed over but still points at ${primarySite}`);
  await expectText('route-stun-state', 'primary');
  const seen = [];
  await until('the phones to converge on the failover generation', async () => {
    const generation = Number(await text('generation'));
    const current = Number(await text('convergence-current'));
    if (generation > firstGeneration && seen[seen.length - 1] !== current) seen.push(current);
    return { ok: generation > firstGeneration && current === total, seen: { generation, current, total } };
  });
  log(`sip on ${backupSite}; convergence went ${seen.join(' → ')} of ${total}`);
  // The pictures: the new generation's curve, a path per vendor that rose, and sip's
  // failed-over band on the timeline.
  const failoverGeneration = await text('generation');
  await expectText('curve-generation', failoverGeneration);
  await until('a convergence curve per vendor', async () => {
    const paths = await page.locator('[data-testid="convergence-curve"] path.curve-line').evaluateAll(
      (nodes) => nodes.map((n) => ({ vendor: n.dataset.testid, risen: /V/.test(n.getAttribute('d') || '') })),
    );
    const vendors = ['curve-yealink', 'curve-linksys'];
    const ok = vendors.every((v) => paths.some((p) => p.vendor === v && p.risen));
    return { ok, seen: paths };
  });
  if ((await page.getByTestId('curve-poll').count()) !== 1) throw new Error('no poll interval line on the curve');
  await until('the failover on the timeline', async () => {
    const bands = await page.locator('[data-testid="band-sip"]').evaluateAll((nodes) => nodes.map((n) => n.getAttribute('class')));
    const ticks = await page.getByTestId('timeline-event').count();
    return { ok: bands.some((c) => c.includes('state-failed_over')) && ticks > 0, seen: { bands, ticks } };
  });
  await screenshot('failed-over');

  // 6. The softswitch is mended; the operator brings sip home without waiting out the hold-down.
  await page.getByTestId('demo-primary-softswitch-mend').click();
  await expectText('demo-primary-softswitch-state', 'up');
  await page.getByTestId('reason-sip').fill('softswitch mended, bringing phones home');
  await page.getByTestId('action-sip-failback').click();
  await expectText('route-sip-state', 'primary');
  await expectText('route-sip-mode', 'forced');
  await expectText('route-sip-active', primarySite);
  await until('the failback in the event history', async () => {
    const seen = await page.getByTestId('event').allTextContents();
    return { ok: seen.some((e) => e.includes('softswitch mended') && e.includes('by night shift')), seen: seen.slice(0, 3) };
  });
  if (statusPolls !== pollsLoggedIn) {
    throw new Error(`the page polled /api/status ${statusPolls - pollsLoggedIn} times while its stream was up`);
  }
  log(`logged in: ${statusEvents} status events in all, no status polls`);
  await screenshot('failed-back');

  // 6b. A scanner walks MACs: the block appears with its event, and the operator lifts it.
  await page.getByTestId('demo-scan').click();
  await expectVisible('block-127.0.0.66');
  await until('the scan in the event history', async () => {
    const seen = await page.getByTestId('event').allTextContents();
    return { ok: seen.some((e) => e.includes('127.0.0.66')), seen: seen.slice(0, 3) };
  });
  await screenshot('scan-blocked');
  await page.getByTestId('lift-127.0.0.66').click();
  await until('the block lifted', async () => {
    const rows = await page.getByTestId('block-127.0.0.66').count();
    return { ok: rows === 0, seen: rows };
  });
  await expectVisible('blocks-none');

  // The same page at the common laptop and desktop widths and on a phone: no sideways
  // scrolling, no control overlapping another or cut off by its card.
  for (const [width, height] of [[1024, 768], [1280, 900], [1440, 900], [1600, 900], [1920, 1080], [390, 844]]) {
    await page.setViewportSize({ width, height });
    const layout = await page.evaluate(() => {
      const problems = [];
      const root = document.documentElement;
      if (root.scrollWidth > window.innerWidth) {
        problems.push(`scrolls sideways: ${root.scrollWidth}px of content in ${window.innerWidth}px`);
      }
      const controls = [...document.querySelectorAll('button, input, select, .badge')].filter((node) => {
        const box = node.getBoundingClientRect();
        return box.width > 0 && box.height > 0 && node.offsetParent !== null;
      });
      const name = (node) => node.dataset.testid || node.textContent.trim().slice(0, 20) || node.tagName;
      for (const node of controls) {
        const box = node.getBoundingClientRect();
        const card = node.closest('.card, header, section');
        if (card) {
          const edge = card.getBoundingClientRect();
          if (box.right > edge.right + 1 || box.left < edge.left - 1) problems.push(`${name(node)} cut off by its card`);
        }
      }
      for (let i = 0; i < controls.length; i++) {
        const a = controls[i].getBoundingClientRect();
        for (let j = i + 1; j < controls.length; j++) {
          if (controls[i].contains(controls[j]) || controls[j].contains(controls[i])) continue;
          const b = controls[j].getBoundingClientRect();
          const overlap = Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1
            && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
          if (overlap) problems.push(`${name(controls[i])} overlaps ${name(controls[j])}`);
        }
      }
      return problems;
    });
    await screenshot(`width-${width}`);
    if (layout.length) throw new Error(`at ${width} px: ${layout.slice(0, 8).join('; ')}`);
    log(`layout holds at ${width} px`);
  }
  // The convergence curve and the timeline at phone width.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByTestId('pictures').screenshot({ path: join(ARTIFACTS, 'narrow-pictures.png') });
  await page.setViewportSize({ width: 1280, height: 900 });

  // 7. Log out: the login form is back, the buttons are gone.
  await Promise.all([page.waitForURL(`${base}/`), page.getByTestId('logout').click()]);
  await expectVisible('login-form');
  if ((await page.getByTestId('action-sip-failback').count()) !== 0) throw new Error('operator buttons after logout');
  await expectVisible('events-login');
  if ((await page.getByTestId('event').count()) !== 0) throw new Error('events after logout');
  await screenshot('logged-out-again');

  if (problems.length) throw new Error(`the page reported problems:\n  ${problems.join('\n  ')}`);
}

async function cleanup() {
  try {
    if (context) await context.close();
  } catch {
    // the browser is going away anyway
  }
  await stopDemo();
  if (profile) rmSync(profile, { recursive: true, force: true });
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (demo) demo.kill('SIGKILL');
    process.exit(130);
  });
}
process.on('exit', () => {
  if (demo && demo.exitCode === null && demo.signalCode === null) demo.kill('SIGKILL');
});

const watchdog = setTimeout(() => {
  console.error(`\nFAILED: the browser test did not finish within ${RUN_DEADLINE / 1000} s`);
  console.error(`\nlast lines of the demo's output:\n${demoLog.split('\n').slice(-40).join('\n')}`);
  process.exit(1); // the exit handler kills the demo
}, RUN_DEADLINE);
watchdog.unref();

try {
  await run();
  await cleanup();
  log('dashboard browser test passed');
  process.exit(0);
} catch (err) {
  console.error(`\nFAILED: ${err.message}`);
  if (page) {
    try {
      await page.screenshot({ path: join(ARTIFACTS, 'failure.png'), fullPage: true });
      console.error('screenshot of the failure: tests/artifacts/failure.png');
    } catch {
      // no page to show
    }
  }
  if (problems.length) console.error(`page problems:\n  ${problems.join('\n  ')}`);
  console.error(`\nlast lines of the demo's output:\n${demoLog.split('\n').slice(-40).join('\n')}`);
  await cleanup();
  process.exit(1);
}
