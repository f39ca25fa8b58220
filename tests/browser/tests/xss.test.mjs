// (c) Chat text is text: markup sent either way is shown as written and runs nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, context, counsellor, caller, acceptOffer, pane, say } from '../lib.mjs';

const PAYLOAD = '<img src=x onerror=alert(1)><script>window.__xss=1</script>';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('an XSS payload renders as text on both sides and runs nothing', async () => {
  const agentCtx = await context(browser);
  const callerCtx = await context(browser);
  const agent = await counsellor(agentCtx, 'olena');
  const { page: chat, contactId } = await caller(callerCtx, 'disability', 'uk');
  await acceptOffer(agent, contactId);
  const conv = pane(agent, contactId);
  await chat.getByText('З вами на зв’язку: Olena.').first().waitFor();

  // Caller -> counsellor.
  await say(chat, PAYLOAD);
  await conv.locator('.msg.theirs .text').first().waitFor();
  // Counsellor -> caller.
  await conv.locator('.composer textarea').fill(PAYLOAD);
  await conv.locator('.composer textarea').press('Enter');
  await chat.locator('.msg.theirs .text').first().waitFor();
  await conv.locator('.msg.mine .meta[data-state="delivered"]').waitFor();
  await chat.locator('.msg.mine .meta[data-state="delivered"]').waitFor();

  for (const [p, log] of [[chat, '#messages'], [agent, `.pane[data-contact-id="${contactId}"] .log`]]) {
    const texts = await p.locator(`${log} .msg .text`).allTextContents();
    assert.deepEqual(texts, [PAYLOAD, PAYLOAD], 'shown exactly as written');
    assert.equal(await p.locator(`${log} img, ${log} script`).count(), 0, 'no element made from the text');
    assert.equal(await p.evaluate(() => window.__xss), undefined, 'no script ran');
    assert.deepEqual(p.dialogs, [], 'no alert');
    assert.deepEqual(p.errors, []);
  }
  await conv.getByRole('button', { name: 'End conversation' }).click();
  await agent.getByRole('dialog', { name: 'End this conversation?' }).getByRole('button', { name: 'Yes, end it' }).click();
  await chat.locator('#screen-ended').waitFor();
  await agentCtx.close();
  await callerCtx.close();
});
