// Issue 24 from two consoles and the caller's widget: a warm transfer to a named colleague (the consult
// between the two counsellors, then the colleague accepts; the form's draft goes along, and she reads
// who handed it over and why), and a consult without transferring. The caller never sees a consult:
// asserted on the widget's page (its DOM and the frames it got). Tara and Toma alone serve the `relay`
// helpline (tests/browser.rs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, context, recordFrames, counsellor, caller, acceptOffer, say, pane, assertAccessible, api, login } from '../lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Two consoles (Tara, then Toma) recording their frames, and a caller on the relay helpline whom Tara answers. */
async function setUp() {
  const taraCtx = await context(browser);
  const tomaCtx = await context(browser);
  const callerCtx = await context(browser);
  for (const ctx of [taraCtx, tomaCtx]) {
    ctx.once('page', (p) => {
      p.frames = recordFrames(p);
    });
  }
  const tara = await counsellor(taraCtx, 'tara');
  const chat = await caller(callerCtx, 'relay', 'en');
  const id = await acceptOffer(tara, chat.contactId);
  const toma = await counsellor(tomaCtx, 'toma');
  await say(chat.page, 'I need to talk to someone.');
  await pane(tara, id).locator('.msg .text', { hasText: 'I need to talk to someone.' }).waitFor();
  const close = async () => {
    const queued = await chat.frames.waitFor((f) => f.type === 'queued' && f.resume_token, 'queued');
    const end = await api('/api/v1/caller/end', { method: 'POST', body: { resume_token: queued.resume_token } });
    assert.equal(end.status, 204, end.text);
    for (const ctx of [taraCtx, tomaCtx, callerCtx]) await ctx.close();
  };
  return { tara, toma, chat, id, close };
}

/** The caller's page shows none of these texts, and no frame it got carries them. */
async function callerNeverSaw(chat, texts) {
  const shown = await chat.page.evaluate(() => document.body.innerText);
  for (const text of texts) {
    assert.ok(!shown.includes(text), `the caller's page shows ${JSON.stringify(text)}`);
    assert.ok(!chat.frames.some((f) => JSON.stringify(f).includes(text)), `a frame to the caller carries ${JSON.stringify(text)}`);
  }
}

