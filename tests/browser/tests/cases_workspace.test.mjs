// The case managers' workspace `/cases` (issue 26), on a tablet held upright: Vera signs in on the
// counsellor console and lands on /cases; opens a case without a helpline contact; fills the three-day
// case file as a guided form (a step refused without the situation described, her answers kept when she
// goes back); the initial assessment begins, the timeline shows what she filed, the identifying details
// are stored; the initial assessment's form (data), faults next to their fields; tasks with due dates
// (one falling due is an alert); a note; an individual
// plan with two actions approved by the supervisor; a monitoring visit; a referral to a service whose provider (a real HTTP server
// here, told by webhook) accepts and completes it; a reload keeps her signed in; search by number finds
// it (and says so when nothing is found); the page in Romanian; the closure approved and the case
// closed; a case transferred to her, accepted. axe on each state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { BASE, api, login, launch, context, page, assertAccessible, screenshot } from '../lib.mjs';

// The catalogue, as the page loads it (a plain module: imported from its text).
const CATALOGUE_SOURCE = readFileSync(new URL('../../../web-agent/assets/staff-i18n.js', import.meta.url), 'utf8');
const { CATALOGUE } = await import(`data:text/javascript,${encodeURIComponent(CATALOGUE_SOURCE)}`);

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

const TABLET = { viewport: { width: 820, height: 1180 }, hasTouch: true, isMobile: true };

