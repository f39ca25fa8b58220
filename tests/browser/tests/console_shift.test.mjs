// Issue 23, the console built for a night shift: an offer that cannot be missed (a bar in the window
// while the counsellor types in the form, a ring that repeats), conversations told apart in a list,
// a canned response inserted by keyboard and sent, Flag, End chat confirmed, wrap-up with Ready (the
// next offer only after it), Away with a reason. Nina serves the `night` helpline, which has wrap-up on
// (seeded in tests/browser.rs), with two slots. axe on each new state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, context, recordFrames, counsellor, caller, acceptOffer, say, api, login, pane, supervisor, axe, assertAccessible, screenshot, BASE } from '../lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Nina's console at 1366×768 with its frames recorded and every tone the page plays counted. */
async function nina(ctx) {
  await ctx.addInitScript(() => {
    window.__tones = 0;
    const start = OscillatorNode.prototype.start;
    OscillatorNode.prototype.start = function counted(...args) {
      window.__tones += 1;
      return start.apply(this, args);
    };
  });
  // Frames recorded from the page's first socket on.
  ctx.once('page', (p) => {
    p.frames = recordFrames(p);
  });
  const p = await counsellor(ctx, 'nina');
  await p.setViewportSize({ width: 1366, height: 768 });
  return p;
}

