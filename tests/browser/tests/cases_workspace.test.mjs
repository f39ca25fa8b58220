// The case managers' workspace `/cases` (issue 26), on a tablet held upright: Vera signs in on the
// counsellor console and lands on /cases; opens a case without a helpline contact; fills the three-day
// case file as a guided form (a step refused without the situation described, her answers kept when she
// goes back); the initial assessment begins, the timeline and the referrals show what she filed, the
// identifying details are stored; a note; the case moved on; a reload keeps her signed in; search by
// number finds it (and says so when nothing is found); the page in Romanian. axe on each state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, api, login, launch, context, page, assertAccessible, screenshot } from '../lib.mjs';

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
  await p.getByLabel('Helpline').selectOption('children');
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
  await p.locator('#referrals li', { hasText: 'Family support' }).waitFor();
  await p.locator('#referrals li', { hasText: 'Education' }).waitFor();
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

  // A note, then the next stage.
  await p.getByLabel('Note', { exact: true }).fill('Visited the school; the teacher will call weekly.');
  await p.getByRole('button', { name: 'Save the note' }).click();
  await p.locator('#timeline li[data-kind="note"]', { hasText: 'the teacher will call weekly' }).waitFor();
  await p.getByRole('button', { name: 'Move to: Comprehensive assessment' }).click();
  await p.locator('#case-facts').getByText('Comprehensive assessment').waitFor();
  await p.locator('#timeline li[data-kind="stage"]', { hasText: 'Initial assessment → Comprehensive assessment' }).waitFor();

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
  await assertAccessible(p, 'a case at its comprehensive assessment');

  // The page in Romanian, and back.
  await p.locator('#ui-locale').selectOption('ro');
  await p.getByRole('heading', { name: 'Cazurile mele' }).waitFor();
  await p.locator('#case-facts').getByText('Evaluare complexă').waitFor();
  await p.getByRole('button', { name: 'Deschide un caz nou' }).waitFor();
  await assertAccessible(p, 'the workspace in Romanian');
  await p.locator('#ui-locale').selectOption('en');
  await p.getByRole('heading', { name: 'My cases' }).waitFor();

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
