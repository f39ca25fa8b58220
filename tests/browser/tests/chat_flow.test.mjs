// (a) A whole conversation between the caller widget and the console, with network drops on both sides.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, context, counsellor, caller, acceptOffer, pane, say, countText, cutSockets, screenshot, WAIT } from '../lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('chat: offer, accept, messages both ways, caller and counsellor drops, counsellor ends', async () => {
  const agentCtx = await context(browser);
  const callerCtx = await context(browser);
  const agent = await counsellor(agentCtx, 'ana');

  // The caller starts on the children's helpline, in Romanian, and waits.
  const { page: chat, contactId } = await caller(callerCtx, 'children', 'ro');
  await chat.getByText(/Numărul tău la rând: \d+\./).waitFor();
  assert.equal(await chat.locator('html').getAttribute('lang'), 'ro');

  // The console rings; the counsellor accepts.
  const offer = agent.locator(`.offer[data-contact-id="${contactId}"]`);
  await offer.waitFor();
  assert.match(await offer.locator('.countdown').textContent(), /Expires in \d+ s/);
  assert.match(await offer.locator('.what').textContent(), /Children's helpline 116 111 · Romanian · waited/);
  await acceptOffer(agent, contactId);
  const conv = pane(agent, contactId);
  await chat.getByText('Vorbești cu Ana.').first().waitFor();

  // Messages both ways, with their states.
  await say(chat, 'Bună, am nevoie de ajutor');
  await chat.locator('.msg.mine .meta[data-state="delivered"]').first().waitFor();
  await conv.locator('.msg.theirs .text', { hasText: 'Bună, am nevoie de ajutor' }).waitFor();

  // The caller's typing shows on the console.
  await chat.locator('#text').pressSequentially('Stai', { delay: 10 });
  await conv.getByText('The caller is typing…').waitFor();
  await chat.locator('#text').fill('');

  await conv.locator('.composer textarea').fill('Bună, sunt aici. Ce s-a întâmplat?');
  await conv.locator('.composer textarea').press('Enter');
  await chat.locator('.msg.theirs .text', { hasText: 'Bună, sunt aici. Ce s-a întâmplat?' }).waitFor();
  await conv.locator('.msg.mine .meta[data-state="delivered"]').waitFor();
  await screenshot(chat, 'chat-conversation');

  // ----- the caller's network drops --------------------------------------------------------
  await callerCtx.setOffline(true);
  await cutSockets(chat);
  await chat.locator('#banner', { hasText: 'Conexiunea s-a întrerupt' }).waitFor();
  await conv.locator('.presence[data-online="false"]').waitFor();
  await agent.locator(`.conv-item[data-contact-id="${contactId}"] .offline`, { hasText: 'caller offline' }).waitFor();
  await screenshot(chat, 'chat-reconnecting');

  // Meanwhile the counsellor writes twice, and the caller writes once (it stays "sending").
  for (const text of ['Ești în siguranță acum?', 'Sunt aici cât ai nevoie.']) {
    await conv.locator('.composer textarea').fill(text);
    await conv.locator('.composer textarea').press('Enter');
  }
  await conv.locator('.msg.mine .meta[data-state="sent"]').nth(1).waitFor();
  await say(chat, 'Da, acum sunt bine');
  await chat.locator('.msg.mine .meta[data-state="sending"]').waitFor();

  // The network comes back: the widget resumes by itself.
  await callerCtx.setOffline(false);
  await chat.locator('.msg.theirs .text', { hasText: 'Sunt aici cât ai nevoie.' }).waitFor();
  await conv.locator('.msg.theirs .text', { hasText: 'Da, acum sunt bine' }).waitFor();
  await chat.locator('.msg.mine .meta[data-state="sending"]').waitFor({ state: 'detached' });
  await conv.locator('.presence[data-online="true"]').waitFor();

  // Nothing lost, nothing shown twice, on either side, in order.
  const callerTexts = await chat.locator('#messages .msg .text').allTextContents();
  assert.deepEqual(callerTexts, [
    'Bună, am nevoie de ajutor',
    'Bună, sunt aici. Ce s-a întâmplat?',
    'Ești în siguranță acum?',
    'Sunt aici cât ai nevoie.',
    'Da, acum sunt bine',
  ]);
  const agentTexts = await conv.locator('.log .msg .text').allTextContents();
  assert.deepEqual(agentTexts, callerTexts);
  for (const t of callerTexts) assert.equal(await countText(chat.locator('#messages'), t), 1, t);
  assert.equal(await chat.locator('.msg.mine .meta[data-state="delivered"]').count(), 2);

  // ----- the counsellor's connection drops; the draft in the reply box survives --------------
  await conv.locator('.composer textarea').fill('Draft typed while the network is down');
  await cutSockets(agent);
  await agent.locator('#banner', { hasText: 'Connection lost' }).waitFor();
  await agent.locator('#banner', { hasText: 'Connected again.' }).waitFor();
  await agent.locator('#conn[data-state="online"]').waitFor();
  assert.equal(await conv.locator('.composer textarea').inputValue(), 'Draft typed while the network is down');
  assert.deepEqual(await conv.locator('.log .msg .text').allTextContents(), callerTexts);
  assert.equal(await agent.locator('.pane').count(), 1, 'one pane per conversation after the rebuild');

  // The conversation goes on after both drops.
  await conv.locator('.composer textarea').fill('Mă bucur. Putem vorbi oricând.');
  await conv.locator('.composer textarea').press('Enter');
  await chat.locator('.msg.theirs .text', { hasText: 'Mă bucur. Putem vorbi oricând.' }).waitFor();
  await screenshot(agent, 'agent-conversation');

  // ----- the counsellor ends -----------------------------------------------------------------
  await conv.getByRole('button', { name: 'End conversation' }).click();
  await agent.getByRole('dialog', { name: 'End this conversation?' }).getByRole('button', { name: 'Yes, end it' }).click();
  await conv.getByText('You ended the conversation.').waitFor();
  await chat.locator('#screen-ended').waitFor();
  await chat.getByText('Consilierul a încheiat discuția.').waitFor();
  assert.equal(await chat.evaluate(() => document.activeElement?.id), 'ended-heading');
  assert.equal(await chat.evaluate(() => sessionStorage.length + localStorage.length), 0, 'nothing left in storage');
  assert.deepEqual(await callerCtx.cookies(), []);
  await screenshot(chat, 'chat-ended');

  for (const p of [chat, agent]) assert.deepEqual(p.errors, [], 'no script errors');
  await agentCtx.close();
  await callerCtx.close();
});