test('a case manager lands on /cases and walks a case from its opening to the initial assessment, on a tablet', async () => {
  const ctx = await context(browser, TABLET);
  const p = await page(ctx);
  await p.goto(`${BASE}/agent`);
  await p.getByLabel('Username').fill('vera');
  await p.getByLabel('Password').fill('vera-demo');
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.waitForURL(`${BASE}/cases`);
  await p.getByRole('heading', { name: 'My cases' }).waitFor();
  await p.getByRole('heading', { name: 'Choose a case' }).waitFor();
  await assertAccessible(p, 'the workspace, no case chosen');

  // A case without a helpline contact: the reason is required.
  await p.getByRole('button', { name: 'Open a new case' }).click();
  await p.getByLabel('Helpline', { exact: true }).selectOption('children');
  await p.getByLabel('District').fill('Orhei');
  await p.getByLabel('Pseudonym (no real name)').fill('Child O.');
  await p.getByRole('button', { name: 'Open the case' }).click();
  await p.locator('#new-error', { hasText: 'Say why the case is opened.' }).waitFor();
  await assertAccessible(p, 'the new case form with its error');
  await p.getByLabel('Why the case is opened').fill('The school reports a boy left alone for days.');
  await p.getByRole('button', { name: 'Open the case' }).click();
  const heading = p.locator('#case-heading');
  await heading.getByText('Child O.').waitFor();
  const number = (await heading.locator('.number').textContent()).trim();
  assert.match(number, /^CH-\d{4}-\d{6}$/);
  await p.locator('#notice', { hasText: `Case ${number} opened.` }).waitFor();
  await p.locator('#case-due', { hasText: 'the case file due' }).waitFor();
  await p.locator('#timeline').getByText('The school reports a boy left alone for days.').waitFor();
  await p.locator('#mine .case-link', { hasText: number }).waitFor();
  assert.equal(await p.locator('#mine .case-link[aria-current="true"] .number').textContent(), number);
  await assertAccessible(p, 'a case just opened, with its case file form');
  await screenshot(p, 'cases-workspace-tablet', { docs: 'cases-workspace.png' });

  // The three-day case file, step by step.
  const file = p.locator('#case-file');
  await file.getByText('Step 1 of 3').waitFor();
  await file.getByLabel('Full name').fill('Ion Onofrei');
  await file.getByLabel('Date of birth').fill('2015-03-02');
  await file.getByRole('button', { name: 'Next' }).click();
  await file.getByText('Step 2 of 3').waitFor();
  await file.getByRole('button', { name: 'Next' }).click();
  await file.locator('#file-error', { hasText: 'Describe the situation before going on.' }).waitFor();
  await file.getByLabel('What happened, and what you found').fill('Alone at home since Monday; the mother works abroad.');
  await file.getByLabel('Immediate safety').fill('With his grandmother tonight.');
  await file.getByRole('button', { name: 'Back' }).click();
  assert.equal(await file.getByLabel('Full name').inputValue(), 'Ion Onofrei', 'kept when going back');
  await file.getByRole('button', { name: 'Next' }).click();
  assert.equal(await file.getByLabel('What happened, and what you found').inputValue(), 'Alone at home since Monday; the mother works abroad.');
  await file.getByRole('button', { name: 'Next' }).click();
  await file.getByText('Step 3 of 3').waitFor();
  await assertAccessible(p, 'the case file, services step');
  await file.getByLabel('Family support').check();
  await file.getByLabel('Education').check();
  await file.getByRole('button', { name: 'File the case and start the initial assessment' }).click();
  await p.locator('#notice', { hasText: `The case file of ${number} is complete` }).waitFor();
  await p.locator('#case-facts').getByText('Initial assessment').waitFor();
  assert.equal(await p.locator('#case-file').count(), 0, 'the case file form is gone once filed');
  await p.locator('#timeline li[data-kind="referral"]', { hasText: 'Family support' }).waitFor();
  await p.locator('#timeline li[data-kind="referral"]', { hasText: 'Education' }).waitFor();
  await p.locator('#timeline li[data-kind="assessment"]', { hasText: 'With his grandmother tonight.' }).waitFor();
  await p.locator('#person').getByText('Ion Onofrei').waitFor();

  // As stored: the details, the assessment, the referrals, the stage.
  const token = await login('vera');
  const found = await api(`/api/v1/cases?number=${number}`, { token });
  const id = found.body.cases[0].id;
  const stored = await api(`/api/v1/cases/${id}`, { token });
  assert.equal(stored.body.case.stage, 'initial_assessment');
  assert.equal(stored.body.case.due_what, 'initial_assessment');
  const kinds = stored.body.entries.map((e) => e.kind);
  for (const k of ['reason', 'assessment', 'referral']) assert.ok(kinds.includes(k), `${k} in ${kinds}`);
  assert.equal((await api(`/api/v1/cases/${id}/person`, { token })).body.full_name, 'Ion Onofrei');

  // The initial assessment's form, drawn from the helpline's stage forms (data): each fault next to its field.
  const initial = p.locator('#stage-form-initial_assessment');
  await initial.getByRole('heading', { name: 'Initial assessment' }).waitFor();
  await initial.getByRole('button', { name: 'Save the form' }).click();
  await initial.locator('#form-initial_assessment-situation-error', { hasText: 'Check this: required.' }).waitFor();
  await initial.locator('#form-initial_assessment-risk-error', { hasText: 'Check this: required.' }).waitFor();
  await assertAccessible(p, 'the initial assessment form with its faults');
  await initial.getByLabel('The situation as found *').fill('Left alone for four days; no food at home.');
  await initial.getByLabel('Level of risk *').selectOption('high');
  await initial.getByRole('button', { name: 'Save the form' }).click();
  await p.locator('#timeline li[data-kind="form"]', { hasText: 'Level of risk: high' }).waitFor();

  // Tasks with due dates: one added here; one due within the hour (added over the API) is an alert at
  // the top of the list after a reload; done from the case.
  const tasks = p.locator('#tasks');
  await tasks.getByText('No task yet.').waitFor();
  await tasks.getByLabel('New task or follow-up').fill('Call the school about attendance');
  await tasks.getByLabel('Due on').fill(new Date(Date.now() + 3 * 86_400_000).toISOString().slice(0, 10));
  await tasks.getByRole('button', { name: 'Add the task' }).click();
  await tasks.locator('li[data-status="open"]', { hasText: 'Call the school about attendance' }).waitFor();
  const soon = await api(`/api/v1/cases/${id}/tasks`, { token, method: 'POST', body: { title: 'Bring the school forms', due_at_ms: Date.now() + 3_600_000 } });
  assert.equal(soon.status, 201, soon.text);
  await p.reload();
  await p.locator('#alerts').getByRole('button', { name: /Bring the school forms/ }).waitFor();
  await assertAccessible(p, 'the workspace with a task falling due');
  await tasks.getByRole('button', { name: 'Mark done: Bring the school forms' }).click();
  await tasks.locator('li[data-status="done"]', { hasText: 'Bring the school forms' }).waitFor();
  await p.locator('#alerts').waitFor({ state: 'hidden' });

  // A note, then the next stage.
  await p.getByLabel('Note', { exact: true }).fill('Visited the school; the teacher will call weekly.');
  await p.getByRole('button', { name: 'Save the note' }).click();
  await p.locator('#timeline li[data-kind="note"]', { hasText: 'the teacher will call weekly' }).waitFor();
  await p.getByRole('button', { name: 'Move to: Comprehensive assessment' }).click();
  await p.locator('#case-facts').getByText('Comprehensive assessment').waitFor();
  await p.locator('#timeline li[data-kind="stage"]', { hasText: 'Initial assessment → Comprehensive assessment' }).waitFor();

  // The individual plan with two actions, then a monitoring visit logged where it happens.
  await p.getByRole('button', { name: 'Move to: Individual plan' }).click();
  const plan = p.locator('#stage-form-intervention_plan');
  await plan.getByRole('heading', { name: 'Individual plan' }).waitFor();
  await plan.getByLabel('Goal', { exact: true }).fill('Back at school');
  await plan.getByLabel('Action', { exact: true }).fill('Enrol at the gymnasium in Orhei');
  await plan.getByLabel('Who does it').fill('Vera');
  await plan.getByLabel('By when').fill('2027-01-15');
  await plan.getByRole('button', { name: 'Add an action' }).click();
  const second = plan.locator('fieldset', { hasText: 'Action 2' });
  await second.getByLabel('Goal', { exact: true }).fill('A safe home');
  await second.getByLabel('Action', { exact: true }).fill('Daily visits by the grandmother');
  await second.getByLabel('Who does it').fill('the grandmother');
  await second.getByLabel('By when').fill('2026-12-31');
  await assertAccessible(p, 'the individual plan with two actions');
  await plan.getByRole('button', { name: 'Save the form' }).click();
  const planEntry = p.locator('#timeline li[data-kind="form"]', { hasText: 'Goals and actions' });
  await planEntry.getByText(/Back at school: Enrol at the gymnasium in Orhei \(Vera, by 2027-01-15\); A safe home: Daily visits by the grandmother/).waitFor();
  // Leaving the plan for monitoring needs the supervisor's approval of the plan.
  await p.getByRole('button', { name: 'Move to: Monitoring' }).click();
  await p.locator('#notice', { hasText: 'A supervisor must approve the individual plan first' }).waitFor();
  await p.getByRole('button', { name: 'Ask the supervisor to approve the plan' }).click();
  await p.locator('#approvals li[data-status="pending"]', { hasText: 'waiting for the supervisor' }).waitFor();
  const maria = await login('maria');
  const asked = await api(`/api/v1/cases/${id}/approvals`, { token: maria });
  const planRequest = asked.body.approvals.find((a) => a.kind === 'plan');
  assert.equal((await api(`/api/v1/approvals/${planRequest.id}/decision`, { token: maria, method: 'POST', body: { decision: 'approved', comment: 'Good plan.' } })).status, 200);
  await p.reload();
  await p.locator('#approvals li[data-status="approved"]', { hasText: 'supervisor: Good plan.' }).waitFor();
  await p.getByRole('button', { name: 'Move to: Monitoring' }).click();
  const visit = p.locator('#stage-form-monitoring_visit');
  await visit.getByLabel('Date of the visit *').fill('2026-12-20');
  await visit.getByLabel('Place *').fill('At the grandmother’s, Orhei');
  await visit.getByLabel('What was seen and agreed *').fill('He goes to school; the fridge is full.');
  await visit.getByRole('button', { name: 'Save the form' }).click();
  await p.locator('#timeline li[data-kind="form"]', { hasText: 'the fridge is full' }).waitFor();
  await screenshot(p, 'cases-monitoring-visit-tablet', { docs: 'cases-visit.png' });

  // A referral to a service of the registry; the provider is told by its webhook (a real HTTP server
  // here), accepts and completes it with the token it was sent; the workspace shows each step.
  const hooks = [];
  const sink = createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      hooks.push(JSON.parse(data));
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const admin = await login('admin');
  const svc = await api('/api/v1/services', {
    token: admin,
    method: 'POST',
    body: { name: 'Serviciul de sprijin familial Orhei', kind: 'family_type_home', district: 'Orhei', capacity: 4, helplines: ['children'] },
  });
  assert.equal(svc.status, 201, svc.text);
  const hook = await api(`/api/v1/services/${svc.body.id}/webhook`, { token: admin, method: 'PUT', body: { url: `http://127.0.0.1:${sink.address().port}/hook` } });
  assert.equal(hook.status, 204, hook.text);
  await p.reload();
  const referrals = p.locator('#referrals');
  await referrals.getByText('No referral yet.').waitFor();
  await referrals.getByLabel('Service', { exact: true }).selectOption(svc.body.id);
  await referrals.getByRole('button', { name: 'Send the referral' }).click();
  await referrals.locator('#referral-error', { hasText: 'Say what the service needs to know.' }).waitFor();
  await referrals.getByLabel('What the service needs to know').fill('Family support for a boy of eleven and his grandmother.');
  await referrals.getByLabel('Due by (optional)').fill(new Date(Date.now() + 10 * 86_400_000).toISOString().slice(0, 10));
  await referrals.getByRole('button', { name: 'Send the referral' }).click();
  await referrals.locator('li', { hasText: 'Serviciul de sprijin familial Orhei' }).getByText('sent', { exact: true }).waitFor();
  await assertAccessible(p, 'a case with a referral sent');
  const deadline = Date.now() + 15000;
  while (!hooks.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(hooks.length, 1, 'the provider was told');
  assert.equal(hooks[0].case_number, number);
  assert.ok(!JSON.stringify(hooks[0]).includes('Onofrei'), 'no identifying details to a provider');
  const providerToken = hooks[0].respond.authorization.replace('Bearer ', '');
  const answer = (body) => api(hooks[0].respond.path, { token: providerToken, method: 'PATCH', body });
  assert.equal((await answer({ status: 'accepted', feedback: 'First visit on Monday.' })).status, 200);
  await p.reload();
  await referrals.locator('li', { hasText: 'Provider’s answer: First visit on Monday.' }).getByText('accepted', { exact: true }).waitFor();
  assert.equal((await answer({ status: 'completed', feedback: 'Six visits; he is back at school.' })).status, 200);
  await p.reload();
  await referrals.locator('li[data-status="completed"]', { hasText: 'he is back at school' }).waitFor();
  sink.close();

  // A reload keeps her signed in and the case open; search by number.
  await p.reload();
  await p.locator('#case-heading', { hasText: number }).waitFor();
  await p.getByLabel('Find a case by number').fill('CH-1999-999999');
  await p.getByRole('button', { name: 'Find', exact: true }).click();
  await p.locator('#search-error', { hasText: 'No case CH-1999-999999 that you may see.' }).waitFor();
  await p.getByRole('button', { name: 'Open a new case' }).click();
  await p.getByLabel('Find a case by number').fill(number.toLowerCase());
  await p.getByRole('button', { name: 'Find', exact: true }).click();
  await p.locator('#case-heading', { hasText: number }).waitFor();
  await assertAccessible(p, 'a case at monitoring');

  // The page in Romanian, and back.
  await p.locator('#ui-locale').selectOption('ro');
  await p.getByRole('heading', { name: 'Cazurile mele' }).waitFor();
  await p.locator('#case-facts').getByText('Monitorizare').waitFor();
  await p.locator('#stage-form-monitoring_visit').getByRole('heading', { name: 'Vizită de monitorizare' }).waitFor();
  await p.getByRole('button', { name: 'Deschide un caz nou' }).waitFor();
  await assertAccessible(p, 'the workspace in Romanian');
  // Nothing of the workspace's catalogue is left in English on the Romanian page.
  const english = new Set(Object.entries(CATALOGUE.en).filter(([k, v]) => (k.startsWith('cases.') || !k.includes('.')) && typeof v === 'string' && !v.includes('{') && /[A-Za-z]{3,}/.test(v)).map(([, v]) => v));
  const shown = await p.evaluate(() => {
    const out = [];
    for (const node of document.body.querySelectorAll('*')) {
      if (!node.checkVisibility()) continue;
      let own = '';
      for (const child of node.childNodes) if (child.nodeType === Node.TEXT_NODE) own += child.textContent;
      for (const text of [own, node.getAttribute('aria-label') || '']) if (text.trim()) out.push(text.replace(/\s+/g, ' ').trim());
    }
    return out;
  });
  assert.deepEqual(shown.filter((text) => english.has(text)), [], 'English left on the Romanian workspace');
  await p.locator('#ui-locale').selectOption('en');
  await p.getByRole('heading', { name: 'My cases' }).waitFor();

  // The supervisor approves the closure; the case is closed and its closure form filled in.
  await p.getByRole('button', { name: 'Ask the supervisor to approve the closure' }).click();
  await p.locator('#approvals li[data-kind="closure"][data-status="pending"]').waitFor();
  const closing = (await api(`/api/v1/cases/${id}/approvals`, { token: maria })).body.approvals.find((a) => a.kind === 'closure');
  assert.equal((await api(`/api/v1/approvals/${closing.id}/decision`, { token: maria, method: 'POST', body: { decision: 'approved' } })).status, 200);
  await p.reload();
  await p.getByRole('button', { name: 'Move to: Closed' }).click();
  await p.locator('#case-facts').getByText('Closed').waitFor();
  const closure = p.locator('#stage-form-closure');
  await closure.getByLabel('Reason for closing *').selectOption('goals_met');
  await closure.getByLabel('Summary *').fill('Back at school, safe with his grandmother.');
  await closure.getByRole('button', { name: 'Save the form' }).click();
  await p.locator('#timeline li[data-kind="form"]', { hasText: 'Reason for closing: goals met' }).waitFor();

  // A case offered to her by a supervisor: she accepts it and it is hers.
  const offered = await api('/api/v1/cases', { token: maria, method: 'POST', body: { helpline: 'family_violence', district: 'Briceni', reason: 'A neighbour reports shouting every night.' } });
  assert.equal(offered.status, 201, offered.text);
  const vera = (await api('/api/v1/me', { token })).body.id;
  const transfer = await api(`/api/v1/cases/${offered.body.id}/transfers`, { token: maria, method: 'POST', body: { to_user_id: vera, note: 'She lives near your next visit.' } });
  assert.equal(transfer.status, 201, transfer.text);
  await p.reload();
  await p.locator('#offers').getByText('Note: She lives near your next visit.').waitFor();
  await assertAccessible(p, 'a case offered to her');
  await p.getByRole('button', { name: `Accept case ${offered.body.number}` }).click();
  await p.locator('#notice', { hasText: `Case ${offered.body.number} is now yours.` }).waitFor();
  await p.locator('#case-heading', { hasText: offered.body.number }).waitFor();
  await p.locator('#mine .case-link', { hasText: offered.body.number }).waitFor();
  await p.locator('#offers').waitFor({ state: 'hidden' });

  assert.deepEqual(p.errors, []);
  await ctx.close();
});

test('the workspace page carries the strict headers of the staff pages', async () => {
  const res = await fetch(`${BASE}/cases`);
  assert.equal(res.status, 200);
  const csp = res.headers.get('content-security-policy') || '';
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(res.headers.get('cache-control'), 'no-store');
});
