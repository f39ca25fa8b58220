// Casework in the browser (issue 4): during a live chat the counsellor fills the contact form, reloads the
// page and finds the draft; sets the risk to imminent (the supervisor is alerted and the conversation is
// marked); escalates to an emergency placement; the first suggested place is taken by someone else
// meanwhile, so the console says so and offers the next; the counsellor reserves it and sees the case
// number, also under "My cases". The supervisor's dashboard shows the escalation and acknowledges it. The
// wrap-up: the tab cannot be closed before the form is submitted; submitting shows each missing field's
// error next to it; once submitted the tab closes. axe on each state; keyboard; screenshots.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, login, launch, context, counsellor, caller, acceptOffer, pane, say, supervisor, assertAccessible, screenshot } from '../lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Waits until the element matched by `selector` has this value (a form field). */
async function valueIs(p, selector, value) {
  await p.waitForFunction(([s, v]) => document.querySelector(s)?.value === v, [selector, value]);
}

test('form draft survives a reload; escalation, a taken place, the next one reserved, the case number; the supervisor acknowledges', async () => {
  const supCtx = await context(browser, { viewport: { width: 1400, height: 1400 } });
  const callerCtx = await context(browser);
  const agentCtx = await context(browser);

  // A service with one place, in a district of its own: it is suggested first for a person from there.
  const admin = await login('admin');
  const small = await api('/api/v1/services', {
    token: admin,
    method: 'POST',
    body: { name: 'Centrul de asistență Briceni', kind: 'family_violence_centre', district: 'Briceni', capacity: 1, admission_24_7: true, phone: '+373 247 00000', helplines: ['family_violence'] },
  });
  assert.equal(small.status, 201, small.text);

  const sup = await supervisor(supCtx);
  await sup.locator('#escalations').getByText('No escalations waiting.').waitFor();

  // Ion answers a family violence chat.
  const agent = await counsellor(agentCtx, 'ion');
  const chat = await caller(callerCtx, 'family_violence', 'ro');
  const id = await acceptOffer(agent, chat.contactId);
  await say(chat.page, 'Nu pot merge acasă în seara asta, cu cei doi copii.');
  const p = pane(agent, id);
  await p.locator('.msg .text', { hasText: 'Nu pot merge acasă' }).waitFor();

  // The form, by its labels: saved as typed.
  const form = p.locator('.contact-form');
  await form.getByLabel('Caller type').selectOption('person_concerned');
  await form.getByLabel('Age group (person concerned)').selectOption('25_59');
  await form.getByLabel('Region or district').fill('Briceni');
  await form.getByLabel('Violence: family violence').check();
  await form.getByLabel('Violence: economic abuse').check();
  await form.getByLabel('Summary', { exact: true }).fill('Cannot go home tonight with her two children.');
  await form.locator('.form-status', { hasText: 'Draft saved' }).waitFor();
  const token = await login('ion');
  const stored = await api(`/api/v1/contacts/${id}/form`, { token });
  assert.equal(stored.body.status, 'draft');
  assert.equal(stored.body.form.summary, 'Cannot go home tonight with her two children.');
  assert.deepEqual(stored.body.form.categories, ['violence.family', 'violence.economic']);

  // Keyboard: Tab goes through the form in reading order.
  await form.getByLabel('Caller type').focus();
  await agent.keyboard.press('Tab');
  assert.equal(await agent.evaluate(() => document.activeElement.id), `cf-age_group-${id}`);
  await agent.keyboard.press('Tab');
  assert.equal(await agent.evaluate(() => document.activeElement.id), `cf-gender-${id}`);

  // A reload: the conversation and the draft come back from the server.
  await agent.reload();
  await agent.locator('#conn[data-state="online"]').waitFor();
  await valueIs(agent, `#cf-summary-${id}`, 'Cannot go home tonight with her two children.');
  await valueIs(agent, `#cf-caller_type-${id}`, 'person_concerned');
  await valueIs(agent, `#cf-district-${id}`, 'Briceni');
  assert.ok(await form.getByLabel('Violence: family violence').isChecked(), 'categories come back');
  assert.ok(await form.getByLabel('Violence: economic abuse').isChecked());
  await assertAccessible(agent, 'the console with a contact form draft');

  // Imminent risk: saved at once; the supervisor is alerted and the conversation is marked on the board.
  await form.getByLabel(/Imminent \(supervisors/).check();
  await sup.locator(`.alert[data-kind="risk_imminent"][data-contact-id="${id}"]`).waitFor();
  await sup.locator(`.convs li[data-contact-id="${id}"][data-urgent="true"]`).getByText('imminent risk').waitFor();
  await agent.locator(`.conv-item[data-contact-id="${id}"] .risk-mark`).waitFor();

  // Escalate, by keyboard: the panel opens on the kind; the form's risk and district are filled in.
  const toggle = p.locator('.escalate-toggle');
  assert.equal(await toggle.textContent(), 'Escalate…');
  await toggle.focus();
  await agent.keyboard.press('Enter');
  assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
  assert.equal(await toggle.textContent(), 'Cancel escalation');
  assert.equal(await agent.evaluate(() => document.activeElement.value), 'emergency_placement');
  await valueIs(agent, `#esc-${id}-risk`, 'imminent');
  await valueIs(agent, `#esc-${id}-district`, 'Briceni');
  // No reason: refused in the page, next to the field.
  await p.getByRole('button', { name: 'Send escalation' }).click();
  await p.getByText('Reason: say in a few words why').waitFor();
  assert.equal(await p.getByLabel('Reason', { exact: true }).getAttribute('aria-invalid'), 'true');
  await p.getByLabel('Reason', { exact: true }).fill('She cannot go home tonight; he threatened her with a knife.');
  await p.getByRole('button', { name: 'Send escalation' }).click();

  // Suggestions, the person's district first.
  const suggestions = p.locator('.suggestion');
  await suggestions.first().waitFor();
  assert.equal(await suggestions.first().getAttribute('data-service-id'), small.body.id);
  assert.ok((await suggestions.count()) >= 2, 'more than one place with room');
  await p.locator('.escalation-result').getByText('every supervisor was alerted').waitFor();
  await assertAccessible(agent, 'the console with placement suggestions');

  // The supervisor sees the escalation at once.
  const escalation = sup.locator(`.escalation[data-contact-id="${id}"]`);
  await escalation.waitFor();
  assert.match(await escalation.textContent(), /Emergency placement/);
  assert.match(await escalation.textContent(), /he threatened her with a knife/);
  assert.equal(await escalation.getAttribute('data-risk'), 'imminent');

  // Meanwhile the last place in Briceni goes to another caller (reserved by maria).
  const other = await caller(callerCtx, 'family_violence', 'uk');
  const maria = await login('maria');
  const taken = await api('/api/v1/placements', { token: maria, method: 'POST', body: { service_id: small.body.id, contact_id: other.contactId } });
  assert.equal(taken.status, 201, taken.text);

  // Ion tries Briceni: a clear message, and the next suggestion comes first, focused.
  await p.getByRole('button', { name: 'Reserve a place at Centrul de asistență Briceni' }).click();
  await p.locator('.place-error').getByText('has no free place any more').waitFor();
  assert.equal(await p.locator(`.suggestion[data-service-id="${small.body.id}"]`).count(), 0, 'the full service is gone');
  const next = suggestions.first();
  const nextName = await next.locator('.service-name').textContent();
  assert.match(await p.locator('.place-error').textContent(), new RegExp(`Next suggestion: ${nextName}`));
  assert.equal(await agent.evaluate(() => document.activeElement.getAttribute('aria-label')), `Reserve a place at ${nextName}`);
  await agent.keyboard.press('Enter');

  // Reserved: the case number, here and in My cases.
  const number = p.locator('.case-box .case-number');
  await number.waitFor();
  const caseNumber = await number.textContent();
  assert.match(caseNumber, /^FV-\d{4}-\d{6}$/);
  assert.match(await p.locator('.case-box').textContent(), new RegExp(`Place reserved at ${nextName}`));
  await agent.locator('#my-cases .case-number', { hasText: caseNumber }).waitFor();
  await assertAccessible(agent, 'the console after the reservation');
  await screenshot(agent, 'agent-casework', { docs: 'agent-casework.png' });

  // The supervisor acknowledges (REST): gone from the open escalations for everyone.
  await assertAccessible(sup, 'the dashboard with an escalation');
  await sup.locator('#escalations').scrollIntoViewIfNeeded();
  await screenshot(sup, 'supervisor-casework', { docs: 'supervisor-casework.png' });
  const openBefore = await api('/api/v1/escalations', { token: maria });
  assert.ok(openBefore.body.escalations.some((e) => e.contact_id === id));
  await escalation.getByRole('button', { name: /^Acknowledge escalation/ }).click();
  await sup.locator(`.escalation.acked[data-contact-id="${id}"]`).getByText('acknowledged by you').waitFor();
  const openAfter = await api('/api/v1/escalations', { token: maria });
  assert.ok(!openAfter.body.escalations.some((e) => e.contact_id === id), 'acknowledged on the server');

  // The chat ends; the wrap-up stays open: the conversation does not close before the form is submitted.
  await p.getByRole('button', { name: 'End conversation' }).click();
  await agent.getByRole('dialog', { name: 'End this conversation?' }).getByRole('button', { name: 'Yes, end it' }).click();
  await agent.locator(`#wrapups li[data-contact-id="${id}"]`).waitFor();
  await p.getByRole('button', { name: 'Close conversation' }).click();
  await p.getByText('Submit the contact form first').waitFor();
  assert.ok(await p.isVisible(), 'the pane stays');

  // After a reload the ended conversation is no longer open, but its wrap-up is listed: Open form.
  await agent.reload();
  await agent.locator('#conn[data-state="online"]').waitFor();
  const wrapup = agent.locator(`#wrapups li[data-contact-id="${id}"]`);
  await wrapup.getByText('draft saved').waitFor();
  await wrapup.getByRole('button', { name: /^Open form/ }).click();
  await valueIs(agent, `#cf-summary-${id}`, 'Cannot go home tonight with her two children.');
  assert.equal(await agent.evaluate(() => document.activeElement.id), `cf-h-${id}`, 'focus on the form');

  // Submitting names each missing field next to it.
  await form.getByRole('button', { name: 'Submit form' }).click();
  const genderError = agent.locator(`#cf-gender-${id}-error`);
  await genderError.getByText('Required.').waitFor();
  await agent.locator(`#cf-outcome-${id}-error`).getByText('Required.').waitFor();
  assert.equal(await form.getByLabel('Gender (person concerned)').getAttribute('aria-invalid'), 'true');
  assert.equal(await agent.evaluate(() => document.activeElement.id), `cf-gender-${id}`, 'focus on the first field to correct');
  await form.locator('.form-error').getByText('2 fields to correct').waitFor();
  await assertAccessible(agent, 'the console with form errors');
  await form.getByLabel('Gender (person concerned)').selectOption('female');
  await form.getByLabel('Outcome').selectOption('escalated');
  await form.getByRole('button', { name: 'Submit form' }).click();
  await form.locator('.form-status', { hasText: 'Submitted' }).waitFor();
  assert.equal(await genderError.textContent(), '');
  await agent.locator(`#wrapups li[data-contact-id="${id}"]`).waitFor({ state: 'detached' });
  const submitted = await api(`/api/v1/contacts/${id}/form`, { token });
  assert.equal(submitted.body.status, 'submitted');
  assert.equal(submitted.body.form.risk, 'imminent');
  await p.getByRole('button', { name: 'Close conversation' }).click();
  await p.waitFor({ state: 'detached' });

  assert.deepEqual(agent.errors, []);
  assert.deepEqual(sup.errors, []);
  await other.page.getByRole('button', { name: /Швидкий вихід|Quick exit/ }).first().click();
  await agentCtx.close();
  await callerCtx.close();
  await supCtx.close();
});
