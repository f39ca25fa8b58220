// The caller's widget as a phone chat app (issue 23), at 390×844: the conversation takes the screen,
// one language choice, tel: links, End chat asks first, the tab title's new-message mark; closed or
// nobody on shift as a screen with its choices (a message left end to end, the triage question); the
// survey after a chat, counted in the reports; a stalled network shown on both sides within seconds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, context, page, recordFrames, counsellor, acceptOffer, pane, say, api, login, assertAccessible, screenshot, BASE, WAIT } from '../lib.mjs';

const PHONE = { viewport: { width: 390, height: 844 }, locale: 'en-GB', hasTouch: true };

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** A widget page on a phone, the frames it sends recorded (`p.sent`), and those it receives (`p.frames`). */
async function phone(ctx, query) {
  const p = await page(ctx);
  p.frames = recordFrames(p);
  p.sent = [];
  p.on('websocket', (ws) =>
    ws.on('framesent', ({ payload }) => {
      try {
        p.sent.push(JSON.parse(String(payload)));
      } catch {
        /* not JSON */
      }
    }),
  );
  await p.goto(`${BASE}/chat?${query}`);
  await p.locator('#start-form').waitFor();
  return p;
}

async function rect(p, selector) {
  return p.locator(selector).evaluate((e) => {
    const r = e.getBoundingClientRect();
    return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height };
  });
}

async function surveyCounts() {
  const token = await login('maria');
  const res = await api('/api/v1/reports/summary?helpline=children', { token });
  assert.equal(res.status, 200, res.text);
  return res.body.surveys.children || { answered: 0, helped: {}, again: {} };
}

test('nobody on shift: why, the other lines to tap, the triage question, and a message left end to end', async () => {
  const ctx = await context(browser, PHONE);
  // Nobody is signed in: the disability helpline (which asks the triage question here) has nobody on shift.
  const p = await phone(ctx, 'helpline=disability&lang=en');
  await p.locator('#start').click();
  const panel = p.getByRole('region', { name: 'No counsellor is free right now.' });
  await panel.waitFor();
  assert.ok(await panel.getByRole('button', { name: 'Keep waiting' }).isVisible());
  // The other lines as tappable numbers: 112 first.
  const lines = panel.locator('#ua-lines a');
  assert.equal(await lines.first().getAttribute('href'), 'tel:112');
  assert.ok((await lines.count()) >= 1);
  assert.equal(await p.locator('.foot a[href="tel:112"]').count(), 1, '112 in the footer is a link');

  // "Are you in danger right now?": answered yes, sent as a triage frame, thanked with 112 to tap.
  const triage = p.getByRole('group', { name: 'Are you in danger right now?' });
  await triage.waitFor();
  await assertAccessible(p, 'the widget, nobody on shift, with the triage question');
  await screenshot(p, 'chat-phone-unavailable');
  await triage.getByRole('button', { name: 'Yes, I am in danger' }).click();
  await p.locator('#triage-done', { hasText: 'We moved you up the queue' }).waitFor();
  assert.equal(await p.locator('#triage-done a[href="tel:112"]').count(), 1);
  assert.ok(await triage.isHidden(), 'asked once');
  assert.deepEqual(p.sent.filter((f) => f.type === 'triage'), [{ type: 'triage', answer: 'yes' }]);

  // Leave a message: the text box, sent as leave_message, confirmed by `left`.
  await panel.getByRole('button', { name: 'Leave a message' }).click();
  const box = panel.getByLabel('Your message');
  await box.fill('I cannot talk now. Please read this.');
  await assertAccessible(p, 'the widget, leaving a message');
  await panel.getByRole('button', { name: 'Send the message' }).click();
  await p.locator('#ended-reason', { hasText: 'Your message is saved. A counsellor will read it as soon as possible.' }).waitFor();
  assert.deepEqual(p.sent.filter((f) => f.type === 'leave_message'), [{ type: 'leave_message', text: 'I cannot talk now. Please read this.' }]);
  assert.ok(await p.locator('#survey').isHidden(), 'no survey without a conversation');
  await assertAccessible(p, 'the widget, message left');

  // In Romanian, Russian and Ukrainian too (not left in English).
  for (const [lang, words] of [['ro', 'Mesajul tău a fost păstrat'], ['ru', 'сообщение'], ['uk', 'повідомлення']]) {
    await p.locator('#ui-lang').selectOption(lang);
    await p.locator('#ended-reason', { hasText: words }).waitFor();
  }

  // The counsellor who comes on shift gets it as a message contact with the text, and closes it.
  const agentCtx = await context(browser);
  const agent = await counsellor(agentCtx, 'ana');
  const id = await acceptOffer(agent);
  await pane(agent, id).locator('.msg .text', { hasText: 'I cannot talk now. Please read this.' }).waitFor();
  await pane(agent, id).getByRole('button', { name: 'End conversation' }).click();
  await agent.getByRole('dialog', { name: 'End this conversation?' }).getByRole('button', { name: 'Yes, end it' }).click();
  await pane(agent, id).getByText('You ended the conversation.').waitFor();
  await agentCtx.close();
  await ctx.close();
});

