// (d) axe-core on every screen of the widget and the console; (e) screenshots.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, launch, context, page, counsellor, caller, acceptOffer, pane, say, assertAccessible, screenshot, api } from '../lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('pages are served with their content types and security headers', async () => {
  for (const path of ['/chat', '/agent']) {
    const res = await api(path);
    assert.equal(res.status, 200, path);
    assert.match(res.headers.get('content-type'), /^text\/html/);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const csp = res.headers.get('content-security-policy');
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self';/);
    assert.match(csp, /connect-src 'self' ws:\/\/127\.0\.0\.1:\d+ wss:\/\/127\.0\.0\.1:\d+;/);
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
    assert.doesNotMatch(res.text, /<script>|\son\w+=/i, 'no inline script or handler');
  }
  assert.match((await api('/agent')).headers.get('content-security-policy'), /frame-ancestors 'none'/);
  // The widget may be framed only by this server and the sites in --allowed-origins (none here).
  assert.match((await api('/chat')).headers.get('content-security-policy'), /frame-ancestors 'self'(;|$)/);
  assert.match((await api('/assets/chat.js')).headers.get('content-type'), /javascript/);
  assert.match((await api('/assets/base.css')).headers.get('content-type'), /^text\/css/);
  assert.match((await api('/assets/chat-icon.svg')).headers.get('content-type'), /^image\/svg\+xml/);
  for (const bad of ['/assets/../Cargo.toml', '/assets/%2e%2e/Cargo.toml', '/assets/chat.html', '/assets/nope.js']) {
    assert.equal((await api(bad)).status, 404, bad);
  }
});

