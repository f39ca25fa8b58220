// Phone calls in the console, with a simulated telephone exchange driven from node over the webhook
// (`POST /api/v1/telephony/events`, the gateway token tests/browser.rs creates): a repeat caller's
// offer shows their earlier contact, and Hold / Resume / Hang up reach the exchange as commands.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, login, launch, context, counsellor, acceptOffer, pane, assertAccessible, WAIT } from '../lib.mjs';

const TOKEN = process.env.HELPLINE_GATEWAY_TOKEN;

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** The simulated exchange: sends one event, returns the frames of the answer. */
async function exchange(event) {
  const res = await fetch(`${process.env.HELPLINE_URL}/api/v1/telephony/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(event),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.frames;
}

let nextEvent = 0;
const eventId = () => `browser-${Date.now()}-${++nextEvent}`;

/** Polls the exchange's webhook until a command of `type` for `callId` comes, acknowledges it, returns it. */
async function command(type, callId) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const frames = await exchange({ type: 'ping' });
    const found = frames.find((f) => f.type === type && f.call_id === callId);
    if (found) {
      assert.ok(found.command_id, 'every command has an id');
      assert.deepEqual(await exchange({ type: 'command_ack', command_id: found.command_id }), []);
      return found;
    }
    if (Date.now() > deadline) assert.fail(`no ${type} for ${callId}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('a repeat caller’s offer shows the earlier contact; Hold, Resume and Hang up reach the exchange', { skip: !TOKEN && 'no gateway token' }, async () => {
  const number = `+3736900${String(Date.now()).slice(-4)}`;
  // An earlier call from the same number, recorded with its form by Ana.
  const token = await login('ana');
  const at = (ms) => new Date(ms).toISOString();
  const t0 = Date.now() - 3_600_000;
  const rec = await api('/api/v1/contacts', {
    token, method: 'POST',
    body: { channel: 'call', helpline: 'children', language: 'ro', caller: number, started_at: at(t0), answered_at: at(t0 + 5000), ended_at: at(t0 + 60000) },
  });
  assert.equal(rec.status, 201, rec.text);
  const form = { caller_type: 'person_concerned', age_group: '15_17', gender: 'female', categories: ['violence.bullying'],
    summary: 'Bullied at school <b>for weeks</b>; talked about telling a teacher.', outcome: 'counselling', risk: 'medium' };
  const saved = await api(`/api/v1/contacts/${rec.body.contact_id}/form`, { token, method: 'PUT', body: { form } });
  assert.equal(saved.status, 200, saved.text);

  const ctx = await context(browser);
  const agent = await counsellor(ctx, 'ana');
  const callId = `browser-call-${Date.now()}`;
  const offered = await exchange({ type: 'call_offered', event_id: eventId(), call_id: callId, dialled: '116111', caller: number, language: 'ro', at: Date.now() });
  assert.equal(offered[0].type, 'ack');

  const card = agent.locator('.offer').filter({ hasText: 'Incoming call' });
  await card.waitFor();
  await card.getByRole('heading', { name: 'Earlier contacts on this helpline' }).waitFor();
  await card.getByText(form.summary, { exact: true }).waitFor(); // as text: the markup is not interpreted
  assert.match(await card.locator('.earlier-facts').first().textContent(), /violence\.bullying · risk medium · outcome counselling/);
  await assertAccessible(agent, 'a call offer with earlier contacts');

  const id = await acceptOffer(agent, await card.getAttribute('data-contact-id'));
  const connect = await command('connect', callId);
  assert.equal(connect.extension, '201');
  await exchange({ type: 'call_answered', event_id: eventId(), call_id: callId, at: Date.now() });

  const p = pane(agent, id);
  const controls = p.getByRole('group', { name: 'Phone call' });
  await controls.getByRole('button', { name: 'Hold' }).click();
  await p.getByText('The caller is on hold.').waitFor();
  await command('hold', callId);
  assert.ok(await controls.getByRole('button', { name: 'Hold' }).isHidden());
  await assertAccessible(agent, 'a call on hold');
  await controls.getByRole('button', { name: 'Resume' }).click();
  await controls.getByRole('button', { name: 'Hold' }).waitFor();
  await command('unhold', callId);

  await controls.getByRole('button', { name: 'Hang up' }).click();
  await p.getByText('Hanging up…').waitFor();
  await command('hangup', callId);
  await exchange({ type: 'call_ended', event_id: eventId(), call_id: callId, by: 'counsellor', at: Date.now() });
  await p.getByText('Call ended.').waitFor();
  assert.ok(await controls.getByRole('button', { name: 'Hang up' }).isDisabled());
  assert.deepEqual(agent.errors, []);
  await ctx.close();
});
