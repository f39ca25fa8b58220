// An SMS in the console: the test calls the SMS channel's webhook as Kannel would (the channel
// tests/browser.rs seeds, whose Kannel is not there); the counsellor sees an SMS contact, answers it,
// and her reply shows what became of it at the provider (`delivery`: not reached yet, sending again).
// The whole way through real Kannel is tests/it/sms.rs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, launch, context, counsellor, acceptOffer, pane, assertAccessible } from '../lib.mjs';

const SECRET = process.env.HELPLINE_SMS_SECRET;

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** An SMS from `number` through the channel's webhook; returns its contact id. */
async function sms(number, text) {
  const res = await fetch(`${BASE}/api/v1/channels/sms/browser-sms/inbound?from=${number}&to=116111&id=browser-${Date.now()}-${Math.random()}`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`kannel:${SECRET}`).toString('base64')}`, 'content-type': 'text/plain; charset=UTF-8' },
    body: text,
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.contact_id;
}

test('an SMS contact is answered in the console and the reply’s delivery state is shown', { skip: !SECRET && 'no SMS channel' }, async () => {
  const ctx = await context(browser);
  const agent = await counsellor(ctx, 'ana');
  const number = `3736911${String(Date.now()).slice(-4)}`;
  const id = await sms(number, 'Bună, am nevoie de ajutor');
  await acceptOffer(agent, id);
  const p = pane(agent, id);
  await p.getByText('Bună, am nevoie de ajutor').waitFor();
  await p.locator('dd', { hasText: 'SMS' }).first().waitFor();

  await p.getByRole('textbox', { name: 'Reply' }).fill('Sunt aici. Ești în siguranță acum?');
  await p.getByRole('button', { name: 'Send', exact: true }).click();
  // Stored, then the provider could not be reached: kept in the outbox and sent again later.
  const meta = p.locator('.msg.mine .meta[data-state="retrying"]');
  await meta.waitFor();
  assert.match(await meta.textContent(), /not reached yet, sending again/);
  await assertAccessible(agent, 'an SMS conversation with a reply waiting in the outbox');

  // The same number writes again once this one ended: a repeat sender.
  await p.getByRole('button', { name: 'End conversation' }).click();
  await agent.getByRole('dialog', { name: 'End this conversation?' }).getByRole('button', { name: 'Yes, end it' }).click();
  // The end is committed once the console says so: a text sent before that joins the open conversation.
  await p.getByText('You ended the conversation.').waitFor();
  const second = await sms(number, 'Iar eu');
  assert.notEqual(second, id, 'a new conversation after the end');
  await acceptOffer(agent, second);
  await pane(agent, second).locator('dd.repeat', { hasText: '1 times in 90 days' }).waitFor();
  assert.deepEqual(agent.errors, []);
  await ctx.close();
});
