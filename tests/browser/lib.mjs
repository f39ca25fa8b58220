// Shared helpers for the browser tests: Chromium, pages, the server's REST API, axe, screenshots.
import { chromium } from 'playwright-core';
import { mkdirSync, copyFileSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const here = dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = join(here, 'artifacts');
export const DOCS_SCREENSHOTS = join(here, '..', '..', 'docs', 'screenshots');

export const BASE = process.env.HELPLINE_URL;
if (!BASE) throw new Error('HELPLINE_URL is not set: run these through `cargo test --test browser`');

/** Where quick exit goes (kept in step with web-agent/assets/chat.js). */
export const EXIT_URL = 'https://weather.com/';

/** Generous upper bound for anything to show up; nothing waits a fixed time. */
export const WAIT = 15000;

export async function launch() {
  return chromium.launch({
    executablePath: process.env.HELPLINE_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 60000,
  });
}

/**
 * A fresh browser context (its own cookies and storage) whose pages record every WebSocket they open
 * in `window.__sockets`, so a test can cut the connection, and fail the test on page errors.
 */
export async function context(browser, options = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 800 }, locale: 'en-GB', ...options });
  ctx.setDefaultTimeout(WAIT);
  await ctx.addInitScript(() => {
    const Native = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        window.__sockets.push(this);
      }
    };
  });
  // The neutral site of quick exit, served locally: the tests have no internet.
  await ctx.route(`${EXIT_URL}**`, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>Weather</title><h1>Weather today</h1>' }),
  );
  return ctx;
}

/** A page that fails on uncaught script errors and on dialogs (alert() would mean injected script ran). */
export async function page(ctx) {
  const p = await ctx.newPage();
  p.errors = [];
  p.dialogs = [];
  p.on('pageerror', (e) => p.errors.push(e.stack ? `${e}\n${e.stack}` : String(e)));
  p.on('dialog', (d) => {
    p.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  return p;
}

/** Every frame the page's sockets received, parsed, and a way to wait for one. */
export function recordFrames(p) {
  const frames = [];
  const waiters = [];
  p.on('websocket', (ws) => {
    ws.on('framereceived', ({ payload }) => {
      let f;
      try {
        f = JSON.parse(String(payload));
      } catch {
        return;
      }
      frames.push(f);
      for (const w of [...waiters]) {
        if (w.match(f)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(f);
        }
      }
    });
  });
  frames.waitFor = (match, what = 'a frame') => {
    const found = frames.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = { match, resolve };
      waiters.push(w);
      setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT).unref();
    });
  };
  return frames;
}

/** Closes every socket the page has open, as a dropped network would. */
export async function cutSockets(p) {
  await p.evaluate(() => {
    for (const s of window.__sockets) if (s.readyState <= 1) s.close(4000, 'test: network drop');
  });
}

// ----- the server's REST API -------------------------------------------------

