// (h) Abuse and sessions in the browser: a blocked caller's widget says so calmly (no error), and the
// console trades its refresh token for a new access token before the old one expires.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, context, page, recordFrames, counsellor, caller, acceptOffer, api, login, cutSockets, screenshot, BASE, WAIT } from '../lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('a blocked caller is told calmly, in their language, with the emergency number', async () => {
  const agentCtx = await context(browser);
  const callerCtx = await context(browser);
  const agent = await counsellor(agentCtx, 'olena');
  const first = await caller(callerCtx, 'disability', 'en');
  await acceptOffer(agent, first.contactId);

  // The counsellor flags the chat; a supervisor blocks its caller (this browser's address) for the helpline.
  const olena = await login('olena');
  const flagged = await api(`/api/v1/contacts/${first.contactId}/flag`, { token: olena, method: 'POST', body: { reason: 'insults' } });
  assert.equal(flagged.status, 201, flagged.text);
  const maria = await login('maria');
  const created = await api('/api/v1/blocks', {
    token: maria,
    method: 'POST',
    body: { contact_id: first.contactId, duration: '10m', reason: 'browser test: insults', mode: 'block' },
  });
  assert.equal(created.status, 201, created.text);
  const blockId = created.body.block.block_id;
  try {
    await first.page.locator('#end').click();
    await first.page.locator('#end-confirm').click();
    await first.page.locator('#screen-ended').waitFor();

    // The same caller tries again: no queue, no error; a calm message with 112, in English.
    const p = await page(callerCtx);
    const frames = recordFrames(p);
    await p.goto(`${BASE}/chat?helpline=disability&lang=en`);
    await p.locator('#start-form').waitFor();
    await p.locator('#start').click();
    const closed = await frames.waitFor((f) => f.type === 'closed', 'closed');
    assert.equal(closed.reason, 'unavailable');
    await p.locator('#screen-ended').waitFor();
    assert.equal(
      (await p.locator('#ended-reason').textContent()).trim(),
      'We cannot take your chat right now. If you are in danger, call 112.',
    );
    assert.ok(!frames.some((f) => f.type === 'queued' || f.type === 'error'), JSON.stringify(frames));
    assert.equal((await p.locator('#start-error').textContent()).trim(), '', 'not shown as an error');
    assert.equal((await p.locator('#banner').textContent()).trim(), '');
    assert.deepEqual(p.errors, []);
    await screenshot(p, 'chat-blocked');

    // In Romanian too.
    const ro = await page(callerCtx);
    const roFrames = recordFrames(ro);
    await ro.goto(`${BASE}/chat?helpline=disability&lang=ro`);
    await ro.locator('#start-form').waitFor();
    await ro.locator('#start').click();
    await roFrames.waitFor((f) => f.type === 'closed', 'closed');
    await ro.locator('#ended-reason', { hasText: 'Nu vă putem prelua conversația acum. Dacă sunteți în pericol, sunați la 112.' }).waitFor();
  } finally {
    // Lift the block: the other browser tests open chats from this address.
    const lifted = await api(`/api/v1/blocks/${blockId}`, { token: maria, method: 'DELETE' });
    assert.equal(lifted.status, 200, lifted.text);
    await agentCtx.close();
    await callerCtx.close();
  }
});

test('the console refreshes its access token before it expires, and keeps working', async () => {
  const KEY = 'helpline.console.token';
  const ctx = await context(browser);
  const p = await page(ctx);
  // The page's clock is ours to move; the server's stays real.
  await p.clock.install();
  const refreshes = [];
  const ticketAuth = [];
  p.on('response', (res) => {
    if (res.url().endsWith('/api/v1/auth/refresh')) refreshes.push(res.status());
  });
  p.on('request', (req) => {
    if (req.url().endsWith('/api/v1/ws-ticket')) ticketAuth.push(req.headers().authorization);
  });
  await p.goto(`${BASE}/agent`);
  await p.getByLabel('Username').fill('ion');
  await p.getByLabel('Password').fill('ion-demo');
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.locator('#conn[data-state="online"]').waitFor();
  const kept = () => p.evaluate((k) => [sessionStorage.getItem(k), sessionStorage.getItem(`${k}.refresh`)], KEY);
  const [access1, refresh1] = await kept();
  assert.ok(access1 && refresh1, 'an access token and a refresh token are kept in this tab');

  // 13 minutes in: not yet (access tokens last 15 minutes; the page refreshes one minute ahead).
  await p.clock.runFor('13:00');
  assert.deepEqual(refreshes, []);
  // 14 minutes in: the page trades its refresh token for a new pair.
  await p.clock.runFor('01:05');
  const deadline = Date.now() + WAIT;
  let access2;
  let refresh2;
  for (;;) {
    [access2, refresh2] = await kept();
    if (access2 !== access1) break;
    assert.ok(Date.now() < deadline, 'the console never refreshed its access token');
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(refreshes, [200]);
  assert.ok(refresh2 && refresh2 !== refresh1, 'the refresh token was rotated');
  const me = await api('/api/v1/me', { token: access2 });
  assert.equal(me.status, 200, me.text);
  assert.equal(me.body.username, 'ion');

  // The socket drops: it comes back with a ticket asked for with the new access token.
  ticketAuth.length = 0;
  // Wait for the new ticket itself: right after the cut the indicator may still read "online".
  const ticketAsked = p.waitForRequest((req) => req.url().endsWith('/api/v1/ws-ticket'), { timeout: WAIT });
  await cutSockets(p);
  await ticketAsked;
  await p.locator('#conn[data-state="online"]').waitFor();
  assert.ok(ticketAuth.length >= 1, 'a new ticket was asked for');
  assert.equal(ticketAuth.at(-1), `Bearer ${access2}`);
  // The used refresh token is spent: presenting it again is a reuse and ends the login.
  const reuse = await api('/api/v1/auth/refresh', { method: 'POST', body: { refresh_token: refresh1 } });
  assert.equal(reuse.status, 401);
  assert.deepEqual(p.errors, []);
  await ctx.close();
});