test('closed: the screen says when the line opens, and a call-me-back request is taken end to end', async () => {
  // The disability helpline is closed today (a holiday, UTC) for this test only: its hours are put back after.
  const admin = await login('admin');
  const before = await api('/api/v1/helplines/disability/hours', { token: admin });
  assert.equal(before.status, 200, before.text);
  const today = new Date().toISOString().slice(0, 10);
  const closed = await api('/api/v1/helplines/disability/hours', { token: admin, method: 'PUT', body: { time_zone: 'UTC', holidays: [today] } });
  assert.equal(closed.status, 200, closed.text);
  assert.equal(closed.body.open_now, false, closed.text);
  const ctx = await context(browser, PHONE);
  const agentCtx = await context(browser);
  let reopened = false;
  try {
    const p = await phone(ctx, 'helpline=disability&lang=en');
    await p.locator('#start').click();
    const unavailable = await p.frames.waitFor((f) => f.type === 'unavailable', 'unavailable');
    assert.equal(unavailable.reason, 'closed', JSON.stringify(unavailable));
    // Why, with the opening time in words (tomorrow, 00:00 UTC in the browser's time zone).
    const panel = p.getByRole('region', { name: /^We are closed now\. We open again .+\.$/ });
    await panel.waitFor();
    assert.match(await p.locator('#unavailable-heading').textContent(), /^We are closed now\. We open again \S.*\d{1,2}:\d{2}.*\.$/);
    assert.equal(await panel.locator('#ua-lines a').first().getAttribute('href'), 'tel:112');
    await assertAccessible(p, 'the widget, closed');
    await screenshot(p, 'chat-phone-closed');

    // Call me back: a number that is no number is refused next to the form, nothing sent.
    await panel.locator('#ua-callback').click();
    await panel.getByLabel('Your phone number').fill('call me');
    await panel.locator('#ua-callback-form button[type="submit"]').click();
    await p.locator('#ua-error', { hasText: 'Write a phone number (6 to 15 digits).' }).waitFor();
    assert.deepEqual(p.sent.filter((f) => f.type === 'callback'), []);
    // A real number and a note: sent as `callback`, taken (`left`), and the ended screen says when.
    await panel.getByLabel('Your phone number').fill('+373 60 123 456');
    await panel.getByLabel('When can we call you? (optional)').fill('after six');
    await assertAccessible(p, 'the widget, asking to be called back');
    await panel.locator('#ua-callback-form button[type="submit"]').click();
    const left = await p.frames.waitFor((f) => f.type === 'left', 'left');
    assert.equal(left.kind, 'callback', JSON.stringify(left));
    const sent = p.sent.filter((f) => f.type === 'callback');
    assert.equal(sent.length, 1, JSON.stringify(sent));
    assert.equal(sent[0].phone, '+373 60 123 456');
    assert.equal(sent[0].text, 'after six');
    // When: the line's opening time, in words.
    await p.locator('#ended-reason', { hasText: /^Your request is saved\. A counsellor will call you back .*\d{1,2}:\d{2}.*\.$/ }).waitFor();
    assert.ok(await p.locator('#survey').isHidden(), 'no survey without a conversation');
    await assertAccessible(p, 'the widget, callback requested');
    await p.locator('#ui-lang').selectOption('ro');
    await p.locator('#ended-reason', { hasText: 'te va suna' }).waitFor();

    // Kept for the counsellors as a callback request (offered when the line opens: tests/it/hours.rs).
    const queued = await p.frames.waitFor((f) => f.type === 'queued', 'queued');
    const maria = await login('maria');
    const contact = await api(`/api/v1/contacts/${queued.contact_id}`, { token: maria });
    assert.equal(contact.status, 200, contact.text);
    assert.match(contact.text, /callback/, 'a callback request');
    const open = await api('/api/v1/helplines/disability/hours', { token: admin, method: 'PUT', body: before.body.hours });
    assert.equal(open.status, 200, open.text);
    reopened = true;
    assert.deepEqual(p.errors, []);
  } finally {
    if (!reopened) await api('/api/v1/helplines/disability/hours', { token: admin, method: 'PUT', body: before.body.hours });
    await agentCtx.close();
    await ctx.close();
  }
});