test('a warm transfer to a named colleague: they consult, she accepts, the form and the reason go along', async () => {
  const { tara, toma, chat, id, close } = await setUp();
  const p = pane(tara, id);

  // Tara starts the contact form: its draft must reach Toma.
  const form = p.locator('.contact-form');
  await form.getByLabel('Summary', { exact: true }).fill('Twelve years old, afraid to go home.');
  await form.locator('.form-status', { hasText: 'Draft saved' }).waitFor();

  // Transfer… to a colleague: the picker lists Toma (signed in, free, of this helpline), warm.
  await p.getByRole('button', { name: 'Transfer…' }).click();
  const transfer = p.getByRole('form', { name: 'Transfer this conversation' });
  await transfer.getByLabel('A colleague').check();
  const picker = transfer.getByLabel('Colleague (signed in, free for this conversation)');
  await picker.locator('option', { hasText: 'Toma' }).waitFor({ state: 'attached' });
  await picker.selectOption({ label: 'Toma' });
  await transfer.getByLabel('Talk to the colleague first (warm transfer)').check();
  await transfer.getByLabel('Reason (the next counsellor reads it)').fill('she asked for someone who knows her school');
  await assertAccessible(tara, 'the transfer form with a colleague chosen');
  await transfer.getByRole('button', { name: 'Transfer', exact: true }).click();
  await p.locator('.transfer-result', { hasText: "Waiting for your colleague's answer." }).waitFor();

  // Toma is asked, with the reason; nothing has moved yet.
  const card = toma.locator('#asks-section .ask', { hasText: 'Tara asks you to take over a conversation' });
  await card.waitFor();
  await card.getByText('Why: she asked for someone who knows her school').waitFor();
  assert.equal(await pane(toma, id).count(), 0, 'no pane before she accepts');

  // The consult: Tara writes, Toma answers; both see the thread.
  const consult = p.locator('.consult');
  await consult.getByLabel('Message to the colleague').fill('She is 12; the father is at home.');
  await consult.getByRole('button', { name: 'Send to the colleague' }).click();
  await card.locator('.consult-log', { hasText: 'Tara: She is 12; the father is at home.' }).waitFor();
  await card.getByLabel('Reply').fill('I know her school; I can take her.');
  await card.getByRole('button', { name: 'Reply' }).click();
  await consult.locator('.consult-log', { hasText: 'Toma: I know her school; I can take her.' }).waitFor();
  await consult.locator('.consult-log', { hasText: 'You: She is 12; the father is at home.' }).waitFor();
  await assertAccessible(toma, 'the console asked to take over a conversation');
  await callerNeverSaw(chat, ['She is 12', 'I know her school', 'someone who knows her school']);

  // Toma accepts: the conversation moves, with who, why, the consult and the form's draft.
  await card.getByRole('button', { name: 'Accept the conversation' }).click();
  const mine = pane(toma, id);
  await mine.waitFor();
  await mine.getByText('Handed over to you by Tara.').waitFor();
  await mine.getByText('Why: she asked for someone who knows her school').waitFor();
  await mine.locator('.handover-note .consult', { hasText: 'She is 12; the father is at home.' }).waitFor();
  await mine.locator('.msg .text', { hasText: 'I need to talk to someone.' }).waitFor();
  await toma.waitForFunction((s) => document.querySelector(s)?.value === 'Twelve years old, afraid to go home.', `#cf-summary-${id}`);
  assert.equal(await toma.locator('#asks-section').isHidden(), true, 'the card is gone once the conversation is hers');
  await p.locator('.transfer-result', { hasText: 'Transferred.' }).waitFor();
  const ended = await tara.frames.waitFor((f) => f.type === 'contact_ended' && f.contact_id === id, 'contact_ended');
  assert.equal(ended.reason, 'transferred');

  // The caller talks on, with Toma now.
  await say(chat.page, 'Are you still there?');
  await mine.locator('.msg .text', { hasText: 'Are you still there?' }).waitFor();
  await callerNeverSaw(chat, ['She is 12', 'I know her school', 'someone who knows her school']);
  const token = await login('toma');
  const stored = await api(`/api/v1/contacts/${id}/form`, { token });
  assert.equal(stored.status, 200, stored.text);
  assert.equal(stored.body.form.summary, 'Twelve years old, afraid to go home.');
  await assertAccessible(toma, 'the console with a conversation handed over');
  await close();
});

test('a consult with a colleague without transferring: the caller never sees it', async () => {
  const { tara, toma, chat, id, close } = await setUp();
  const p = pane(tara, id);
  await p.getByRole('button', { name: 'Ask a colleague…' }).click();
  const consult = p.locator('.consult');
  await consult.getByLabel('Colleague', { exact: true }).locator('option', { hasText: 'Toma' }).waitFor({ state: 'attached' });
  await consult.getByLabel('Colleague', { exact: true }).selectOption({ label: 'Toma' });
  await consult.getByLabel('Message to the colleague').fill('Which services are there in Balti?');
  await assertAccessible(tara, 'the consult box');
  await consult.getByLabel('Message to the colleague').press('Enter');

  const card = toma.locator('#asks-section .ask', { hasText: 'Tara asks you about a conversation' });
  await card.locator('.consult-log', { hasText: 'Tara: Which services are there in Balti?' }).waitFor();
  assert.equal(await card.getByRole('button', { name: 'Accept the conversation' }).isVisible(), false, 'a consult hands nothing over');
  await card.getByLabel('Reply').fill('The family centre on Independentei street.');
  await card.getByLabel('Reply').press('Enter');
  await consult.locator('.consult-log', { hasText: 'Toma: The family centre on Independentei street.' }).waitFor();
  await assertAccessible(toma, 'the console with a colleague asking');

  // The caller writes and is answered as before; she sees nothing of the consult.
  await say(chat.page, 'Hello?');
  await p.locator('.msg .text', { hasText: 'Hello?' }).waitFor();
  await callerNeverSaw(chat, ['Balti', 'Independentei']);
  assert.equal(await pane(toma, id).count(), 0, 'the conversation stays with Tara');
  await card.getByRole('button', { name: 'Close' }).click();
  await toma.locator('#asks-section').waitFor({ state: 'hidden' });
  await close();
});
