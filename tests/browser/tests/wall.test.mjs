// The dashboard for a wall: wall mode (`?wall=1`) fits the queue, the counsellors, the alerts, the
// escalations and the case deadlines on one 1920×1080 screen without scrolling, in large type, with no
// controls, and names instead of codes (the screenshot docs/screenshots/supervisor-wall.png); at 1366×768 a
// long red queue stays inside its card; the blocked callers' list, and lifting a block from it. axe on each.
//
// `wanda` (seeded by tests/browser.rs) supervises every demo helpline. tests/browser.rs shortens the family
// violence helpline's at-risk and target times to 1 s and 2 s, so its waiting rows turn red quickly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, api, launch, context, page, recordFrames, counsellor, caller, acceptOffer, login, supervisor, assertAccessible, screenshot } from '../lib.mjs';

const WANDA = { username: 'wanda', password: 'wanda-wall-screen' };
const PANELS = ['#helplines', '#counsellors', '#alerts', '#escalations', '#cases-due'];

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Where each box is and how the page scrolls. */
async function layout(p) {
  return p.evaluate((panels) => {
    const box = (node) => {
      const r = node.getBoundingClientRect();
      return { top: r.top, left: r.left, bottom: r.bottom, right: r.right, visible: node.checkVisibility() };
    };
    return {
      scrollHeight: document.scrollingElement.scrollHeight,
      scrollWidth: document.scrollingElement.scrollWidth,
      innerHeight: window.innerHeight,
      innerWidth: window.innerWidth,
      panels: Object.fromEntries(panels.map((id) => [id, box(document.querySelector(id))])),
    };
  }, PANELS);
}

/** Every visible element that sticks out of its card (`.helpline` or `.panel`), with by how much. */
async function overflowing(p) {
  return p.evaluate(() => {
    const out = [];
    for (const card of document.querySelectorAll('.helpline, .panel')) {
      if (!card.checkVisibility()) continue;
      const c = card.getBoundingClientRect();
      if (card.scrollWidth > card.clientWidth + 1) out.push(`${card.id || card.dataset.helpline}: scrolls sideways (${card.scrollWidth} > ${card.clientWidth})`);
      for (const node of card.querySelectorAll('*')) {
        if (!node.checkVisibility() || node.closest('svg')) continue;
        const r = node.getBoundingClientRect();
        if (!r.width && !r.height) continue;
        // Inside a list that scrolls within its panel: compare with the list, not the card.
        if (r.right > c.right + 1 || r.left < c.left - 1) {
          out.push(`${card.id || card.dataset.helpline} > ${node.tagName.toLowerCase()}.${node.className}: ${Math.round(r.left)}–${Math.round(r.right)} outside ${Math.round(c.left)}–${Math.round(c.right)}`);
        }
      }
    }
    return out;
  });
}

