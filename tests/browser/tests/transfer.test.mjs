// Issue 24: a counsellor transfers a conversation from the console to another helpline's queue with a
// reason; the caller is told she waits again there, the contact's helpline changes, and the reason is
// what the counsellor who answers there reads. Olena alone serves disability in Ukrainian.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, context, recordFrames, counsellor, caller, acceptOffer, say, pane, contactAsSupervisor, assertAccessible, api } from '../lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('a counsellor transfers a chat to another helpline from the console', async () => {
  const agentCtx = await context(browser);
  const callerCtx = await context(browser);
  agentCtx.once('page', (p) => {
    p.frames = recordFrames(p);
  });
  const agent = await counsellor(agentCtx, 'olena');
  const chat = await caller(callerCtx, 'disability', 'uk');
  const id = await acceptOffer(agent, chat.contactId);
  await say(chat.page, 'Мені потрібна допомога.');
  const p = pane(agent, id);
  await p.locator('.msg .text', { hasText: 'Мені потрібна допомога.' }).waitFor();

  await p.getByRole('button', { name: 'Transfer…' }).click();
  const form = p.getByRole('form', { name: 'Transfer this conversation' });
  await form.waitFor();
  await form.getByLabel('To the queue of').selectOption('family_violence');
  await form.getByLabel('Reason (the next counsellor reads it)').fill('violence at home');
  await assertAccessible(agent, 'the transfer form');
  await form.getByRole('button', { name: 'Transfer', exact: true }).click();

  const handover = await agent.frames.waitFor((f) => f.type === 'handover', 'handover');
  assert.equal(handover.state, 'done');
  await p.locator('.transfer-result', { hasText: 'Transferred.' }).waitFor();
  const moved = await chat.frames.waitFor((f) => f.type === 'transferred', 'transferred');
  assert.equal(moved.helpline, 'family_violence');
  const contact = await contactAsSupervisor(id, (c) => c.helpline === 'family_violence');
  assert.notEqual(contact.state, 'ended');

  // The caller leaves (the widget's beacon end), so nothing of this test waits in the family-violence
  // queue of the server the other test files share (the wall test counts that queue's rows).
  const queued = await chat.frames.waitFor((f) => f.type === 'queued' && f.resume_token, 'queued');
  const end = await api('/api/v1/caller/end', { method: 'POST', body: { resume_token: queued.resume_token } });
  assert.equal(end.status, 204, end.text);
  await contactAsSupervisor(id, (c) => ['ended', 'abandoned'].includes(c.state));
  await agentCtx.close();
  await callerCtx.close();
});
