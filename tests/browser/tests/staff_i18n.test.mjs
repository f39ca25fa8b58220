// The staff pages in Romanian, Russian and Ukrainian (web-agent/assets/staff-i18n.js): every visible text,
// accessible name, placeholder and title of the dashboard, of the counsellor console (available, an offer
// ringing, a conversation with its contact form, the End dialog, the ended conversation) and of the
// sign-in and second-factor screens is
// walked and compared with the English catalogue: a string equal to its English source fails (only names,
// codes and numbers may stay as they are). The language is kept with the account: it survives a reload and
// a new login on another device. axe on each language.
//
// `lidia` and the counsellor `lena` (seeded by tests/browser.rs) are used, not the demo's maria and ion: the
// language chosen here stays with the account, and the other tests expect their pages in English.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BASE, api, launch, context, page, counsellor, caller, acceptOffer, login, supervisor, say, assertAccessible, screenshot } from '../lib.mjs';

const LIDIA = { username: 'lidia', password: 'lidia-wall-screen' };
const LANGS = ['ro', 'ru', 'uk'];

// The catalogue itself, as the page loads it (a plain module: imported from its text).
const CATALOGUE_SOURCE = readFileSync(new URL('../../../web-agent/assets/staff-i18n.js', import.meta.url), 'utf8');
const { CATALOGUE } = await import(`data:text/javascript,${encodeURIComponent(CATALOGUE_SOURCE)}`);

/** People's and languages' names, which stay as they are in every language. */
const NAMES = new Set(['Ion', 'Ana', 'Olena', 'Lidia', 'Lena', 'Wanda', 'Maria (supervisor)', 'Vera (case manager)', 'Administrator', 'tess', 'theo', 'gail', 'Română', 'Русский', 'Українська', 'English']);
/** Units written the same in several languages ("5 min", "12 s", "1 h"). */
const UNITS = new Set(['s', 'min', 'h', 'с', 'мин', 'ч', 'хв', 'год']);

function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Every English text of the catalogue with words in it, as a pattern (`{param}` matches anything). */
const ENGLISH = Object.entries(CATALOGUE.en).flatMap(([key, value]) =>
  (typeof value === 'string' ? [value] : Object.values(value))
    .map((text) => text.replace(/\s+/g, ' ').trim())
    // Words, not only units ("{n} min" is written so in Romanian too).
    .filter((text) => (text.replace(/\{\w+\}/g, '').match(/[A-Za-z]{2,}/g) || []).some((w) => !UNITS.has(w)))
    .map((text) => ({ key, text, re: new RegExp(`^${text.split(/\{\w+\}/).map(escape).join('.+?')}$`, 's') })),
);

/** Names, codes and numbers: allowed to be the same as in English. */
function allowed(text) {
  if (NAMES.has(text)) return true;
  if (/^[0-9a-f]{6}$/.test(text) || /^[A-Z2-7]{16,}=*$/.test(text) || /^otpauth:/.test(text)) return true;
  return text
    .split(/\s+/)
    .map((w) => w.replace(/^[\p{P}\p{S}]+|[\p{P}\p{S}]+$/gu, ''))
    .every((w) => w === '' || /^[\d.,:%–-]+$/.test(w) || UNITS.has(w));
}

/**
 * What a person sees or hears of the page: each visible element's own text, its aria-label, placeholder
 * and title, the options of visible selects (not the language selector: names), the charts' SVG titles,
 * and the document's title. With `mark`, each element keeps its English text (to find ones never changed).
 */
async function texts(p, { mark = false } = {}) {
  return p.evaluate((markIt) => {
    const out = [];
    const where = (node) => (node.id ? `#${node.id}` : `${node.tagName.toLowerCase()}${typeof node.className === 'string' && node.className ? `.${node.className.trim().split(/\s+/).join('.')}` : ''}`);
    const push = (text, at, node) => {
      const s = (text || '').replace(/\s+/g, ' ').trim();
      if (!s) return;
      const unchanged = Boolean(node && node.__enText === s);
      out.push({ text: s, at, unchanged });
      if (markIt && node) node.__enText = s;
    };
    for (const node of document.body.querySelectorAll('*')) {
      // What people wrote (a reason, a message) is marked translate="no": it stays as written.
      if (node.closest('[translate="no"]')) continue;
      if (!node.checkVisibility({ visibilityProperty: true, opacityProperty: true })) continue;
      let own = '';
      for (const child of node.childNodes) if (child.nodeType === Node.TEXT_NODE) own += child.textContent;
      push(own, where(node), node);
      for (const attr of ['aria-label', 'placeholder', 'title']) {
        if (node.hasAttribute(attr)) push(node.getAttribute(attr), `${where(node)}[${attr}]`);
      }
      if (node.tagName === 'SELECT' && node.id !== 'ui-locale') for (const o of node.options) push(o.textContent, `${where(node)} option`);
    }
    for (const node of document.querySelectorAll('svg title, svg desc')) push(node.textContent, `svg ${node.tagName}`);
    push(document.title, 'document.title');
    return out;
  }, mark);
}

