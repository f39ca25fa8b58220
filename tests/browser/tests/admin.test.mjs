// The admin page `/admin` (issue 27), on a laptop: the demo admin signs in on the counsellor console and
// lands on /admin; creates an account without a password (a one-time code comes with it) and edits it;
// the new counsellor sets her password on /reset with the code and signs in with it; a reset code for an
// existing account; a refusal by code (an unknown role is impossible in the form, an empty username is
// not); a helpline's hours changed (and put back), a canned response added (and removed), the contact
// form's categories edited; a dialled number and a gateway whose token is shown once; the page in
// Romanian, Russian and Ukrainian; axe on each state; a non-admin is refused.
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

const LAPTOP = { viewport: { width: 1366, height: 768 } };

test('an admin manages accounts, a helpline and the telephony from /admin', async () => {
  const ctx = await context(browser, LAPTOP);
  const p = await page(ctx);
  await p.goto(`${BASE}/agent`);
  await p.getByLabel('Username').fill('admin');
  await p.getByLabel('Password').fill('admin-demo');
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.waitForURL(`${BASE}/admin`);
  await p.getByRole('heading', { name: 'Accounts' }).waitFor();
  await p.locator('#accounts tr[data-username="ana"]').waitFor();
  await assertAccessible(p, 'the accounts list');

  // A new account without a password: refused first without a username, then created with its code.
  await p.getByRole('button', { name: 'New account' }).click();
  await p.getByRole('button', { name: 'Save' }).click();
  await p.locator('#account-error', { hasText: 'A field is not right (username)' }).waitFor();
  await assertAccessible(p, 'the new account form with its error');
  await p.locator('#account-username').fill('zoe.admin27');
  await p.locator('#account-display').fill('Zoe');
  await p.getByLabel('Languages (codes, comma-separated: ro, ru, uk, en)').fill('ro, en');
  await p.locator('#account-helplines').getByLabel("Children's helpline 116 111").check();
  await p.getByRole('button', { name: 'Save' }).click();
  await p.locator('#notice', { hasText: 'Account zoe.admin27 created.' }).waitFor();
  await p.locator('#reset-result').waitFor();
  const firstCode = (await p.locator('#reset-code').textContent()).trim();
  assert.match(firstCode, /^[A-Z2-9]{4}(-[A-Z2-9]{4}){4}$/);
  assert.match(await p.locator('#reset-link').textContent(), /\/reset#/);
  await assertAccessible(p, 'a new account with its one-time code');
  await screenshot(p, 'admin-reset-code');
  await p.evaluate(() => window.scrollTo(0, 0));
  await screenshot(p, 'admin-accounts', { docs: 'admin.png' });

  // Edit: capacity, backup helpline, extension.
  await p.getByLabel('Capacity').fill('2');
  await p.locator('#account-backup').getByLabel('Helpline for victims of family violence and violence against women').check();
  await p.getByLabel('Phone extension (empty: no calls)').fill('227');
  await p.getByRole('button', { name: 'Save' }).click();
  await p.locator('#notice', { hasText: 'Account zoe.admin27 saved.' }).waitFor();
  const row = p.locator('#accounts tr[data-username="zoe.admin27"]');
  await row.getByRole('cell', { name: '227' }).waitFor();
  const stored = await api('/api/v1/users/zoe.admin27', { token: await login('admin') });
  assert.equal(stored.body.capacity, 2);
  assert.deepEqual(stored.body.helplines, ['children']);
  assert.deepEqual(stored.body.backup_helplines, ['family_violence']);
  assert.deepEqual(stored.body.languages, ['ro', 'en']);

  // She sets her password with the link's code, and signs in with it.
  const mine = await context(browser, LAPTOP);
  const reset = await page(mine);
  await reset.goto(`${BASE}/reset#${firstCode}`);
  assert.equal(await reset.getByLabel('One-time code (from an admin)').inputValue(), firstCode, 'the code from the link');
  assert.equal(new URL(reset.url()).hash, '', 'the code leaves the address bar');
  await reset.getByLabel('New password (at least 12 characters)').fill('zoe long passphrase one');
  await reset.getByLabel('The new password again').fill('zoe long passphrase one');
  await assertAccessible(reset, 'the reset page');
  await reset.getByRole('button', { name: 'Set my password' }).click();
  await reset.getByText('Your password is set.').waitFor();
  let signIn = await api('/api/v1/auth/login', { method: 'POST', body: { username: 'zoe.admin27', password: 'zoe long passphrase one' } });
  assert.equal(signIn.status, 200);

  // A reset of her password later: a new code; used once, the old password no longer works.
  await row.getByRole('button', { name: 'Edit zoe.admin27' }).click();
  await p.getByRole('button', { name: 'Reset password' }).click();
  await p.locator('#notice', { hasText: 'A one-time code for zoe.admin27 is ready.' }).waitFor();
  const second = (await p.locator('#reset-code').textContent()).trim();
  assert.notEqual(second, firstCode);
  await reset.goto(`${BASE}/reset`);
  await reset.getByLabel('One-time code (from an admin)').fill(firstCode);
  await reset.getByLabel('New password (at least 12 characters)').fill('zoe long passphrase two');
  await reset.getByLabel('The new password again').fill('zoe long passphrase two');
  await reset.getByRole('button', { name: 'Set my password' }).click();
  await reset.locator('#reset-error', { hasText: 'This code is unknown, used or expired' }).waitFor();
  await reset.getByLabel('One-time code (from an admin)').fill(second.toLowerCase());
  await reset.getByRole('button', { name: 'Set my password' }).click();
  await reset.getByText('Your password is set.').waitFor();
  signIn = await api('/api/v1/auth/login', { method: 'POST', body: { username: 'zoe.admin27', password: 'zoe long passphrase one' } });
  assert.equal(signIn.status, 401, 'the old password is gone');
  signIn = await api('/api/v1/auth/login', { method: 'POST', body: { username: 'zoe.admin27', password: 'zoe long passphrase two' } });
  assert.equal(signIn.status, 200);
  await mine.close();
  await p.getByRole('button', { name: 'Cancel' }).click();

  // A helpline: hours, a canned response, the categories.
  await p.getByRole('button', { name: 'Helplines' }).click();
  await p.getByLabel('Helpline', { exact: true }).selectOption('disability');
  await p.getByRole('heading', { name: 'Opening hours' }).waitFor();
  const token = await login('admin');
  const before = (await api('/api/v1/helplines/disability/hours', { token })).body.hours;
  await p.getByLabel('Open (one span a line: mon 08:00-20:00; none: 24/7)').fill('mon-sun 00:00-24:00\nsat 25:00');
  await p.getByRole('button', { name: 'Save the hours' }).click();
  await p.locator('#hours-error', { hasText: 'Each line is a day' }).waitFor();
  await p.getByLabel('Time zone (IANA)').fill('Europe/Chisinau');
  await p.getByLabel('Open (one span a line: mon 08:00-20:00; none: 24/7)').fill('mon-sun 00:00-24:00');
  await p.getByLabel('Holidays (one a line: 2026-12-25)').fill('2031-12-25');
  await p.getByRole('button', { name: 'Save the hours' }).click();
  await p.locator('#notice', { hasText: 'Hours of' }).waitFor();
  const hours = (await api('/api/v1/helplines/disability/hours', { token })).body.hours;
  assert.equal(hours.time_zone, 'Europe/Chisinau');
  assert.equal(hours.weekly.length, 7);
  assert.deepEqual(hours.weekly[0], { day: 'mon', open: '00:00', close: '24:00' });
  assert.deepEqual(hours.holidays, ['2031-12-25']);

  await p.locator('#canned-language').selectOption('ro');
  await p.getByLabel('Title').fill('Admin27 greeting');
  await p.getByLabel('Text', { exact: true }).fill('Bună ziua, vă ascultăm.');
  await p.getByRole('button', { name: 'Add the response' }).click();
  await p.locator('#canned-list', { hasText: 'Admin27 greeting' }).waitFor();
  const canned = await api('/api/v1/canned-responses?helpline=disability', { token });
  assert.ok(canned.body.canned_responses.some((c) => c.title === 'Admin27 greeting' && c.language === 'ro'));

  const taxonomy = p.getByLabel('One category a line: code | label');
  await p.locator('#taxonomy-state', { hasText: 'The built-in categories' }).waitFor();
  await taxonomy.fill(`${await taxonomy.inputValue()}\nno bar here`);
  await p.getByRole('button', { name: 'Save the categories' }).click();
  await p.locator('#taxonomy-error', { hasText: 'no bar here' }).waitFor();
  const text = (await taxonomy.inputValue()).replace('\nno bar here', '\ndisability.transport | Disability: transport');
  await taxonomy.fill(text);
  await p.getByRole('button', { name: 'Save the categories' }).click();
  await p.locator('#taxonomy-state', { hasText: 'This helpline’s own categories.' }).waitFor();
  const served = await api('/api/v1/helplines/disability/taxonomy', { token });
  assert.ok(served.body.categories.some((c) => c.code === 'disability.transport' && c.label === 'Disability: transport'));
  assert.ok(served.body.categories.some((c) => c.code === 'violence.physical'), 'the built-in ones kept');
  await assertAccessible(p, 'a helpline’s settings');
  await screenshot(p, 'admin-helpline');

  // Put back what other tests share: the hours, the canned response.
  await p.getByRole('button', { name: 'Remove “Admin27 greeting”' }).click();
  await p.locator('#canned-list', { hasText: 'Admin27 greeting' }).waitFor({ state: 'detached' });
  assert.equal((await api('/api/v1/helplines/disability/hours', { token, method: 'PUT', body: before })).status, 200);

  // Telephony: a dialled number and an exchange whose token is shown once.
  await p.getByRole('button', { name: 'Telephony' }).click();
  await p.getByLabel('Number dialled (* for any other)').fill('0 800 27 027');
  await p.getByLabel('Reaches the helpline').selectOption('disability');
  await p.getByRole('button', { name: 'Save the number' }).click();
  await p.locator('#numbers-list', { hasText: '080027027' }).waitFor();
  await p.getByLabel('Name (a-z, 0-9, . _ -)').fill('pbx-admin27');
  await p.getByRole('button', { name: 'Register the exchange' }).click();
  await p.locator('#gateway-token').waitFor();
  const gatewayToken = (await p.locator('#gateway-token-value').textContent()).trim();
  assert.ok(gatewayToken.length > 30);
  await p.locator('#gateways-list', { hasText: 'pbx-admin27 — active' }).waitFor();
  await assertAccessible(p, 'the telephony section with a new token');
  await p.getByRole('button', { name: 'Revoke pbx-admin27' }).click();
  await p.locator('#gateways-list', { hasText: 'pbx-admin27 — revoked' }).waitFor();
  await p.getByRole('button', { name: 'Remove the number 080027027' }).click();
  await p.locator('#numbers-list', { hasText: '080027027' }).waitFor({ state: 'detached' });

  // Services.
  await p.getByRole('button', { name: 'Services' }).click();
  await p.getByRole('heading', { name: 'Placement services' }).waitFor();
  await assertAccessible(p, 'the services registry');

  // The page in the other staff languages.
  for (const [lang, heading] of [['ro', 'Conturi'], ['ru', 'Учётные записи'], ['uk', 'Облікові записи']]) {
    await p.locator('#ui-locale').selectOption(lang);
    await p.getByRole('button', { name: heading }).click();
    await p.getByRole('heading', { name: heading }).waitFor();
    await assertAccessible(p, `the accounts list (${lang})`);
  }
  await p.locator('#ui-locale').selectOption('en');
  await ctx.close();
});

test('the admin page refuses anyone but an admin', async () => {
  const ctx = await context(browser, LAPTOP);
  const p = await page(ctx);
  await p.goto(`${BASE}/admin`);
  await p.locator('#username').fill('maria');
  await p.locator('#password').fill('maria-demo');
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.locator('#login-error', { hasText: 'This page is for admins.' }).waitFor();
  assert.ok(await p.locator('#admin').isHidden());
  const res = await api('/api/v1/users', { token: await login('maria') });
  assert.equal(res.status, 403);
  await ctx.close();
});
