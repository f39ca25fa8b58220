// The supervisors' dashboard: a caller's wait turning amber and red, then leaving the board when answered;
// monitor, whisper (to the counsellor only), join and write; set a counsellor away; move to front; alerts; wall mode;
// reconnection; axe; the screenshot docs/screenshots/supervisor.png.
//
// tests/browser.rs shortens the family violence helpline's at-risk and target times to 1 s and 2 s, so
// its wait alerts (and the rows' colours) come quickly. Other helplines keep 10 s and 15 s.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, api, launch, context, page, counsellor, caller, acceptOffer, pane, say, supervisor, cutSockets, assertAccessible, screenshot } from '../lib.mjs';

const WHISPER = 'Ask if she is safe now <img src=x onerror=alert(1)>';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('the dashboard is served with the console’s headers and refuses counsellors', async () => {
  const res = await api('/supervisor');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/html/);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  assert.equal(res.headers.get('x-frame-options'), 'DENY');
  const csp = res.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self';/);
  assert.match(csp, /style-src 'self';/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(res.text, /<script>|<style|\sstyle=|\son\w+=/i, 'no inline script, style or handler');
  assert.match((await api('/assets/supervisor.js')).headers.get('content-type'), /javascript/);
  assert.match((await api('/assets/supervisor.css')).headers.get('content-type'), /^text\/css/);

  const ctx = await context(browser);
  const p = await page(ctx);
  await p.goto(`${BASE}/supervisor`);
  await p.getByLabel('Username').waitFor();
  await assertAccessible(p, 'the dashboard sign-in');
  await p.getByLabel('Username').fill('ana');
  await p.getByLabel('Password').fill('ana-demo');
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.getByText('This page is for supervisors and administrators.').waitFor();
  assert.ok(await p.locator('#board').isHidden(), 'no board for a counsellor');
  assert.equal(await p.evaluate(() => sessionStorage.length), 0, 'no token kept');
  assert.deepEqual(p.errors, []);
  await ctx.close();
});