/** Fails on any text equal to its English source (or never changed since the English page), names and numbers aside. */
async function assertTranslated(p, lang, what) {
  assert.equal(await p.evaluate(() => document.documentElement.lang), lang, `${what}: <html lang>`);
  const seen = await texts(p);
  assert.ok(seen.length > 5, `${what}: texts found (${seen.length})`);
  const english = [];
  for (const { text, at, unchanged } of seen) {
    if (allowed(text)) continue;
    const source = ENGLISH.find((e) => e.re.test(text));
    if (source) english.push(`${at}: "${text}" is the English of ${source.key}`);
    else if (unchanged) english.push(`${at}: "${text}" was not translated (same as on the English page)`);
  }
  assert.deepEqual(english, [], `${what} in ${lang}: English left:\n${english.join('\n')}`);
}

async function chooseLanguage(p, lang) {
  await p.locator('#ui-locale').selectOption(lang);
  await p.locator(`html[lang="${lang}"]`).waitFor();
}

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('the catalogue: every key in every language, placeholders kept, plural forms for each language', () => {
  for (const lang of ['ro', 'ru', 'uk']) {
    const rules = new Intl.PluralRules(lang).resolvedOptions().pluralCategories;
    for (const [key, en] of Object.entries(CATALOGUE.en)) {
      const value = CATALOGUE[lang][key];
      assert.ok(value !== undefined, `${lang} misses ${key}`);
      const params = (s) => [...new Set([...String(s).matchAll(/\{(\w+)\}/g)].map((m) => m[1]))].sort();
      const enParams = params(typeof en === 'string' ? en : en.other);
      for (const form of typeof value === 'string' ? [value] : Object.values(value)) {
        for (const name of params(form)) assert.ok(enParams.includes(name) || name === 'n', `${lang} ${key}: {${name}} is not in the English`);
      }
      if (typeof en === 'object') {
        assert.equal(typeof value, 'object', `${lang} ${key} needs plural forms`);
        for (const category of rules) assert.ok(value[category] !== undefined || value.other !== undefined, `${lang} ${key}: no "${category}" form`);
        if (lang !== 'ro') for (const category of ['one', 'few', 'many']) assert.ok(value[category], `${lang} ${key}: the "${category}" form`);
      }
    }
    for (const key of Object.keys(CATALOGUE[lang])) assert.ok(key in CATALOGUE.en, `${lang} has ${key}, which English has not`);
  }
});