/** axe on an open modal dialog (the page behind it is inert): no serious or critical violation. */
async function assertDialogAccessible(p, selector) {
  await axe(p).catch(() => {}); // loads axe into the page (its whole-page count is not this check's)
  const result = await p.evaluate((sel) =>
    window.axe.run(document.querySelector(sel), {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
    }), selector);
  assert.ok(result.passes.length > 3, `axe ran its rules on ${selector}`);
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help}`);
  assert.deepEqual(bad, [], `axe on ${selector}`);
}

/** Whether the element is wholly inside the window. */
async function inViewport(locator) {
  return locator.evaluate((e) => {
    const r = e.getBoundingClientRect();
    return r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight && r.right <= window.innerWidth && r.height > 0;
  });
}

test('a night shift: the offer bar rings, the list tells chats apart, canned, flag, end, wrap-up, away', async () => {
  const admin = await login('admin');
  for (const [title, body] of [
    ['Safety check', 'Are you safe where you are right now?'],
    ['Breathing', 'Let us breathe slowly together for a moment.'],
  ]) {
    const made = await api('/api/v1/canned-responses', { token: admin, method: 'POST', body: { helpline: 'night', language: 'en', title, body } });
    assert.equal(made.status, 201, made.text);
  }
  const agentCtx = await context(browser);
  const callerCtx = await context(browser);
  const supCtx = await context(browser);
  const agent = await nina(agentCtx);
  const hello = await agent.frames.waitFor((f) => f.type === 'hello', 'hello');
  assert.deepEqual(hello.away_reasons, ['break', 'training', 'supervision', 'admin']);

  // The first chat: accepted from the bar; the caller writes.
  const first = await caller(callerCtx, 'night', 'en');
  const firstOffer = agent.locator(`.offer[data-contact-id="${first.contactId}"]`);
  await firstOffer.waitFor();
  assert.equal(await firstOffer.locator('.presence').getAttribute('data-online'), 'true', 'the caller is connected');
  await firstOffer.getByRole('button', { name: /Accept/ }).click();
  const firstPane = pane(agent, first.contactId);
  await firstPane.waitFor();
  await say(first.page, 'Hello from the first caller.');
  await firstPane.locator('.msg .text', { hasText: 'Hello from the first caller.' }).waitFor();

  // Nina types in the contact form, scrolled down: the next offer shows in the window and rings again and again.
  const summary = firstPane.getByLabel('Summary', { exact: true });
  await summary.scrollIntoViewIfNeeded();
  await agent.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
  await summary.click();
  await agent.keyboard.type('Worried about');
  const scrolled = await agent.evaluate(() => window.scrollY);
  assert.ok(scrolled > 100, `the page is scrolled into the form (${scrolled}px)`);
  const tonesBefore = await agent.evaluate(() => window.__tones);
  const second = await caller(callerCtx, 'night', 'en');
  const secondOffer = agent.locator(`.offer[data-contact-id="${second.contactId}"]`);
  await secondOffer.waitFor();
  assert.ok(await inViewport(secondOffer), 'the offer is in the window while Nina is in the form');
  assert.ok(await inViewport(secondOffer.getByRole('button', { name: /Accept/ })), 'and so is its Accept button');
  assert.equal(await agent.evaluate(() => window.scrollY), scrolled, 'the page did not jump');
  // Two tones a ring: a second ring means the offer rings again, not once.
  await agent.waitForFunction((n) => window.__tones >= n + 4, tonesBefore);
  assert.ok(await secondOffer.isVisible(), 'still ringing, still shown');
  await assertAccessible(agent, 'the console, an offer ringing in the bar over the form');
  await screenshot(agent, 'agent-offer-bar', { docs: 'agent-offer-bar.png' });
  await secondOffer.getByRole('button', { name: /Accept/ }).click();
  const secondPane = pane(agent, second.contactId);
  await secondPane.waitFor({ state: 'visible' });
  await secondOffer.waitFor({ state: 'detached' });
  assert.equal(await agent.locator('#offers.ringing').count(), 0, 'the bar is gone once answered');

  // Two chats of the same helpline and language, told apart in the list.
  await say(second.page, 'Hi, second caller here.');
  await secondPane.locator('.msg .text', { hasText: 'Hi, second caller here.' }).waitFor();
  await say(first.page, 'Are you still there?');
  const firstItem = agent.locator(`.conv-item[data-contact-id="${first.contactId}"]`);
  const secondItem = agent.locator(`.conv-item[data-contact-id="${second.contactId}"]`);
  await firstItem.locator('.unread', { hasText: '1' }).waitFor();
  assert.ok(await secondItem.locator('.unread').isHidden(), 'the open conversation has nothing unread');
  const [aliasA, aliasB] = [await firstItem.locator('.alias').textContent(), await secondItem.locator('.alias').textContent()];
  assert.match(aliasA, /^Caller [0-9A-F]{4}$/);
  assert.match(aliasB, /^Caller [0-9A-F]{4}$/);
  assert.notEqual(aliasA, aliasB, 'each caller has an alias of their own');
  assert.equal(await firstItem.locator('.preview').textContent(), 'Are you still there?');
  assert.equal(await secondItem.locator('.preview').textContent(), 'Hi, second caller here.');
  assert.match(await firstItem.locator('.label').textContent(), /^Chat · Night line \(browser test\) · EN$/);
  assert.match(await firstItem.locator('.waited').textContent(), /^waited \d+ s$/);
  assert.equal(await secondItem.getAttribute('aria-current'), 'true');
  await assertAccessible(agent, 'the console, two conversations in the list');

  // A canned response by keyboard: `/` at the start of the reply box, search, Enter inserts, Enter sends.
  const reply = secondPane.locator('.composer textarea');
  assert.ok(await inViewport(reply), 'the reply box is in the window');
  await reply.click();
  await agent.keyboard.press('/');
  const search = secondPane.getByRole('combobox', { name: 'Search canned responses' });
  await search.waitFor();
  await assertAccessible(agent, 'the console, the canned responses open');
  await agent.keyboard.type('safe');
  const options = secondPane.getByRole('listbox', { name: 'Canned responses' }).getByRole('option');
  await options.filter({ hasText: 'Safety check' }).waitFor();
  await options.filter({ hasText: 'Breathing' }).waitFor({ state: 'detached' });
  assert.equal(await options.count(), 1, 'the search narrows the list');
  await agent.keyboard.press('Enter');
  assert.equal(await reply.inputValue(), 'Are you safe where you are right now?', 'inserted, the slash gone');
  assert.equal(await agent.evaluate(() => document.activeElement?.tagName), 'TEXTAREA', 'back in the reply box');
  await agent.keyboard.press('Enter');
  await second.page.locator('.msg.theirs .text', { hasText: 'Are you safe where you are right now?' }).waitFor();
  // Ctrl+K opens it too; Escape closes it.
  await reply.click();
  await agent.keyboard.press('Control+K');
  await search.waitFor();
  await agent.keyboard.press('Escape');
  await search.waitFor({ state: 'hidden' });

  // Flag: a reason, sent as flag_abusive; the result shows, and the supervisors have it.
  await secondPane.getByRole('button', { name: 'Flag as abusive…' }).click();
  await secondPane.getByLabel(/Why flag this contact/).fill('Threats and insults, third time tonight.');
  await secondPane.getByRole('button', { name: 'Send flag' }).click();
  const flagged = await agent.frames.waitFor((f) => f.type === 'flagged' && f.contact_id === second.contactId, 'flagged');
  await secondPane.locator('.flag-result[data-state="flagged"]', { hasText: 'supervisors are alerted' }).waitFor();
  await assertAccessible(agent, 'the console, a contact flagged');
  const flags = await api('/api/v1/flags', { token: admin });
  assert.ok(flags.body.flags.some((f) => f.contact_id === second.contactId && (f.flag_id || f.id) === flagged.flag_id), flags.text);

  // End chat asks first: Keep talking leaves the chat open.
  await firstItem.click();
  await firstPane.waitFor({ state: 'visible' });
  await firstPane.getByRole('button', { name: 'End conversation' }).click();
  const dialog = agent.getByRole('dialog', { name: 'End this conversation?' });
  await dialog.waitFor();
  // A modal dialog makes the rest of the page inert: axe checks the dialog (lib's check wants a whole page).
  await assertDialogAccessible(agent, '#end-dialog');
  await dialog.getByRole('button', { name: 'Keep talking' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.ok(!agent.frames.some((f) => f.type === 'contact_ended' && f.contact_id === first.contactId), 'not ended');
  assert.ok(await firstPane.locator('.composer textarea').isVisible(), 'the chat goes on');
  await firstPane.getByRole('button', { name: 'End conversation' }).click();
  await dialog.getByRole('button', { name: 'Yes, end it' }).click();
  await first.page.locator('#screen-ended').waitFor();

  // Wrap-up: shown with its countdown and Ready; no offer fills the slot meanwhile.
  await agent.frames.waitFor((f) => f.type === 'wrap_up' && f.contact_id === first.contactId, 'wrap_up');
  const ready = firstPane.getByRole('button', { name: 'Ready for the next chat' });
  await ready.waitFor();
  assert.match(await firstPane.locator('.wrapup-text').textContent(), /^Wrap-up: .* for (1 min )?\d+ s more, or until you press Ready/);
  await firstItem.locator('.wrapup-mark', { hasText: 'wrap-up' }).waitFor();
  await assertAccessible(agent, 'the console, a wrap-up open');
  const sup = await supervisor(supCtx, '', { username: 'admin', password: 'admin-demo' });
  const third = await caller(callerCtx, 'night', 'en');
  // The board (built from the router's state) holds the third caller waiting, offered to nobody, while
  // Nina is in wrap-up: her second slot is not free before Ready.
  const board = await sup.frames.waitFor(
    (f) => f.type === 'dashboard' && (f.helplines.find((h) => h.name === 'night')?.waiting || []).some((w) => w.contact_id === third.contactId),
    'a board with the third caller waiting',
  );
  const waiting = board.helplines.find((h) => h.name === 'night').waiting.find((w) => w.contact_id === third.contactId);
  assert.equal(waiting.offered_to, null, 'not offered while the slot is in wrap-up');
  const ninaRow = board.counsellors.find((c) => c.display_name === 'Nina');
  assert.equal(ninaRow.state, 'wrap_up', JSON.stringify(ninaRow));
  assert.ok(!agent.frames.some((f) => f.type === 'offer' && f.contact_id === third.contactId), 'no offer before Ready');
  await ready.click();
  const ended = await agent.frames.waitFor((f) => f.type === 'wrap_up_ended' && f.contact_id === first.contactId, 'wrap_up_ended');
  assert.equal(ended.reason, 'ready');
  await firstPane.getByText('Wrap-up finished').waitFor();
  const thirdOffer = agent.locator(`.offer[data-contact-id="${third.contactId}"]`);
  await thirdOffer.waitFor();
  const offerAt = agent.frames.findIndex((f) => f.type === 'offer' && f.contact_id === third.contactId);
  const endedAt = agent.frames.indexOf(ended);
  assert.ok(offerAt > endedAt, 'the next offer came after Ready');
  await thirdOffer.getByRole('button', { name: /Decline/ }).click();
  await thirdOffer.waitFor({ state: 'detached' });

  // Away, with a reason: on the status frame, beside the status, and on the supervisors' board.
  await agent.getByLabel('Away reason').selectOption('training');
  await agent.getByRole('radio', { name: 'Away' }).check();
  const status = await agent.frames.waitFor((f) => f.type === 'status' && f.status === 'away', 'status away');
  assert.equal(status.reason, 'training');
  await agent.locator('#status-note', { hasText: 'Away: Training' }).waitFor();
  await sup.frames.waitFor(
    (f) => f.type === 'dashboard' && f.counsellors.some((c) => c.display_name === 'Nina' && c.state === 'away' && c.away_reason === 'training'),
    'Nina away for training on the board',
  );
  await assertAccessible(agent, 'the console, away for training');
  await screenshot(agent, 'agent-shift');
  assert.deepEqual(agent.errors, [], 'no script errors');
  await agentCtx.close();
  await callerCtx.close();
  await supCtx.close();
});

test('a caller who leaves by quick exit is told as such in the console', async () => {
  const agentCtx = await context(browser);
  const callerCtx = await context(browser);
  const agent = await counsellor(agentCtx, 'olena');
  const gone = await caller(callerCtx, 'disability', 'en');
  const id = await acceptOffer(agent, gone.contactId);
  await gone.frames.waitFor((f) => f.type === 'connected', 'connected');
  // The widget's own Quick exit button (it sends `end` with `quick_exit`).
  await gone.page.locator('#quick-exit').click();
  const note = pane(agent, id).locator('.ended-note[data-reason="quick_exit"]');
  await note.getByText('The caller left with quick exit (the panic button)').waitFor();
  await agent.locator(`.conv-item[data-contact-id="${id}"] .ended-mark`, { hasText: 'ended' }).waitFor();
  await assertAccessible(agent, 'the console, a caller gone by quick exit');
  assert.deepEqual(agent.errors, [], 'no script errors');
  await agentCtx.close();
  await callerCtx.close();
});

test('a desktop notification for an offer while the console is not looked at, closed once answered', async () => {
  // The browser grants notifications; the page's Notification is wrapped (before any script of the page)
  // so that every notification made, and every close, is recorded and then handed to the real one.
  const agentCtx = await context(browser);
  await agentCtx.grantPermissions(['notifications'], { origin: BASE });
  await agentCtx.addInitScript(() => {
    const Real = window.Notification;
    window.__notices = [];
    window.__noticeErrors = [];
    class Recorded extends Real {
      constructor(title, options = {}) {
        try {
          super(title, options);
        } catch (e) {
          window.__noticeErrors.push(String(e));
          throw e;
        }
        const entry = { title, body: options.body, tag: options.tag, requireInteraction: options.requireInteraction, closed: false, visible: !document.hidden, focused: document.hasFocus() };
        window.__notices.push(entry);
        const close = this.close.bind(this);
        this.close = () => {
          entry.closed = true;
          close();
        };
      }
      static get permission() {
        return Real.permission;
      }
      static requestPermission(...args) {
        return Real.requestPermission(...args);
      }
    }
    window.Notification = Recorded;
  });
  const callerCtx = await context(browser);
  try {
    const agent = await counsellor(agentCtx, 'nina');
    // Granted: the shortcuts panel says notifications are on, and offers no button to ask.
    await agent.locator('#notify-state', { hasText: 'Desktop notifications are on' }).waitFor();
    assert.ok(await agent.locator('#notify-on').isHidden());

    // Looked at (visible and focused): the offer rings in the bar only, no notification.
    await agent.bringToFront();
    assert.ok(await agent.evaluate(() => !document.hidden && document.hasFocus()), 'the console has the focus');
    const seen = await caller(callerCtx, 'night', 'en');
    await agent.locator(`.offer[data-contact-id="${seen.contactId}"]`).waitFor();
    assert.deepEqual(await agent.evaluate(() => window.__notices), [], 'no notification while the console is looked at');
    // Answered and ended, then Ready (the night line has wrap-up on): the slot takes the next offer.
    await acceptOffer(agent, seen.contactId);
    await pane(agent, seen.contactId).getByRole('button', { name: 'End conversation' }).click();
    await agent.getByRole('dialog', { name: 'End this conversation?' }).getByRole('button', { name: 'Yes, end it' }).click();
    await pane(agent, seen.contactId).getByRole('button', { name: 'Ready for the next chat' }).click();
    await pane(agent, seen.contactId).locator('.wrapup-note[data-state="ended"]').waitFor();

    // The console loses the focus (playwright's focus emulation off: the headless window has none), as
    // when the counsellor works in another window. The next offer shows a notification that stays until
    // answered (requireInteraction), tagged with the offer, in the page's words.
    const cdp = await agentCtx.newCDPSession(agent);
    await cdp.send('Emulation.setFocusEmulationEnabled', { enabled: false });
    const { windowId } = await cdp.send('Browser.getWindowForTarget');
    await cdp.send('Browser.setWindowBounds', { windowId, bounds: { windowState: 'minimized' } });
    // (A hidden page draws no frames: its waits poll on a timer, not on animation frames.)
    await agent.waitForFunction(() => document.hidden || !document.hasFocus(), null, { polling: 100 });
    const call = await caller(callerCtx, 'night', 'en');
    await agent.waitForFunction((id) => document.querySelector(`.offer[data-contact-id="${id}"]`), call.contactId, { polling: 100 });
    await agent.waitForFunction(() => window.__notices.length > 0, null, { polling: 100 });
    const [notice, ...more] = await agent.evaluate(() => window.__notices);
    assert.deepEqual(more, [], 'one notification for one offer');
    assert.equal(notice.title, 'Incoming chat');
    assert.equal(notice.body, 'Night line (browser test) · English');
    assert.equal(notice.tag, `offer-${call.contactId}`);
    assert.equal(notice.requireInteraction, true);
    assert.equal(notice.closed, false);
    assert.ok(!(notice.visible && notice.focused), 'made while the console was not looked at');
    assert.deepEqual(await agent.evaluate(() => window.__noticeErrors), [], 'the real Notification took it');

    // Answered (the window back): the notification is closed.
    await cdp.send('Browser.setWindowBounds', { windowId, bounds: { windowState: 'normal' } });
    await agent.locator(`.offer[data-contact-id="${call.contactId}"] button.accept`).click();
    await pane(agent, call.contactId).waitFor();
    await agent.waitForFunction(() => window.__notices[0].closed);
    await pane(agent, call.contactId).getByRole('button', { name: 'End conversation' }).click();
    await agent.getByRole('dialog', { name: 'End this conversation?' }).getByRole('button', { name: 'Yes, end it' }).click();
    await pane(agent, call.contactId).getByText('You ended the conversation.').waitFor();
    assert.deepEqual(agent.errors, []);
  } finally {
    await agentCtx.close();
    await callerCtx.close();
  }
});