test('a wait turns amber and red and leaves when answered; monitor, whisper, join, move to front, alerts, wall mode', async () => {
  const supCtx = await context(browser, { viewport: { width: 1600, height: 1200 } });
  const callerCtx = await context(browser);
  const agentCtx = await context(browser);
  const sup = await supervisor(supCtx);
  await sup.locator('.helpline[data-helpline="family_violence"] .chart svg').waitFor();
  await assertAccessible(sup, 'the dashboard, idle');

  // A caller waits: the row appears, its age counts on, it turns amber, then red; the alerts come.
  const first = await caller(callerCtx, 'family_violence', 'ro');
  const row = sup.locator(`tr[data-contact-id="${first.contactId}"]`);
  await row.waitFor();
  await sup.locator(`tr[data-contact-id="${first.contactId}"][data-level="amber"]`).waitFor();
  await sup.locator(`tr[data-contact-id="${first.contactId}"][data-level="red"]`).waitFor();
  assert.match(await row.locator('.age').textContent(), /^\d+:\d\d over target$/);
  await row.getByText('over target').waitFor();
  await sup.locator(`.alert[data-kind="wait_10s"][data-contact-id="${first.contactId}"]`).waitFor();
  await sup.locator(`.alert[data-kind="wait_15s"][data-contact-id="${first.contactId}"]`).waitFor();
  // Ages tick between board frames: the shown age changes without a new row being made.
  const before = await row.locator('.age-value').textContent();
  await sup.waitForFunction(
    ([id, was]) => document.querySelector(`tr[data-contact-id="${id}"] .age-value`)?.textContent !== was,
    [first.contactId, before],
  );
  await assertAccessible(sup, 'the dashboard, with a red waiting row and alerts');
  await screenshot(sup, 'supervisor-waiting');

  // Ion comes: the caller rings for him, he answers, the row leaves the board.
  const agent = await counsellor(agentCtx, 'ion');
  await acceptOffer(agent, first.contactId);
  await row.waitFor({ state: 'detached' });
  await first.page.getByText('Vorbești cu Ion.').first().waitFor();

  // Monitor from the counsellors list: the conversation so far, then live messages.
  // Ion's row by its name (a row's text also holds "Conversation …", which contains "ion").
  const ionRow = sup.locator('.person').filter({ has: sup.locator('.name', { hasText: /^Ion$/ }) });
  await ionRow.locator(`.convs li[data-contact-id="${first.contactId}"]`).getByRole('button', { name: /Monitor/ }).click();
  const mon = sup.locator(`.monitor[data-contact-id="${first.contactId}"]`);
  await mon.locator('.mon-status', { hasText: 'Watching silently' }).waitFor();
  await say(first.page, 'Mi-e frică să vorbesc acasă.');
  await mon.locator('.msg .text', { hasText: 'Mi-e frică' }).waitFor();

  // Whisper: the counsellor sees it (as text), the caller never does.
  await mon.getByLabel(/Whisper to the counsellor/).fill(WHISPER);
  await mon.getByRole('button', { name: 'Whisper', exact: true }).click();
  const conv = pane(agent, first.contactId);
  const whisper = conv.locator('.note.whisper');
  await whisper.waitFor();
  assert.equal(await whisper.locator('.text').textContent(), WHISPER);
  assert.match(await whisper.textContent(), /Whisper from Maria \(supervisor\)/);
  assert.equal(await agent.locator('.note.whisper img').count(), 0, 'no element made from whisper text');
  await mon.locator('.note.whisper', { hasText: 'Ask if she is safe now' }).waitFor();
  // Ion writes after the whisper: when the caller has that, she would have had the whisper too.
  await conv.locator('.composer textarea').fill('Ești în siguranță acum?');
  await conv.locator('.composer textarea').press('Enter');
  await first.page.locator('.msg .text', { hasText: 'Ești în siguranță acum?' }).waitFor();
  assert.ok(!(await first.page.locator('body').textContent()).includes('Ask if she is safe'), 'the caller page never shows the whisper');
  assert.ok(!first.frames.some((f) => f.type === 'whisper' || JSON.stringify(f).includes('Ask if she is safe')), 'no whisper frame reached the caller');
  await mon.locator('.msg .text', { hasText: 'Ești în siguranță acum?' }).waitFor();

  // Join, then write: the caller and the counsellor see it; the console labels it as the supervisor's.
  await mon.getByRole('button', { name: 'Join the conversation' }).click();
  // The server sends the join as a code (`notice`): the Romanian widget says it in Romanian, the console in English.
  await first.page.locator('.note', { hasText: 'Maria (supervisor) s-a alăturat conversației.' }).waitFor();
  await conv.locator('.msg .text', { hasText: 'Maria (supervisor) joined the conversation' }).waitFor();
  await mon.getByLabel(/Write in the conversation/).fill('Sunt supervizoarea. Suntem aici pentru tine.');
  await mon.getByLabel(/Write in the conversation/).press('Enter');
  await first.page.locator('.msg .text', { hasText: 'Sunt supervizoarea.' }).waitFor();
  const fromSup = conv.locator('.msg.theirs', { hasText: 'Sunt supervizoarea.' });
  await fromSup.waitFor();
  assert.equal(await fromSup.locator('.who').textContent(), 'Supervisor');
  await mon.locator('.msg.own .meta', { hasText: 'sent' }).waitFor();

  // Maria sets Ion away from the dashboard: his console shows Away, his row moves to the Away group,
  // and the focus stays on the control she used.
  const ionStatus = sup.getByLabel('Status for Ion', { exact: true });
  assert.equal(await ionStatus.inputValue(), 'available');
  await ionStatus.selectOption('away');
  await sup.getByRole('button', { name: 'Set status for Ion', exact: true }).click();
  await sup.locator('#notice', { hasText: 'Ion is now away.' }).waitFor();
  await agent.locator('input[name="status"][value="away"]:checked').waitFor();
  await ionRow.and(sup.locator('[data-state="away"]')).waitFor();
  await sup.locator('.group[data-state="away"] .person').filter({ has: sup.locator('.name', { hasText: /^Ion$/ }) }).waitFor();
  assert.equal(await ionStatus.inputValue(), 'away');
  assert.equal(await sup.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Set status for Ion', 'focus kept');
  assert.ok(sup.frames.some((f) => f.type === 'done' && f.request === 'set_status'), 'the server confirmed');
  await assertAccessible(sup, 'the dashboard, a counsellor set away');

  // Two more callers wait (Ion is away); the second is moved to the front.
  const second = await caller(callerCtx, 'family_violence', 'ru');
  const third = await caller(callerCtx, 'family_violence', 'ro');
  const thirdRow = sup.locator(`tr[data-contact-id="${third.contactId}"]`);
  await thirdRow.locator('.position', { hasText: '2' }).waitFor();
  await thirdRow.getByRole('button', { name: 'Move to front' }).click();
  await sup.getByText('Moved to the front of the queue.').waitFor();
  await thirdRow.locator('.position', { hasText: '1' }).waitFor();
  assert.equal(await sup.locator('.helpline[data-helpline="family_violence"] tbody tr').first().getAttribute('data-contact-id'), third.contactId, 'listed first');
  await sup.locator(`tr[data-contact-id="${second.contactId}"][data-level="red"]`).waitFor();
  await sup.locator(`tr[data-contact-id="${third.contactId}"][data-level="red"]`).waitFor();

  // Alerts: acknowledging one lowers the count.
  const count = async () => Number((await sup.locator('#alert-count').textContent()).split(' ')[0] || 0);
  const unacked = await count();
  assert.ok(unacked >= 4, `alerts counted (${unacked})`);
  await sup.locator(`.alert[data-kind="wait_15s"][data-contact-id="${first.contactId}"]`).getByRole('button', { name: /Acknowledge/ }).click();
  await sup.locator(`.alert.acked[data-kind="wait_15s"][data-contact-id="${first.contactId}"]`).waitFor();
  assert.ok((await count()) < unacked, 'one fewer to acknowledge');

  await assertAccessible(sup, 'the dashboard, with waiting callers, a monitored conversation and alerts');
  // The picture for the docs: the whole board, from the top.
  await sup.setViewportSize({ width: 1600, height: 1750 });
  await sup.evaluate(() => window.scrollTo(0, 0));
  await screenshot(sup, 'supervisor', { docs: 'supervisor.png' });
  await sup.setViewportSize({ width: 1600, height: 1200 });

  // Wall mode hides every control; the board stays live.
  await sup.getByRole('button', { name: 'Wall mode' }).click();
  assert.ok(await mon.isHidden(), 'no monitor panes on the wall');
  assert.ok(await thirdRow.getByRole('button', { name: 'Move to front' }).isHidden(), 'no actions on the wall');
  assert.ok(await ionRow.locator('.status-control').isHidden(), 'no status control on the wall');
  assert.match(sup.url(), /wall=1/);
  await assertAccessible(sup, 'the dashboard in wall mode');
  await screenshot(sup, 'supervisor-wall');
  await sup.getByRole('button', { name: 'Leave wall mode' }).click();
  await mon.waitFor({ state: 'visible' });

  // The socket drops: the page reconnects with a fresh ticket and watches again.
  const sockets = await sup.evaluate(() => window.__sockets.length);
  await cutSockets(sup);
  await sup.locator('#conn[data-state="lost"]').waitFor();
  await sup.locator('#conn[data-state="online"]').waitFor();
  assert.ok((await sup.evaluate(() => window.__sockets.length)) > sockets, 'a new socket');
  await say(first.page, 'Încă sunt aici.');
  await mon.locator('.msg .text', { hasText: 'Încă sunt aici.' }).waitFor();
  assert.equal(await mon.locator('.msg .text', { hasText: 'Sunt supervizoarea.' }).count(), 1, 'no duplicates after the rebuild');

  // ?wall=1: a wall screen signs in once; a reload keeps the session (this tab's sessionStorage) and wall mode.
  const wall = await supervisor(supCtx, '?wall=1');
  assert.ok(await wall.locator('body.wall').count(), 'wall mode from the URL');
  await wall.reload();
  await wall.locator('body.wall #conn[data-state="online"]').waitFor();
  await wall.locator(`tr[data-contact-id="${second.contactId}"]`).waitFor();
  assert.ok(await wall.locator('#monitors').isHidden());
  assert.ok(await wall.locator('#login-screen').isHidden());
  await wall.close();

  // Clean up: the waiting callers leave, Ion ends the conversation; the monitor pane says so.
  for (const c of [second, third]) {
    await c.page.locator('#quick-exit').click();
    await sup.locator(`tr[data-contact-id="${c.contactId}"]`).waitFor({ state: 'detached' });
  }
  await conv.getByRole('button', { name: 'End conversation' }).click();
  await agent.getByRole('dialog', { name: 'End this conversation?' }).getByRole('button', { name: 'Yes, end it' }).click();
  await mon.locator('.mon-status', { hasText: 'The counsellor ended the conversation.' }).waitFor();
  for (const p of [sup, agent, first.page]) assert.deepEqual(p.errors, [], 'no script errors');
  await supCtx.close();
  await agentCtx.close();
  await callerCtx.close();
});