test('wall mode: five panels on one 1920×1080 screen, no scrolling, no controls, names instead of codes', async () => {
  const wallCtx = await context(browser, { viewport: { width: 1920, height: 1080 } });
  const agentCtx = await context(browser);
  const callerCtx = await context(browser);
  const callers = [];
  try {
    // Ion answers a child and escalates; then he goes offline (his console closes), so callers wait.
    const agent = await counsellor(agentCtx, 'ion');
    const child = await caller(callerCtx, 'children', 'ro');
    callers.push(child);
    await acceptOffer(agent, child.contactId);
    const ion = await login('ion');
    const escalated = await api('/api/v1/escalations', {
      token: ion,
      method: 'POST',
      body: { contact_id: child.contactId, kind: 'emergency_services', risk: 'high', reason: 'Spune că tatăl e beat și lovește.', district: 'Bălți' },
    });
    assert.equal(escalated.status, 201, escalated.text);
    await agent.getByRole('radio', { name: 'Away' }).check();
    await agent.locator('input[name="status"][value="away"]:checked').waitFor();

    const wall = await supervisor(wallCtx, '?wall=1', WANDA);
    assert.ok(await wall.locator('body.wall').count(), 'wall mode from the URL');
    for (let i = 0; i < 4; i += 1) callers.push(await caller(callerCtx, 'family_violence', i % 2 ? 'ru' : 'ro'));
    for (const c of callers.slice(1)) await wall.locator(`tr[data-contact-id="${c.contactId}"][data-level="red"]`).waitFor();
    // Listed (on a wall the alerts that do not fit their panel are cut, with "+N more").
    await wall.locator('.alert[data-kind="wait_15s"]').nth(3).waitFor({ state: 'attached' });
    const escalation = wall.locator(`.escalation[data-contact-id="${child.contactId}"]`);
    await escalation.waitFor();

    // Names, not codes: the helpline's display name and the counsellor's, never "children · a counsellor".
    const body = await escalation.locator('.alert-body').textContent();
    assert.match(body, /^Children's helpline 116 111 · Ion · Bălți · contact [0-9a-f]{6}$/);
    assert.doesNotMatch(body, /children ·|a counsellor/);

    // One screen: nothing scrolls, each panel whole inside the viewport.
    const at = await layout(wall);
    assert.ok(at.scrollHeight <= at.innerHeight, `the page scrolls: ${at.scrollHeight} > ${at.innerHeight}`);
    assert.ok(at.scrollWidth <= at.innerWidth, `the page scrolls sideways: ${at.scrollWidth} > ${at.innerWidth}`);
    for (const [id, b] of Object.entries(at.panels)) {
      assert.ok(b.visible, `${id} is shown`);
      assert.ok(b.top >= 0 && b.left >= 0 && b.bottom <= at.innerHeight && b.right <= at.innerWidth, `${id} is inside the screen: ${JSON.stringify(b)}`);
      assert.ok(b.bottom - b.top > 150 && b.right - b.left > 300, `${id} has room: ${JSON.stringify(b)}`);
    }
    // The queue itself is on the screen: each waiting row wholly inside its helpline's card.
    const rows = await wall.evaluate((ids) =>
      ids.map((id) => {
        const row = document.querySelector(`tr[data-contact-id="${id}"]`).getBoundingClientRect();
        const card = document.querySelector(`tr[data-contact-id="${id}"]`).closest('.helpline').getBoundingClientRect();
        return { id, inside: row.top >= card.top && row.bottom <= card.bottom && row.bottom <= window.innerHeight && row.height > 20 };
      }),
    callers.slice(1).map((c) => c.contactId));
    assert.deepEqual(rows.filter((r) => !r.inside), [], 'every waiting row is on the screen');
    // Large type, readable across a room; no controls a wall does not need (only the way out of wall mode).
    const sizes = await wall.evaluate(() => ({
      age: parseFloat(getComputedStyle(document.querySelector('.waiting td.age')).fontSize),
      heading: parseFloat(getComputedStyle(document.querySelector('#alerts-heading')).fontSize),
      body: parseFloat(getComputedStyle(document.querySelector('.alert-body')).fontSize),
      controls: [...document.querySelectorAll('button, select, input, textarea')].filter((n) => n.checkVisibility()).map((n) => n.id || n.className),
    }));
    assert.ok(sizes.age >= 28, `waiting times in large type (${sizes.age}px)`);
    assert.ok(sizes.heading >= 28, `panel headings in large type (${sizes.heading}px)`);
    assert.ok(sizes.body >= 18, `body text readable from afar (${sizes.body}px)`);
    assert.deepEqual(sizes.controls, ['wall'], 'no controls on the wall but the way out of wall mode');
    assert.deepEqual(await overflowing(wall), [], 'nothing sticks out of its card');
    await assertAccessible(wall, 'the wall at 1920×1080');
    await screenshot(wall, 'supervisor-wall', { docs: 'supervisor-wall.png' });

    // A 1366×768 wall screen: still one screen, nothing outside its card.
    await wall.setViewportSize({ width: 1366, height: 768 });
    const small = await layout(wall);
    assert.ok(small.scrollHeight <= small.innerHeight && small.scrollWidth <= small.innerWidth, `the 1366×768 wall scrolls: ${JSON.stringify(small)}`);
    for (const [id, b] of Object.entries(small.panels)) assert.ok(b.bottom <= small.innerHeight && b.right <= small.innerWidth, `${id} inside 1366×768`);
    assert.deepEqual(await overflowing(wall), [], 'nothing sticks out of its card at 1366×768');
    await screenshot(wall, 'supervisor-wall-1366');

    // A wall too short for its lists: each list shows the entries that fit wholly in its card and then
    // "+N more", N being exactly the entries it leaves out; still no scrolling.
    await wall.setViewportSize({ width: 1366, height: 560 });
    await wall.locator('.wall-more').first().waitFor();
    // The wall fits its lists in the frame after each board update (every second): the cuts are read
    // once a frame has fitted them, all in one evaluation (a board arriving meanwhile cannot split it).
    const fitted = await wall.waitForFunction(() => {
      const cuts = [...document.querySelectorAll('.wall-more')].map((more) => {
        const list = more.parentElement;
        const card = list.closest('.helpline, .panel').getBoundingClientRect();
        const entries = [...list.querySelectorAll(':scope > li, :scope > tr, .person')].filter((n) => n !== more);
        const shown = entries.filter((n) => n.checkVisibility());
        return {
          list: list.id || list.closest('.helpline, .panel').id || list.closest('.helpline').dataset.helpline,
          text: more.textContent,
          cut: entries.length - shown.length,
          inside: shown.every((n) => n.getBoundingClientRect().bottom <= card.bottom + 1) && more.getBoundingClientRect().bottom <= card.bottom + 1,
        };
      });
      return cuts.length > 0 && cuts.every((c) => c.inside) ? cuts : false;
    }, null, { timeout: 10000 });
    const cuts = await fitted.jsonValue();
    assert.ok(cuts.length > 0, 'a list is cut on a short wall');
    for (const c of cuts) {
      assert.ok(c.cut > 0, `${c.list}: "+N more" only when something is left out`);
      assert.equal(c.text, `+${c.cut} more`, `${c.list}: says how many are left out`);
      assert.ok(c.inside, `${c.list}: what is shown is wholly in its card`);
    }
    const short = await layout(wall);
    assert.ok(short.scrollHeight <= short.innerHeight, `the short wall scrolls: ${JSON.stringify(short)}`);
    await assertAccessible(wall, 'a short wall with "+N more"');
    await screenshot(wall, 'supervisor-wall-more');
    // Tall again: the queue's waiting callers all back, no "+N more" left in its cards.
    await wall.setViewportSize({ width: 1920, height: 1080 });
    await wall.waitForFunction(() => !document.querySelector('.helpline .wall-more') && !document.querySelector('.helpline .wall-cut'));

    // Leaving wall mode brings the controls back.
    await wall.getByRole('button', { name: 'Leave wall mode' }).click();
    assert.doesNotMatch(wall.url(), /wall=1/);
    await wall.locator('#monitors').waitFor();
    assert.ok(await wall.locator(`tr[data-contact-id="${callers[1].contactId}"]`).getByRole('button', { name: 'Move to front' }).isVisible());
    assert.deepEqual(wall.errors, []);
  } finally {
    for (const c of callers) await c.page.locator('#quick-exit').click().catch(() => {});
    await wallCtx.close();
    await agentCtx.close();
    await callerCtx.close();
  }
});

test('at 1366×768 a long red queue stays inside its card', async () => {
  const supCtx = await context(browser, { viewport: { width: 1366, height: 768 } });
  const agentCtx = await context(browser);
  const callerCtx = await context(browser);
  const callers = [];
  try {
    // Olena is available with room: each waiting row can be offered to her (the row's full set of actions).
    const sup = await supervisor(supCtx, '', WANDA);
    const agent = await counsellor(agentCtx, 'olena');
    // She is busy answering one; the others wait for the family violence helpline and turn red.
    const taken = await caller(callerCtx, 'disability', 'uk');
    callers.push(taken);
    await acceptOffer(agent, taken.contactId);
    for (let i = 0; i < 6; i += 1) callers.push(await caller(callerCtx, 'family_violence', ['ro', 'ru', 'uk'][i % 3]));
    for (const c of callers.slice(1)) await sup.locator(`tr[data-contact-id="${c.contactId}"][data-level="red"]`).waitFor();
    // A red row with every action it can have: move to front, and offer to a counsellor.
    await sup.locator(`tr[data-contact-id="${callers[1].contactId}"] .offer-group:not([hidden])`).waitFor();
    await sup.locator(`tr[data-contact-id="${callers[2].contactId}"]`).getByRole('button', { name: 'Move to front' }).click();
    await sup.locator(`tr[data-contact-id="${callers[2].contactId}"] .state`, { hasText: 'moved to front' }).waitFor();
    assert.deepEqual(await overflowing(sup), [], 'nothing sticks out of its card at 1366×768');
    const sideways = await sup.evaluate(() => document.scrollingElement.scrollWidth - window.innerWidth);
    assert.ok(sideways <= 0, `the page scrolls sideways by ${sideways}px`);
    await assertAccessible(sup, 'the dashboard at 1366×768 with a long red queue');
    await screenshot(sup, 'supervisor-1366-red-queue');
    assert.deepEqual(sup.errors, []);
  } finally {
    for (const c of callers) await c.page.locator('#quick-exit').click().catch(() => {});
    await supCtx.close();
    await agentCtx.close();
    await callerCtx.close();
  }
});

test('the blocked callers: who flagged whom, why, until when; lifted from the dashboard, the caller gets through', async () => {
  const supCtx = await context(browser, { viewport: { width: 1600, height: 1200 } });
  const agentCtx = await context(browser);
  const callerCtx = await context(browser);
  const wanda = (await api('/api/v1/auth/login', { method: 'POST', body: WANDA })).body.access_token;
  let blockId = null;
  try {
    // Olena flags a chat; Wanda blocks its caller (this browser's address) for the disability helpline.
    const agent = await counsellor(agentCtx, 'olena');
    const first = await caller(callerCtx, 'disability', 'en');
    await acceptOffer(agent, first.contactId);
    const olena = await login('olena');
    const flagged = await api(`/api/v1/contacts/${first.contactId}/flag`, { token: olena, method: 'POST', body: { reason: 'threats to the counsellor' } });
    assert.equal(flagged.status, 201, flagged.text);
    const created = await api('/api/v1/blocks', { token: wanda, method: 'POST', body: { contact_id: first.contactId, duration: '2h', reason: 'third time tonight', mode: 'block' } });
    assert.equal(created.status, 201, created.text);
    blockId = created.body.block.block_id;
    await first.page.locator('#end').click();
    await first.page.locator('#end-confirm').click(); // the widget asks before it ends a chat
    await first.page.locator('#screen-ended').waitFor();

    const sup = await supervisor(supCtx, '', WANDA);
    const item = sup.locator(`.block[data-block-id="${blockId}"]`);
    await item.waitFor();
    assert.ok(await sup.locator('#no-blocks').isHidden());
    const text = (await item.textContent()).replace(/\s+/g, ' ');
    assert.match(text, /A chat caller \(their network\) · Helpline for persons with disabilities · contact [0-9a-f]{6} · refused with a calm message/);
    assert.match(text, /Flagged by Olena at .+: threats to the counsellor/);
    assert.match(text, /Blocked by Wanda: third time tonight/);
    assert.match(await item.locator('.period').textContent(), /^From .+ until .+$/);
    await assertAccessible(sup, 'the dashboard with a blocked caller');

    // The blocked caller is refused calmly.
    const refused = await page(callerCtx);
    const refusedFrames = recordFrames(refused);
    await refused.goto(`${BASE}/chat?helpline=disability&lang=en`);
    await refused.locator('#start-form').waitFor();
    await refused.locator('#start').click();
    assert.equal((await refusedFrames.waitFor((f) => f.type === 'closed', 'closed')).reason, 'unavailable');

    // Lifted from the dashboard: gone from the list, lifted by Wanda on the server, the caller gets through.
    await item.getByRole('button', { name: /^Lift block: contact [0-9a-f]{6} \(Helpline for persons with disabilities\)$/ }).click();
    await sup.locator('#notice', { hasText: 'Block lifted: the caller can reach the helpline again.' }).waitFor();
    await item.waitFor({ state: 'detached' });
    await sup.locator('#no-blocks').waitFor();
    assert.equal(await sup.evaluate(() => document.activeElement?.id), 'blocks-heading', 'focus goes to the list');
    const all = await api('/api/v1/blocks?all=true', { token: wanda });
    const lifted = all.body.blocks.find((b) => b.block_id === blockId);
    assert.equal(lifted.active, false);
    assert.equal(lifted.lifted_by_name, 'Wanda');
    blockId = null;
    const again = await page(callerCtx);
    const againFrames = recordFrames(again);
    await again.goto(`${BASE}/chat?helpline=disability&lang=en`);
    await again.locator('#start-form').waitFor();
    await again.locator('#start').click();
    const queued = await againFrames.waitFor((f) => f.type === 'queued' || f.type === 'closed', 'queued');
    assert.equal(queued.type, 'queued', JSON.stringify(queued));
    await again.locator('#quick-exit').click();
    await assertAccessible(sup, 'the dashboard, the block lifted');
    assert.deepEqual(sup.errors, []);
  } finally {
    if (blockId) await api(`/api/v1/blocks/${blockId}`, { token: wanda, method: 'DELETE' });
    await supCtx.close();
    await agentCtx.close();
    await callerCtx.close();
  }
});