test('the widget and the console have no serious or critical axe violations', async () => {
  const callerCtx = await context(browser);
  const agentCtx = await context(browser);

  // The widget's start screen, in each language, and at 200% text size.
  const start = await page(callerCtx);
  await start.goto(`${BASE}/chat?lang=en`);
  await start.locator('#helpline-list input').first().waitFor();
  await start.locator('#helpline-list input').first().check();
  await assertAccessible(start, 'the widget start screen');
  await screenshot(start, 'chat-start');
  for (const lang of ['ro', 'ru', 'uk']) {
    await start.locator('#ui-lang').selectOption(lang);
    await assertAccessible(start, `the widget start screen (${lang})`);
  }
  // On a small phone.
  await start.setViewportSize({ width: 360, height: 740 });
  await start.locator('#ui-lang').selectOption('ro');
  assert.ok(await start.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth), 'fits a phone');
  await assertAccessible(start, 'the widget start screen on a phone');
  await screenshot(start, 'chat-phone');
  await start.close();

  // The console's sign-in screen.
  const login = await page(agentCtx);
  await login.goto(`${BASE}/agent`);
  await login.getByLabel('Username').waitFor();
  await assertAccessible(login, 'the console sign-in');
  await screenshot(login, 'agent-login');
  await login.close();

  // Signed in, available, ringing.
  const agent = await counsellor(agentCtx, 'ana');
  await assertAccessible(agent, 'the console, idle');
  const first = await caller(callerCtx, 'children', 'en');
  await first.page.getByText('Your place in the queue: 1.').waitFor();
  await assertAccessible(first.page, 'the widget, waiting');
  await screenshot(first.page, 'chat-waiting');
  await agent.locator(`.offer[data-contact-id="${first.contactId}"]`).waitFor();
  await assertAccessible(agent, 'the console, with an offer');
  await screenshot(agent, 'agent-offer');

  // Two conversations at once; keyboard: Alt+A accepts the ringing chat.
  await acceptOffer(agent, first.contactId);
  const second = await caller(callerCtx, 'disability', 'ro');
  await agent.locator(`.offer[data-contact-id="${second.contactId}"]`).waitFor();
  await agent.keyboard.press('Alt+A');
  await pane(agent, second.contactId).waitFor();
  await second.page.getByText('Vorbești cu Ana.').first().waitFor();

  await say(first.page, 'Hello, is anyone there? I am scared to talk at home.');
  await say(second.page, 'Bună ziua, am o întrebare despre sprijinul pentru nevăzători.');
  // The second pane is open: the first conversation's entry in the list counts its unread message.
  await agent.locator(`.conv-item[data-contact-id="${first.contactId}"] .unread`, { hasText: '1' }).waitFor();
  await assertAccessible(agent, 'the console, with an unread count');
  const firstPane = pane(agent, first.contactId);
  await agent.keyboard.press('Alt+N');
  await firstPane.waitFor({ state: 'visible' });
  assert.ok(await agent.locator(`.conv-item[data-contact-id="${first.contactId}"] .unread`).isHidden(), 'read once shown');
  assert.match(
    await agent.getByRole('button', { name: /^Caller [0-9A-F]{4}.*disabilities · RO/ }).textContent(),
    /disabilities · RO/,
    'list entries are named by their visible text',
  );
  await firstPane.locator('.composer textarea').fill('Hi, I am Ana. I am here and I have time. You are safe to write here.');
  await firstPane.locator('.composer textarea').press('Enter');
  await first.page.locator('.msg.theirs .text').first().waitFor();
  await say(first.page, 'Thank you. Can I write slowly?');
  await firstPane.locator('.msg .text', { hasText: 'write slowly' }).waitFor();
  await second.page.locator('#text').pressSequentially('Cum', { delay: 10 });
  await firstPane.locator('.composer textarea').fill('Of course, take your time.');
  const third = await caller(callerCtx, 'children', 'ru');
  await agent.locator(`.offer[data-contact-id="${third.contactId}"]`).waitFor();
  await assertAccessible(agent, 'the console, with conversations and an offer');
  // Each conversation's contact form and escalation: every control reachable by its label (casework.test.mjs does the rest).
  for (const label of ['Caller type', 'Age group (person concerned)', 'Gender (person concerned)', 'Region or district', 'Outcome']) {
    assert.equal(await firstPane.getByLabel(label, { exact: true }).count(), 1, label);
  }
  await firstPane.getByRole('group', { name: 'Categories' }).getByRole('checkbox').first().waitFor();
  await firstPane.getByRole('group', { name: 'Risk' }).getByRole('radio', { name: /Imminent/ }).waitFor();
  const escalate = firstPane.locator('.escalate-toggle');
  assert.equal(await escalate.getAttribute('aria-expanded'), 'false');
  await firstPane.getByRole('button', { name: 'Escalate…' }).click();
  assert.equal(await escalate.getAttribute('aria-expanded'), 'true');
  await assertAccessible(agent, 'the console, with the escalation panel open');
  await firstPane.getByRole('button', { name: 'Cancel escalation' }).click();
  assert.equal(await escalate.getAttribute('aria-expanded'), 'false');
  await screenshot(agent, 'agent', { docs: 'agent.png' });
  await agent.keyboard.press('Alt+D');
  await agent.locator(`.offer[data-contact-id="${third.contactId}"]`).waitFor({ state: 'detached' });

  await first.page.locator('.msg .meta[data-state="delivered"]').nth(1).waitFor();
  await assertAccessible(first.page, 'the widget, in a conversation');
  await screenshot(first.page, 'chat', { docs: 'chat.png' });

  // 200% text: still usable (nothing hidden off-screen horizontally).
  await first.page.evaluate(() => {
    document.documentElement.style.fontSize = '200%';
  });
  const overflow = await first.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling at 200% text (${overflow}px)`);
  const overlap = await first.page.evaluate(
    () => document.querySelector('#composer').getBoundingClientRect().bottom - document.querySelector('.foot').getBoundingClientRect().top,
  );
  assert.ok(overlap <= 0, `nothing overlaps at 200% text (${overlap}px)`);
  await screenshot(first.page, 'chat-200-percent');

  await first.page.getByRole('button', { name: 'End chat' }).click();
  await first.page.locator('#end-confirm').click();
  await first.page.locator('#screen-ended').waitFor();
  await assertAccessible(first.page, 'the widget, ended');
  await screenshot(first.page, 'chat-ended-en');
  await agent.locator(`.conv-item[data-contact-id="${second.contactId}"]`).click();
  await pane(agent, second.contactId).getByRole('button', { name: 'End conversation' }).click();
  await agent.getByRole('dialog', { name: 'End this conversation?' }).getByRole('button', { name: 'Yes, end it' }).click();
  await second.page.locator('#screen-ended').waitFor();
  await assertAccessible(agent, 'the console, conversations ended');
  await third.page.getByRole('button', { name: /Быстрый выход/ }).click();
  await agentCtx.close();
  await callerCtx.close();
});