test('the sign-in and second-factor screens in Romanian, Russian and Ukrainian', async () => {
  for (const lang of LANGS) {
    const ctx = await context(browser);
    const p = await page(ctx);
    // The server answers as it would for an account that must set up a second factor (as in
    // second_factor.test.mjs), then for one that has one: nothing is changed on the server.
    let answer = 'totp_required';
    await p.route('**/api/v1/auth/login', (route) => {
      if (!answer) return route.continue();
      const code = answer;
      answer = null;
      return route.fulfill({ status: 401, contentType: 'application/json', body: JSON.stringify({ code, message: 'english words from the server' }) });
    });
    await p.route('**/api/v1/auth/totp/enrol', (route) =>
      route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ secret: 'JBSWY3DPEHPK3PXPJBSWY3DP', otpauth_uri: 'otpauth://totp/helpline:lidia?secret=JBSWY3DPEHPK3PXPJBSWY3DP&issuer=helpline' }) }),
    );
    await p.goto(`${BASE}/supervisor`);
    await p.getByLabel('Username').waitFor();
    await texts(p, { mark: true });
    await chooseLanguage(p, lang);
    await assertTranslated(p, lang, 'the sign-in screen');
    await assertAccessible(p, `the sign-in screen (${lang})`);

    // Submitted empty: the error is in the language too.
    await p.locator('#login').click();
    await p.locator('#login-error').filter({ hasText: /\S/ }).waitFor();
    await assertTranslated(p, lang, 'the sign-in error');

    // The password is right; the second factor is asked for.
    await p.locator('#username').fill('lidia');
    await p.locator('#password').fill(LIDIA.password);
    await p.locator('#login').click();
    await p.locator('#totp-field').waitFor();
    await assertTranslated(p, lang, 'the code prompt');
    await assertAccessible(p, `the code prompt (${lang})`);

    // Enrolment: the key to add to an app.
    answer = 'totp_enrolment_required';
    await p.locator('#totp-code').fill('123456');
    await p.locator('#password').fill(LIDIA.password);
    await p.locator('#login').click();
    await p.locator('#totp-secret').waitFor();
    await assertTranslated(p, lang, 'the enrolment step');
    await assertAccessible(p, `the enrolment step (${lang})`);
    if (lang === 'uk') await screenshot(p, 'supervisor-enrol-uk');

    // The recovery codes, shown once after the enrolment's first login (the real login, with codes added).
    // The account's language is this one (the page takes the account's on signing in).
    const token = (await api('/api/v1/auth/login', { method: 'POST', body: LIDIA })).body.access_token;
    assert.equal((await api('/api/v1/me/locale', { token, method: 'PUT', body: { locale: lang } })).status, 200);
    await p.route('**/api/v1/auth/login', async (route) => {
      const real = await api('/api/v1/auth/login', { method: 'POST', body: { username: LIDIA.username, password: LIDIA.password } });
      return route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ ...real.body, recovery_codes: ['abcd-efgh-2345', 'ijkl-mnop-6789'] }) });
    });
    await p.locator('#totp-code').fill('654321');
    await p.locator('#password').fill(LIDIA.password);
    await p.locator('#login').click();
    await p.locator('#recovery-codes').waitFor();
    await p.locator('#conn[data-state="online"]').waitFor();
    await assertTranslated(p, lang, 'the recovery codes');
    await assertAccessible(p, `the recovery codes (${lang})`);
    assert.deepEqual(p.errors, []);
    await ctx.close();
  }
});