export async function api(path, { token, method = 'GET', body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body) headers['content-type'] = 'application/json';
  const res = await fetch(`${BASE}${path}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  const json = (res.headers.get('content-type') || '').startsWith('application/json');
  return { status: res.status, headers: res.headers, body: json && text ? JSON.parse(text) : null, text };
}

export async function login(username) {
  const res = await api('/api/v1/auth/login', { method: 'POST', body: { username, password: `${username}-demo` } });
  assert.equal(res.status, 200, `login of ${username}`);
  return res.body.access_token;
}

/** Polls the supervisor's view of a contact until `check` passes (the end is committed asynchronously). */
export async function contactAsSupervisor(id, check) {
  const token = await login('maria');
  const deadline = Date.now() + WAIT;
  let last;
  for (;;) {
    last = await api(`/api/v1/contacts/${id}`, { token });
    if (last.status === 200 && check(last.body.contact)) return last.body.contact;
    if (Date.now() > deadline) assert.fail(`contact ${id} never matched: ${last.text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ----- the console -----------------------------------------------------------

/** Opens the console, signs in and goes available. */
export async function counsellor(ctx, username) {
  const p = await page(ctx);
  await p.setViewportSize({ width: 1280, height: 900 });
  await p.goto(`${BASE}/agent`);
  await p.getByLabel('Username').fill(username);
  await p.getByLabel('Password').fill(`${username}-demo`);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.locator('#conn[data-state="online"]').waitFor();
  await p.getByRole('radio', { name: 'Available' }).check();
  await p.locator('input[name="status"][value="available"]:checked').waitFor();
  return p;
}

/** Accepts the offer for a contact (or the first one) and returns the contact id. */
export async function acceptOffer(agent, contactId) {
  const card = contactId ? agent.locator(`.offer[data-contact-id="${contactId}"]`) : agent.locator('.offer').first();
  await card.waitFor();
  const id = await card.getAttribute('data-contact-id');
  await card.getByRole('button', { name: /Accept/ }).click();
  await agent.locator(`.pane[data-contact-id="${id}"]`).waitFor();
  return id;
}

export function pane(agent, id) {
  return agent.locator(`.pane[data-contact-id="${id}"]`);
}

// ----- the widget ------------------------------------------------------------

/** Opens the widget for a helpline and language and starts a chat; returns the page and its frames. */
export async function caller(ctx, helpline, lang) {
  const p = await page(ctx);
  const frames = recordFrames(p);
  await p.goto(`${BASE}/chat?helpline=${helpline}&lang=${lang}`);
  await p.locator('#start-form').waitFor();
  await p.locator('#start').click();
  const queued = await frames.waitFor((f) => f.type === 'queued', 'queued');
  return { page: p, frames, contactId: queued.contact_id };
}

export async function say(p, text) {
  await p.locator('#text').fill(text);
  await p.locator('#text').press('Enter');
}

/** How many messages in a log have exactly this text. */
export async function countText(logLocator, text) {
  return logLocator.locator('.msg .text').evaluateAll((els, t) => els.filter((e) => e.textContent === t).length, text);
}

// ----- axe and screenshots ---------------------------------------------------

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Runs axe (WCAG 2.0–2.2 A/AA and best practices) and returns the serious and critical violations.
 * `minPasses`: how many rules must have passed (fewer apply while a modal dialog makes the page inert).
 */
export async function axe(p, { minPasses = 20 } = {}) {
  // Evaluated through the DevTools protocol, so the page's CSP (no inline scripts) does not block it.
  await p.evaluate(AXE_SOURCE);
  const result = await p.evaluate(() =>
    window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
    }),
  );
  assert.ok(result.passes.length > minPasses, 'axe ran its rules');
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

export async function assertAccessible(p, what, options) {
  const violations = await axe(p, options);
  assert.deepEqual(violations, [], `axe on ${what}:\n${violations.join('\n')}`);
}

/**
 * Saves a screenshot under artifacts/; with `docs` set and UPDATE_SCREENSHOTS=1, also copies it to
 * docs/screenshots/ (the README's pictures, committed: refreshed on purpose, not on every run).
 */
export async function screenshot(p, name, { docs } = {}) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = join(ARTIFACTS, `${name}.png`);
  await p.screenshot({ path: file, fullPage: false, animations: 'disabled', caret: 'hide' });
  if (docs && process.env.UPDATE_SCREENSHOTS) {
    mkdirSync(DOCS_SCREENSHOTS, { recursive: true });
    copyFileSync(file, join(DOCS_SCREENSHOTS, docs));
  }
  return file;
}

// ----- the supervisors' dashboard ---------------------------------------------

/** Opens the dashboard (`query` e.g. `?wall=1`), signs in as maria (or `as`) and waits for the live board. */
export async function supervisor(ctx, query = '', as = { username: 'maria', password: 'maria-demo' }) {
  const p = await page(ctx);
  p.frames = recordFrames(p);
  await p.goto(`${BASE}/supervisor${query}`);
  await p.getByLabel('Username').fill(as.username);
  await p.getByLabel('Password').fill(as.password);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.locator('#conn[data-state="online"]').waitFor();
  await p.locator('.helpline[data-helpline="family_violence"]').waitFor();
  return p;
}
