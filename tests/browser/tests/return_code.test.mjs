// Issue 24: a chat caller's anonymous return code, from the widget. At the end of a chat a counsellor
// answered she gets a code and keeps it on her device (localStorage, her choice); her next chat starts
// with it filled in, and her next counsellor's offer shows the earlier chat's summary. Quick exit
// forgets it. Tara alone serves the `relay` helpline here (tests/browser.rs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, context, page, recordFrames, counsellor, acceptOffer, say, pane, assertAccessible, api, login, BASE, EXIT_URL } from '../lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Starts a chat from the widget page `p` (already open) and returns the contact id. */
async function startChat(p) {
  await p.locator('#start-form').waitFor();
  await p.locator('#start').click();
  const queued = await p.frames.waitFor((f) => f.type === 'queued' && !p.seen?.has(f.contact_id), 'queued');
  (p.seen ||= new Set()).add(queued.contact_id);
  return queued.contact_id;
}

test('the widget gives a return code, keeps it on the device, and a later chat shows her earlier one', async () => {
  const agentCtx = await context(browser);
  const callerCtx = await context(browser);
  agentCtx.once('page', (p) => {
    p.frames = recordFrames(p);
  });
  const tara = await counsellor(agentCtx, 'tara');
  const widget = await page(callerCtx);
  widget.frames = recordFrames(widget);
  await widget.goto(`${BASE}/chat?helpline=relay&lang=en`);

  // Her first chat, answered; Tara submits its form; Tara ends it.
  const first = await startChat(widget);
  await acceptOffer(tara, first);
  await say(widget, 'They laugh at me at school.');
  await pane(tara, first).locator('.msg .text', { hasText: 'They laugh at me at school.' }).waitFor();
  const token = await login('tara');
  const form = { caller_type: 'person_concerned', age_group: '10_14', gender: 'female', district: 'Orhei', categories: ['violence.emotional'],
    summary: 'Laughed at in class; will talk to her teacher.', outcome: 'counselling', risk: 'low' };
  const saved = await api(`/api/v1/contacts/${first}/form`, { token, method: 'PUT', body: { draft: false, form } });
  assert.equal(saved.status, 200, saved.text);
  await pane(tara, first).getByRole('button', { name: 'End conversation' }).click();
  await tara.getByRole('button', { name: 'Yes, end it' }).click();

  // The ended screen offers a code; she takes it and keeps it on this device.
  await widget.locator('#screen-ended').waitFor();
  const offer = widget.getByRole('region', { name: 'Want to come back later?' });
  await offer.getByRole('button', { name: 'Get a return code' }).click();
  await offer.locator('#code-value', { hasText: /-/ }).waitFor();
  const code = (await offer.locator('#code-value').textContent()).trim();
  assert.match(code, /^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$/);
  assert.equal(await widget.evaluate(() => localStorage.length), 0, 'nothing kept before she agrees');
  await offer.getByLabel('Keep the code on this device (quick exit deletes it)').check();
  assert.equal(await widget.evaluate(() => localStorage.getItem('helpline.chat.returnCode')), code);
  await assertAccessible(widget, 'the ended screen with a return code');

  // A later chat: the code is filled in from the device; her next counsellor sees the earlier chat.
  await widget.getByRole('button', { name: 'Start a new chat' }).click();
  assert.equal(await widget.getByLabel('Return code (optional)').inputValue(), code);
  await widget.getByText('Your code is kept on this device.').waitFor();
  await assertAccessible(widget, 'the start screen with a kept return code');
  const later = await startChat(widget);
  const known = await widget.frames.waitFor((f) => f.type === 'return_code', 'return_code');
  assert.equal(known.known, true);
  await widget.getByText('Your counsellor will see what you talked about last time.').waitFor();
  const card = tara.locator(`.offer[data-contact-id="${later}"]`);
  await card.waitFor();
  await card.getByText('Laughed at in class; will talk to her teacher.').waitFor();
  const offered = await tara.frames.waitFor((f) => f.type === 'offer' && f.contact_id === later, 'offer');
  assert.deepEqual(offered.earlier.map((e) => e.contact_id), [first]);
  await assertAccessible(tara, 'an offer showing the earlier chat of a returning caller');
  await acceptOffer(tara, later);
  // Once accepted, the earlier chat stays above the conversation.
  await pane(tara, later).locator('.earlier-note', { hasText: 'Laughed at in class; will talk to her teacher.' }).waitFor();

  // In the console, Tara links this chat to the earlier one: the search finds the contacts she
  // handled, and the link shows next to the contact with the earlier one's summary.
  const links = pane(tara, later).getByRole('region', { name: 'Earlier contacts' });
  await links.getByText('Not linked to an earlier contact.').waitFor();
  await links.getByRole('button', { name: 'Find an earlier contact…' }).click();
  const search = links.getByRole('form', { name: 'Find an earlier contact' });
  await search.getByLabel('Risk').selectOption('low');
  await search.getByRole('button', { name: 'Search' }).click();
  const found = links.locator(`.link-results li[data-contact-id="${first}"]`);
  await found.getByText('Laughed at in class; will talk to her teacher.').waitFor();
  assert.equal(await links.locator('.link-results li').count(), 1, 'only her own earlier contact, not this one');
  await assertAccessible(tara, 'the search for an earlier contact');
  await found.getByRole('button', { name: /^Link this contact/ }).click();
  await links.locator(`.link-list li[data-contact-id="${first}"]`, { hasText: 'Earlier:' }).waitFor();
  const stored = await api(`/api/v1/contacts/${later}/links`, { token });
  assert.deepEqual(stored.body.map((l) => l.contact_id), [first]);

  // Quick exit forgets the code.
  await widget.getByRole('button', { name: 'Quick exit' }).first().click();
  await widget.waitForURL(`${EXIT_URL}**`);
  const after = await callerCtx.newPage();
  await after.goto(`${BASE}/chat?helpline=relay&lang=en`);
  assert.equal(await after.evaluate(() => localStorage.getItem('helpline.chat.returnCode')), null);
  assert.equal(await after.getByLabel('Return code (optional)').inputValue(), '');
  await agentCtx.close();
  await callerCtx.close();
});
