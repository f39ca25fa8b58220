// (b) Quick exit: the page is replaced by a neutral site, Back does not return to the chat, the contact ends.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, EXIT_URL, launch, context, page, recordFrames, counsellor, acceptOffer, pane, say, contactAsSupervisor,
} from '../lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('quick exit button: first in keyboard order, on every screen, with an honest note', async () => {
  const ctx = await context(browser);
  const p = await page(ctx);
  await p.goto(`${BASE}/chat?lang=en`);
  await p.locator('#start-form').waitFor();
  await p.keyboard.press('Tab');
  assert.equal(await p.evaluate(() => document.activeElement?.id), 'quick-exit', 'quick exit is first in keyboard order');
  const button = p.getByRole('button', { name: 'Quick exit' });
  assert.ok(await button.isVisible());
  assert.match(await p.locator('#exit-note').textContent(), /history/);
  // Romanian, Russian and Ukrainian say the same.
  for (const [lang, label] of [['ro', 'Ieșire rapidă'], ['ru', 'Быстрый выход'], ['uk', 'Швидкий вихід']]) {
    await p.locator('#ui-lang').selectOption(lang);
    await p.getByRole('button', { name: label }).waitFor();
    assert.equal(await p.locator('html').getAttribute('lang'), lang);
  }
  await ctx.close();
});

test('quick exit by Shift pressed three times while waiting: replaced, no way back, contact ended', async () => {
  const ctx = await context(browser);
  const p = await page(ctx);
  const frames = recordFrames(p);
  // The page the caller came from (a search, the helpline's site…).
  await p.goto(`${BASE}/healthz`);
  await p.goto(`${BASE}/chat?helpline=family_violence&lang=ro`);
  await p.locator('#start').click();
  const queued = await frames.waitFor((f) => f.type === 'queued', 'queued');
  await p.getByText('Numărul tău la rând').waitFor();
  assert.ok(await p.evaluate(() => sessionStorage.length) <= 1);

  // Focus in the message box, as someone writing would be.
  await p.locator('#text').fill('El vine');
  await p.keyboard.press('Shift');
  await p.keyboard.press('Shift');
  await p.keyboard.press('Shift');
  await p.waitForURL(EXIT_URL);
  assert.equal(await p.title(), 'Weather');

  // Back goes to where the caller was before the chat, not to the chat.
  await p.goBack();
  assert.equal(p.url(), `${BASE}/healthz`);
  assert.equal(await p.evaluate(() => sessionStorage.length + localStorage.length), 0, 'nothing left in storage');
  assert.deepEqual(await ctx.cookies(), [], 'no cookies');

  // The server ended the contact (it was still waiting: abandoned by the caller).
  const contact = await contactAsSupervisor(queued.contact_id, (c) => c.state !== 'queued');
  assert.equal(contact.state, 'abandoned');
  assert.equal(contact.end_reason, 'caller_ended');
  assert.deepEqual(p.errors, []);
  await ctx.close();
});

test('quick exit button during a conversation: the counsellor sees it end', async () => {
  const agentCtx = await context(browser);
  const agent = await counsellor(agentCtx, 'ion');
  const ctx = await context(browser);
  const p = await page(ctx);
  const frames = recordFrames(p);
  await p.goto(`${BASE}/healthz`);
  await p.goto(`${BASE}/chat?helpline=family_violence&lang=ru`);
  await p.locator('#start').click();
  const { contact_id: id } = await frames.waitFor((f) => f.type === 'queued', 'queued');
  await acceptOffer(agent, id);
  await p.getByText('С вами на связи: Ion.').first().waitFor();
  await say(p, 'Он дома, я не могу говорить');
  await pane(agent, id).locator('.msg .text', { hasText: 'Он дома' }).waitFor();

  await p.getByRole('button', { name: 'Быстрый выход' }).click();
  await p.waitForURL(EXIT_URL);
  // The widget says it was a quick exit: the console tells the counsellor so (not a plain end).
  await pane(agent, id).locator('.ended-note[data-reason="quick_exit"]').getByText('The caller left with quick exit (the panic button)').waitFor();
  await p.goBack();
  assert.equal(p.url(), `${BASE}/healthz`);

  const contact = await contactAsSupervisor(id, (c) => c.state !== 'active');
  assert.equal(contact.state, 'ended');
  assert.equal(contact.end_reason, 'caller_ended');
  assert.deepEqual(p.errors, []);
  await ctx.close();
  await agentCtx.close();
});