test('the dashboard in Romanian, Russian and Ukrainian: nothing left in English', async () => {
  const supCtx = await context(browser, { viewport: { width: 1600, height: 1500 } });
  const agentCtx = await context(browser);
  const callerCtx = await context(browser);
  const lidia = (await api('/api/v1/auth/login', { method: 'POST', body: LIDIA })).body.access_token;
  let blockId = null;
  // The account starts in English here (the sign-in test left it in Ukrainian).
  assert.equal((await api('/api/v1/me/locale', { token: lidia, method: 'PUT', body: { locale: 'en' } })).status, 200);
  try {
    // A conversation Ion has on the children's helpline: escalated, flagged, its caller blocked.
    const agent = await counsellor(agentCtx, 'ion');
    const first = await caller(callerCtx, 'children', 'ro');
    await acceptOffer(agent, first.contactId);
    const ion = await login('ion');
    const escalated = await api('/api/v1/escalations', {
      token: ion,
      method: 'POST',
      body: { contact_id: first.contactId, kind: 'child_protection', risk: 'high', reason: 'Nu vrea să meargă acasă în seara asta.', district: 'Cahul' },
    });
    assert.equal(escalated.status, 201, escalated.text);
    const flagged = await api(`/api/v1/contacts/${first.contactId}/flag`, { token: ion, method: 'POST', body: { reason: 'insulte repetate' } });
    assert.equal(flagged.status, 201, flagged.text);
    const blocked = await api('/api/v1/blocks', { token: lidia, method: 'POST', body: { contact_id: first.contactId, duration: '10m', reason: 'amenințări', mode: 'senior' } });
    assert.equal(blocked.status, 201, blocked.text);
    blockId = blocked.body.block.block_id;

    // The dashboard, in English first; Ion is set away there, so the next caller waits and turns red.
    const sup = await supervisor(supCtx, '', LIDIA);
    await sup.getByLabel('Status for Ion', { exact: true }).selectOption('away');
    await sup.getByRole('button', { name: 'Set status for Ion', exact: true }).click();
    await sup.locator('#notice', { hasText: 'Ion is now away.' }).waitFor();
    const second = await caller(callerCtx, 'family_violence', 'ru');
    await sup.locator(`tr[data-contact-id="${second.contactId}"][data-level="red"]`).waitFor();
    await sup.locator(`.alert[data-kind="wait_15s"][data-contact-id="${second.contactId}"]`).waitFor();
    await sup.locator(`.escalation[data-contact-id="${first.contactId}"]`).waitFor();
    await sup.locator(`.block[data-contact-id="${first.contactId}"]`).waitFor();
    await sup.locator('.helpline[data-helpline="family_violence"] .chart svg').waitFor();
    // One alert acknowledged (its "acknowledged" line is words too).
    await sup.locator(`.alert[data-kind="wait_10s"][data-contact-id="${second.contactId}"]`).getByRole('button', { name: /Acknowledge/ }).click();
    // The escalation names the helpline and the counsellor, not their codes.
    const escalation = sup.locator(`.escalation[data-contact-id="${first.contactId}"] .alert-body`);
    assert.match(await escalation.textContent(), /^Children's helpline 116 111 · Ion · Cahul · contact /);
    await texts(sup, { mark: true });

    for (const lang of LANGS) {
      await chooseLanguage(sup, lang);
      // The same things, in other words.
      await sup.locator(`tr[data-contact-id="${second.contactId}"][data-level="red"]`).waitFor();
      await assertTranslated(sup, lang, 'the dashboard');
      await assertAccessible(sup, `the dashboard (${lang})`);
      await screenshot(sup, `supervisor-${lang}`);
    }
    // Plurals and names in Ukrainian: the helpline's own name; the escalation's count in the right form.
    assert.match(await escalation.textContent(), /^Дитяча лінія довіри 116 111 · Ion · Cahul · звернення /);
    assert.match(await sup.locator('#escalation-count').textContent(), /^\d+ (чекає|чекають) підтвердження$/);
    // Dates and numbers in the language: the block's period is written with Ukrainian month names.
    assert.match(await sup.locator(`.block[data-contact-id="${first.contactId}"] .period`).textContent(), /^З .+ до .+$/);

    for (const c of [second, first]) await c.page.locator('#quick-exit').click();
    for (const p of [sup, agent]) assert.deepEqual(p.errors, [], 'no script errors');
  } finally {
    // Lifted: the other browser tests open chats from this address.
    if (blockId) await api(`/api/v1/blocks/${blockId}`, { token: lidia, method: 'DELETE' });
    await supCtx.close();
    await agentCtx.close();
    await callerCtx.close();
  }
});

test('the console in Romanian, Russian and Ukrainian: every state, nothing left in English', async () => {
  const agentCtx = await context(browser, { viewport: { width: 1366, height: 900 } });
  const callerCtx = await context(browser);
  const lena = (await api('/api/v1/auth/login', { method: 'POST', body: { username: 'lena', password: 'lena-demo' } })).body.access_token;
  assert.equal((await api('/api/v1/me/locale', { token: lena, method: 'PUT', body: { locale: 'en' } })).status, 200);
  /** The English page of this state is marked, then the state is walked in `lang` (and axe). */
  const check = async (p, lang, what, { axe = true, minPasses } = {}) => {
    await chooseLanguage(p, 'en');
    await texts(p, { mark: true });
    await chooseLanguage(p, lang);
    await assertTranslated(p, lang, what);
    if (axe) await assertAccessible(p, `${what} (${lang})`, minPasses ? { minPasses } : undefined);
  };
  try {
    const agent = await counsellor(agentCtx, 'lena');
    for (const lang of LANGS) {
      // Signed in and available.
      await check(agent, lang, 'the console, available');

      // An offer ringing in the bar (its ring lasts 8 s: walked, then answered in time).
      const chat = await caller(callerCtx, 'children', 'ro');
      const offer = agent.locator(`.offer[data-contact-id="${chat.contactId}"]`);
      await offer.waitFor();
      await check(agent, lang, 'an offer', { axe: false });
      await assertAccessible(agent, `an offer (${lang})`);
      await offer.locator('button.accept').click();
      const p = agent.locator(`.pane[data-contact-id="${chat.contactId}"]`);
      await p.waitFor();

      // A conversation open, a message each way, its contact form loaded and a draft saved.
      await say(chat.page, 'Bună ziua, am nevoie de ajutor.');
      await p.locator('.log .msg.theirs').waitFor();
      await p.locator('textarea').first().fill('Bună, sunt aici. Spune-mi ce s-a întâmplat.');
      await p.locator('textarea').first().press('Enter');
      await p.locator('.log .msg.mine .meta[data-state="delivered"]').waitFor();
      await p.locator('.contact-form select[name="caller_type"]').waitFor();
      await p.locator('.contact-form select[name="caller_type"]').selectOption('person_concerned');
      await p.locator('.contact-form .form-status[data-i18n="form.draftSavedAt"]').waitFor();
      await check(agent, lang, 'a conversation and its contact form');
      if (lang === 'ro') await screenshot(agent, 'agent-ro', { docs: 'agent-ro.png' });

      // End conversation asks first; then the ended conversation, its wrap-up listed.
      await p.locator('button.end').click();
      await agent.locator('#end-dialog[open]').waitFor();
      // A modal dialog: the page behind it is inert, so axe has fewer rules to run on it.
      await check(agent, lang, 'the End dialog', { minPasses: 3 });
      await agent.locator('#end-confirm').click();
      await p.locator('.ended-note:not([hidden])').waitFor();
      await agent.locator(`#wrapups li[data-contact-id="${chat.contactId}"]`).waitFor();
      await check(agent, lang, 'an ended conversation');
      if (lang === 'uk') await screenshot(agent, 'agent-uk');
      await chat.page.close();
    }
    // Numbers and dates in the language: the Ukrainian title's count and the time of the form's draft.
    assert.equal(await agent.locator('html').getAttribute('lang'), 'uk');
    assert.match(await agent.locator('#conversations-heading').textContent(), /^Розмови \(\d+\)$/);
    // Kept with the account: a reload starts in Ukrainian, the selector says so.
    await agent.reload();
    await agent.locator('html[lang="uk"] #conn[data-state="online"]').waitFor();
    assert.equal(await agent.locator('#ui-locale').inputValue(), 'uk');
    assert.equal(await agent.title(), 'Консоль лінії допомоги');
    assert.deepEqual(agent.errors, [], 'no script errors');
  } finally {
    // Back to English for the next run (the choice is the account's).
    await api('/api/v1/me/locale', { token: lena, method: 'PUT', body: { locale: 'en' } });
    await agentCtx.close();
    await callerCtx.close();
  }
});

test('the language is kept with the account: a reload and a new login on another device start in it', async () => {
  const ctx = await context(browser);
  const sup = await supervisor(ctx, '', LIDIA);
  await chooseLanguage(sup, 'ru');
  await sup.locator('#counsellors-heading', { hasText: 'Консультанты' }).waitFor();
  const token = (await api('/api/v1/auth/login', { method: 'POST', body: LIDIA })).body.access_token;
  // Kept on the server (the PUT may still be on its way: wait for it, not for a time).
  const deadline = Date.now() + 15000;
  for (;;) {
    const me = await api('/api/v1/me', { token });
    if (me.body.locale === 'ru') break;
    assert.ok(Date.now() < deadline, `the account's locale is ${me.body.locale}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  // A reload: still Russian, and the selector says so.
  await sup.reload();
  await sup.locator('html[lang="ru"] #conn[data-state="online"]').waitFor();
  await sup.locator('#counsellors-heading', { hasText: 'Консультанты' }).waitFor();
  assert.equal(await sup.locator('#ui-locale').inputValue(), 'ru');
  await ctx.close();

  // Another device (nothing kept in its storage, an English browser): English until signed in, then Russian.
  const other = await context(browser, { locale: 'en-GB' });
  const p = await page(other);
  await p.goto(`${BASE}/supervisor`);
  await p.getByRole('button', { name: 'Sign in' }).waitFor();
  assert.equal(await p.evaluate(() => document.documentElement.lang), 'en');
  await p.getByLabel('Username').fill(LIDIA.username);
  await p.getByLabel('Password').fill(LIDIA.password);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.locator('html[lang="ru"] #conn[data-state="online"]').waitFor();
  await p.locator('#alerts-heading', { hasText: 'Оповещения' }).waitFor();
  assert.equal(await p.locator('#ui-locale').inputValue(), 'ru');
  assert.equal(await p.title(), 'Супервизор линии помощи');

  // Back to English for the next run of the page: the choice is the account's, from any device.
  await chooseLanguage(p, 'en');
  const back = Date.now() + 15000;
  for (;;) {
    const me = await api('/api/v1/me', { token });
    if (me.body.locale === 'en') break;
    assert.ok(Date.now() < back, `the account's locale is ${me.body.locale}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(p.errors, []);
  await other.close();
});