test('chat: a reload of the tab resumes the conversation from the server', { timeout: WAIT * 4 }, async () => {
  const agentCtx = await context(browser);
  const callerCtx = await context(browser);
  const agent = await counsellor(agentCtx, 'ana');
  const { page: chat, contactId } = await caller(callerCtx, 'children', 'en');
  await acceptOffer(agent, contactId);
  const conv = pane(agent, contactId);
  await chat.getByText('You are talking with Ana.').first().waitFor();
  await say(chat, 'first');
  await conv.locator('.msg .text', { hasText: 'first' }).waitFor();
  await conv.locator('.composer textarea').fill('second');
  await conv.locator('.composer textarea').press('Enter');
  await chat.locator('.msg .text', { hasText: 'second' }).waitFor();

  // Only the resume token is in sessionStorage; no texts.
  const stored = await chat.evaluate(() => Object.keys(sessionStorage).map((k) => [k, sessionStorage.getItem(k)]));
  assert.equal(stored.length, 1);
  assert.doesNotMatch(stored[0][1], /first|second/);

  await chat.reload();
  await chat.locator('.msg .text', { hasText: 'second' }).waitFor();
  assert.deepEqual(await chat.locator('#messages .msg .text').allTextContents(), ['first', 'second']);
  await say(chat, 'third');
  await conv.locator('.msg .text', { hasText: 'third' }).waitFor();

  await chat.getByRole('button', { name: 'End chat' }).click();
  await chat.getByRole('dialog').getByRole('button', { name: 'Yes, end the chat' }).click();
  await chat.getByText('You ended the chat.').waitFor();
  await conv.getByText('The caller ended the conversation.').waitFor();
  await agentCtx.close();
  await callerCtx.close();
});

test('chat: a message refused as overloaded shows as waiting, is sent again by itself and delivered once', { timeout: WAIT * 4 }, async () => {
  const agentCtx = await context(browser);
  const callerCtx = await context(browser);
  const agent = await counsellor(agentCtx, 'ana');
  const { page: chat, frames, contactId } = await caller(callerCtx, 'children', 'en');
  await acceptOffer(agent, contactId);
  const conv = pane(agent, contactId);
  await chat.getByText('You are talking with Ana.').first().waitFor();
  // Record what the widget sends from now on, on its open socket.
  await chat.evaluate(() => {
    window.__sent = [];
    for (const s of window.__sockets) {
      const send = s.send.bind(s);
      s.send = (data) => {
        window.__sent.push(String(data));
        send(data);
      };
    }
  });

  // The server refuses this one the first time (tests/browser.rs arms `relay-refuse-once`).
  const text = 'Is anyone there? REFUSED-ONCE';
  await say(chat, text);
  const refusal = await frames.waitFor((f) => f.type === 'error' && f.code === 'overloaded', 'an overloaded refusal');
  assert.ok(refusal.retry_after_ms > 0, 'the refusal says when to send again');
  const mine = chat.locator('.msg.mine', { hasText: text });
  await mine.locator('.meta[data-state="waiting"]').waitFor();
  assert.match(await mine.locator('.meta').textContent(), /waiting, sending again/);

  // After retry_after_ms the widget sends it again with the same client_id; it is stored and delivered once.
  await mine.locator('.meta[data-state="delivered"]').waitFor();
  await conv.locator('.msg.theirs .text', { hasText: text }).waitFor();
  const sent = await chat.evaluate(() => window.__sent);
  const copies = sent.map((p) => JSON.parse(p)).filter((f) => f.type === 'message' && f.text === text);
  assert.equal(copies.length, 2, 'sent twice: refused, then again');
  assert.equal(copies[0].client_id, copies[1].client_id, 'the same client_id both times');
  assert.equal(copies[0].client_id, refusal.ref);
  assert.equal(await countText(chat.locator('#messages'), text), 1, 'shown once to the caller');
  assert.equal(await countText(conv.locator('.log'), text), 1, 'delivered once to the counsellor');
  assert.equal(frames.filter((f) => f.type === 'ack' && f.client_id === refusal.ref).length, 1, 'acknowledged once');

  for (const p of [chat, agent]) assert.deepEqual(p.errors, [], 'no script errors');
  await agentCtx.close();
  await callerCtx.close();
});