test('on a phone the conversation takes the screen; one language; End chat asks; the title marks new messages; the survey is counted', async () => {
  const agentCtx = await context(browser);
  const agent = await counsellor(agentCtx, 'ana');
  const ctx = await context(browser, PHONE);
  const p = await phone(ctx, 'helpline=children&lang=en');
  assert.equal(await p.locator('select').count(), 1, 'one language choice');
  await p.locator('#start').click();
  const queued = await p.frames.waitFor((f) => f.type === 'queued', 'queued');
  const id = await acceptOffer(agent, queued.contact_id);
  const conv = pane(agent, id);
  await p.getByText('You are talking with Ana.').first().waitFor();
  await say(p, 'Hi, I need help');
  await conv.locator('.msg .text', { hasText: 'Hi, I need help' }).waitFor();

  // The log takes most of the screen; the bar with quick exit stays small and on screen.
  const log = await rect(p, '#messages');
  assert.ok(log.height / 844 >= 0.6, `the log is ${Math.round(log.height)} px of 844`);
  const bar = await rect(p, 'header.top');
  assert.ok(bar.height <= 64, `the top bar is ${bar.height} px`);
  const exit = await rect(p, '#quick-exit');
  assert.ok(exit.top >= 0 && exit.bottom <= bar.bottom && exit.right <= 390, 'quick exit on screen');
  assert.ok(await p.getByRole('button', { name: 'Quick exit' }).isVisible());
  assert.equal(await p.getByRole('combobox').count(), 1, 'one language choice in the chat');
  assert.ok(await p.evaluate(() => document.documentElement.scrollWidth <= 390), 'no sideways scrolling');
  // End chat is far from Send: not where a thumb that sends lands.
  const send = await rect(p, '#send');
  const end = await rect(p, '#end');
  assert.ok(send.top - end.bottom > 300, `End chat ${Math.round(send.top - end.bottom)} px above Send`);
  assert.equal(await p.locator('.foot a[href="tel:112"]').count(), 1);
  await assertAccessible(p, 'the widget on a phone, in a conversation');
  await screenshot(p, 'chat-phone', { docs: 'chat-phone.png' });

  // A new message while the tab is hidden: "(1)" in the title, gone when seen.
  const hide = (hidden) =>
    p.evaluate((h) => {
      if (h) {
        Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
        Object.defineProperty(document, 'hidden', { value: true, configurable: true });
      } else {
        delete document.visibilityState;
        delete document.hidden;
      }
      document.dispatchEvent(new Event('visibilitychange'));
    }, hidden);
  assert.equal(await p.title(), 'Chat with a counsellor');
  await hide(true);
  await conv.locator('.composer textarea').fill('I am here. What happened?');
  await conv.locator('.composer textarea').press('Enter');
  await p.locator('.msg.theirs .text', { hasText: 'I am here. What happened?' }).waitFor();
  assert.equal(await p.title(), '(1) Chat with a counsellor');
  await hide(false);
  assert.equal(await p.title(), 'Chat with a counsellor');

  // One language choice: switching it switches the whole page, and there is no second one.
  await p.locator('#ui-lang').selectOption('ro');
  await p.locator('#status-line', { hasText: 'Vorbești cu Ana.' }).waitFor();
  assert.equal(await p.getByRole('button', { name: 'Încheie discuția' }).count(), 1);
  assert.equal(await p.title(), 'Discută cu un consilier');
  assert.equal(await p.locator('select').count(), 1);
  await p.locator('#ui-lang').selectOption('en');

  // End chat asks first, in an accessible dialog; "No" (or Esc) keeps the chat.
  await p.getByRole('button', { name: 'End chat' }).click();
  const dialog = p.getByRole('dialog', { name: 'End the chat?' });
  await dialog.waitFor();
  assert.equal(await p.evaluate(() => document.activeElement?.id), 'end-cancel', 'the safe choice has the focus');
  assert.ok(await dialog.getByRole('button', { name: 'Quick exit' }).isVisible(), 'quick exit is one tap with the dialog open too');
  await assertAccessible(p, 'the widget, End chat dialog', { minPasses: 5 });
  await p.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  await p.getByRole('button', { name: 'End chat' }).click();
  await dialog.getByRole('button', { name: 'No, keep chatting' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.ok(await p.locator('#screen-chat').isVisible(), 'still chatting');
  assert.deepEqual(p.sent.filter((f) => f.type === 'end'), [], 'nothing ended yet');
  await p.getByRole('button', { name: 'End chat' }).click();
  await dialog.getByRole('button', { name: 'Yes, end the chat' }).click();
  await p.getByText('You ended the chat.').waitFor();
  await conv.getByText('The caller ended the conversation.').waitFor();

  // The survey: optional, anonymous, counted once in the helpline's report.
  const beforeCounts = await surveyCounts();
  const survey = p.locator('#survey');
  await survey.waitFor();
  await assertAccessible(p, 'the widget, survey');
  await survey.getByRole('group', { name: 'Did this chat help you?' }).getByLabel('Yes').check();
  await survey.getByRole('group', { name: 'Would you contact us again if you needed to?' }).getByLabel('Maybe').check();
  await screenshot(p, 'chat-phone-survey');
  await survey.getByRole('button', { name: 'Send my answers' }).click();
  await p.getByText('Thank you for your answers!').waitFor();
  await assertAccessible(p, 'the widget, survey answered');
  const afterCounts = await surveyCounts();
  assert.equal(afterCounts.answered, beforeCounts.answered + 1);
  assert.equal(afterCounts.helped.yes, (beforeCounts.helped.yes || 0) + 1);
  assert.equal(afterCounts.again.maybe, (beforeCounts.again.maybe || 0) + 1);
  await agentCtx.close();
  await ctx.close();
});

test('a stalled network is shown on both sides within 10 s, and the chat resumes with nothing lost', { timeout: WAIT * 6 }, async () => {
  const agentCtx = await context(browser);
  const agent = await counsellor(agentCtx, 'ana');
  const ctx = await context(browser, PHONE);
  const p = await page(ctx);
  // Every caller socket passes through here. A stall: the sockets open then go dead (nothing passes
  // either way, their close is not passed on: the server sees silence); after it, new sockets work.
  let stalled = false;
  await p.routeWebSocket(/\/ws\/caller/, (ws) => {
    const server = ws.connectToServer();
    let dead = stalled;
    const live = () => !dead && !stalled;
    ws.onMessage((m) => {
      if (live()) server.send(m);
      else dead = true;
    });
    server.onMessage((m) => {
      if (live()) ws.send(m);
      else dead = true;
    });
    ws.onClose((code, reason) => {
      if (live()) server.close({ code, reason });
    });
    server.onClose((code, reason) => {
      if (live()) ws.close({ code, reason });
    });
  });
  await p.goto(`${BASE}/chat?helpline=children&lang=en`);
  await p.locator('#start').click();
  const id = await acceptOffer(agent);
  const conv = pane(agent, id);
  await p.getByText('You are talking with Ana.').first().waitFor();
  await say(p, 'before the stall');
  await conv.locator('.msg .text', { hasText: 'before the stall' }).waitFor();

  stalled = true;
  const stalledAt = Date.now();
  await p.locator('#banner', { hasText: 'Connection lost. Reconnecting' }).waitFor({ timeout: 10000 });
  const callerSaw = Date.now() - stalledAt;
  await conv.locator('.presence[data-online="false"]').waitFor({ timeout: 10000 });
  await conv.getByText('The caller’s connection dropped.').waitFor();
  const counsellorSaw = Date.now() - stalledAt;
  assert.ok(callerSaw <= 10000 && counsellorSaw <= 10500, `caller ${callerSaw} ms, counsellor ${counsellorSaw} ms`);
  await say(p, 'during the stall');
  await assertAccessible(p, 'the widget, connection lost');
  await screenshot(p, 'chat-phone-stalled');

  // Back: the widget reconnects by itself and resumes; what was written meanwhile arrives once.
  stalled = false;
  await p.locator('#banner', { hasText: 'Connected again.' }).waitFor({ timeout: 20000 });
  await conv.locator('.presence[data-online="true"]').waitFor();
  await conv.locator('.msg .text', { hasText: 'during the stall' }).waitFor();
  assert.equal(await conv.locator('.msg .text', { hasText: 'during the stall' }).count(), 1);
  await conv.locator('.composer textarea').fill('Still here.');
  await conv.locator('.composer textarea').press('Enter');
  await p.locator('.msg.theirs .text', { hasText: 'Still here.' }).waitFor();
  await agentCtx.close();
  await ctx.close();
});
