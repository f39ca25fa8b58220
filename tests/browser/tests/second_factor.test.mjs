// The second factor in the staff pages: a supervisor whose account has one is asked for the code after
// the right password, and a recovery code signs in once; the dashboard lists sign-in lockouts. (`tess` is seeded by tests/browser.rs; her
// second factor is set up here through the API, as the dashboard's enrolment would.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { BASE, api, launch, context, page, supervisor, assertAccessible } from '../lib.mjs';

const USER = 'tess';
const PASSWORD = 'tess-second-factor';


/** RFC 4648 base32 → bytes. */
function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** RFC 6238: SHA-1, 6 digits, 30 s steps, at `ms`. */
function totp(secret, ms) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(ms / 30000)));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('the dashboard asks for the second factor after the password; a recovery code works once', async () => {
  const enrol = await api('/api/v1/auth/totp/enrol', { method: 'POST', body: { username: USER, password: PASSWORD } });
  assert.equal(enrol.status, 200, enrol.text);
  const { secret } = enrol.body;
  const confirmed = await api('/api/v1/auth/login', { method: 'POST', body: { username: USER, password: PASSWORD, totp_code: totp(secret, Date.now()) } });
  assert.equal(confirmed.status, 200, confirmed.text);
  const recovery = confirmed.body.recovery_codes;
  assert.equal(recovery.length, 10);

  const signIn = async (code) => {
    const ctx = await context(browser);
    const p = await page(ctx);
    await p.goto(`${BASE}/supervisor`);
    await p.getByLabel('Username').fill(USER);
    await p.getByLabel('Password').fill(PASSWORD);
    await p.getByRole('button', { name: 'Sign in' }).click();
    const field = p.getByLabel('Code from your authenticator app (or a recovery code)');
    await field.waitFor();
    await p.getByText('Enter the 6-digit code from your authenticator app').waitFor();
    await assertAccessible(p, 'the code prompt');
    await field.fill(code);
    await p.getByRole('button', { name: 'Sign in' }).click();
    return { ctx, p };
  };

  // The app's next code (the one just used for the confirmation is not taken twice).
  const first = await signIn(totp(secret, Date.now() + 30000));
  await first.p.locator('#conn[data-state="online"]').waitFor();
  assert.ok(await first.p.locator('#login-screen').isHidden());
  assert.deepEqual(first.p.errors, []);
  await first.ctx.close();

  const second = await signIn(recovery[0]);
  await second.p.locator('#conn[data-state="online"]').waitFor();
  await second.ctx.close();

  const third = await signIn(recovery[0]);
  await third.p.getByText('Wrong or already used code').waitFor();
  assert.ok(await third.p.locator('#login-screen').isVisible(), 'a recovery code is used once');
  await third.ctx.close();
});

test('the dashboard lists the addresses locked out after failed sign-ins', async () => {
  // Six wrong passwords for a name that is no account, from this test's address: that pair is locked out.
  for (let i = 0; i < 6; i++) {
    const res = await api('/api/v1/auth/login', { method: 'POST', body: { username: 'no-such-person', password: `guess-${i}` } });
    assert.equal(res.status, 401);
  }
  // A lockout of a name that is no account is shown only to those who see every helpline (an admin,
  // or a supervisor with the all-helplines grant: `gail`, seeded by tests/browser.rs); a supervisor of
  // some helplines sees only their accounts' lockouts (tests/it/logins.rs).
  const ctx = await context(browser);
  const sup = await supervisor(ctx, '', { username: 'gail', password: 'gail-every-helpline' });
  const item = sup.locator('#lockout-list li.lockout');
  await item.first().waitFor();
  assert.match(await item.first().textContent(), /a name that is no account from .+, until /);
  assert.ok(await sup.locator('#no-lockouts').isHidden());
  assert.doesNotMatch(await sup.locator('#lockouts').textContent(), /no-such-person/, 'the typed name is not kept');
  await assertAccessible(sup, 'the dashboard with a lockout');
  await ctx.close();
});

test('an account that must set up a second factor is taken through enrolment and shown its recovery codes once', async () => {
  const ctx = await context(browser);
  const p = await page(ctx);
  // This server does not require a second factor (`--require-totp`): the first answer is the one it gives when it does.
  let first = true;
  await p.route('**/api/v1/auth/login', (route) => {
    if (!first) return route.continue();
    first = false;
    return route.fulfill({
      status: 401,
      contentType: 'application/json',
      body: JSON.stringify({ code: 'totp_enrolment_required', message: 'this account must set up a second factor' }),
    });
  });
  await p.goto(`${BASE}/supervisor`);
  await p.getByLabel('Username').fill('theo');
  await p.getByLabel('Password').fill('theo-second-factor');
  await p.getByRole('button', { name: 'Sign in' }).click();
  const secret = (await p.locator('#totp-secret').textContent()).trim();
  assert.match(secret, /^[A-Z2-7]{26,}=*$/);
  assert.match(await p.locator('#totp-uri').getAttribute('href'), /^otpauth:\/\/totp\/helpline:theo\?/);
  await assertAccessible(p, 'the enrolment step');
  await p.getByLabel('Code from your authenticator app (or a recovery code)').fill(totp(secret, Date.now()));
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.locator('#recovery-codes').waitFor();
  const codes = await p.locator('#recovery-list li').allTextContents();
  assert.equal(codes.length, 10);
  await p.getByRole('button', { name: 'I have written them down' }).click();
  assert.equal(await p.locator('#recovery-codes').count(), 0, 'shown once');
  await p.locator('#conn[data-state="online"]').waitFor();
  assert.deepEqual(p.errors, []);
  await ctx.close();
  // The second factor is on: the password alone is not enough any more.
  const res = await api('/api/v1/auth/login', { method: 'POST', body: { username: 'theo', password: 'theo-second-factor' } });
  assert.equal(res.body.code, 'totp_required');
});
