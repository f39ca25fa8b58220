// The admins' page (`/admin`, docs/admin.md): accounts (create, edit, disable, a one-time password reset
// code, unlock), each helpline's opening hours, waiting settings, canned responses and contact-form
// categories, the dialled numbers and the telephone exchanges (tokens shown once), the placement
// services registry. REST only, through the APIs the server documents; every word through
// staff-i18n.js (keys `admin.…`). Usable on a laptop: the tables scroll sideways on a narrow screen.

import { $, el } from './common.js';
import { mountLogin, submitLogin, showLogin, savedToken, forgetToken, revokeToken, apiCall, refreshNow, initLocale, showSignedIn, ADMIN_TOKEN_KEY } from './staff.js';
import { t, has, locale, onLocaleChange, translatePage, formatDateTime } from './staff-i18n.js';
import { HELPLINE_NAMES } from './chat-i18n.js';

const TOKEN_KEY = ADMIN_TOKEN_KEY;
const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const SERVICE_KINDS = ['family_violence_centre', 'maternal_centre', 'community_home_children', 'family_type_home', 'elderly_disability_centre'];

const state = {
  token: null,
  me: null,
  tab: 'accounts',
  accounts: [],
  helplines: [],
  /** The account being edited (null: a new one; undefined: none). */
  editing: undefined,
  helpline: null,
  canned: [],
  numbers: [],
  gateways: [],
  services: [],
};

/** The REST API with this page's token: an expired access token is refreshed once, else the page signs out. */
async function api(path, options) {
  let res = await apiCall(state.token, path, options);
  if (res.status === 401 && state.token) {
    if (await refreshNow()) res = await apiCall(state.token, path, options);
    if (res.status === 401) signOut(t('session.expired'));
  }
  return res;
}

function notice(text, error = false) {
  const n = $('notice');
  n.classList.toggle('error', error);
  n.textContent = text;
}

/** The words for a refusal: the server's stable code, and its message (English) as detail. */
function refusal(res) {
  const code = res.body?.code;
  if (res.status === 0) return t('admin.error.unreachable');
  if (code && has(`admin.error.${code}`)) {
    const field = res.body.field ? ` (${res.body.field})` : '';
    return `${t(`admin.error.${code}`)}${field}`;
  }
  return t('admin.error.other', { message: res.body?.message || `HTTP ${res.status}` });
}

function helplineName(name) {
  return HELPLINE_NAMES[name]?.[locale()] || state.helplines.find((h) => h.name === name)?.display_name || name;
}

function roleName(role) {
  return has(`admin.role.${role}`) ? t(`admin.role.${role}`) : role;
}

const list = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);

// ----- tabs ---------------------------------------------------------------------------

function showTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll('.tab')) {
    if (b.dataset.tab === tab) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  for (const name of ['accounts', 'helplines', 'telephony', 'services']) $(`tab-${name}`).hidden = name !== tab;
  if (tab === 'accounts') loadAccounts();
  if (tab === 'helplines') loadHelpline();
  if (tab === 'telephony') loadTelephony();
  if (tab === 'services') loadServices();
}

// ----- accounts -----------------------------------------------------------------------

async function loadAccounts() {
  const res = await api('/api/v1/users');
  if (res.status !== 200) return notice(refusal(res), true);
  state.accounts = res.body.accounts;
  drawAccounts();
  return undefined;
}

function drawAccounts() {
  $('accounts').replaceChildren(
    ...state.accounts.map((a) => {
      const edit = el('button', { type: 'button', class: 'secondary small', text: t('admin.edit'), 'aria-label': t('admin.accounts.editNamed', { name: a.username }) });
      edit.addEventListener('click', () => openAccount(a));
      const lines = a.helplines.map(helplineName).join(', ') + (a.backup_helplines.length ? ` (+ ${a.backup_helplines.map(helplineName).join(', ')})` : '');
      return el('tr', { dataset: { username: a.username } },
        el('th', { scope: 'row', text: a.username }),
        el('td', { text: a.display_name }),
        el('td', { text: roleName(a.role) }),
        el('td', { text: lines }),
        el('td', { text: a.languages.join(', ') }),
        el('td', { text: String(a.capacity) }),
        el('td', { text: a.extension || '–' }),
        el('td', { text: a.disabled ? t('admin.accounts.isDisabled') : t('admin.accounts.isEnabled') }),
        el('td', {}, edit));
    }),
  );
}

function checks(containerId, prefix, chosen) {
  $(containerId).replaceChildren(
    ...state.helplines.map((h) => {
      const id = `${prefix}-${h.name}`;
      return el('span', { class: 'check' },
        el('input', { type: 'checkbox', id, value: h.name, checked: chosen.includes(h.name) }),
        el('label', { for: id, text: helplineName(h.name) }));
    }),
  );
}

function checked(containerId) {
  return Array.from($(containerId).querySelectorAll('input:checked'), (i) => i.value);
}

/** Opens the account form: `a` to edit, null for a new account. */
function openAccount(a) {
  state.editing = a;
  const fresh = a === null;
  $('account-heading').textContent = fresh ? t('admin.accounts.newHeading') : t('admin.accounts.editHeading', { name: a.username });
  $('account-username-field').hidden = !fresh;
  $('account-password-field').hidden = !fresh;
  $('account-disabled-field').hidden = fresh;
  $('account-reset').hidden = fresh;
  $('account-unlock').hidden = fresh;
  $('account-username').value = '';
  $('account-password').value = '';
  $('account-display').value = a?.display_name || '';
  $('account-role').value = a?.role || 'counsellor';
  $('account-languages').value = (a?.languages || []).join(', ');
  $('account-capacity').value = String(a?.capacity ?? 3);
  $('account-extension').value = a?.extension || '';
  $('account-districts').value = (a?.districts || []).join(', ');
  $('account-senior').checked = Boolean(a?.senior);
  $('account-disabled').checked = Boolean(a?.disabled);
  checks('account-helplines', 'hl', a?.helplines || []);
  checks('account-backup', 'bk', a?.backup_helplines || []);
  $('account-error').textContent = '';
  $('reset-result').hidden = true;
  $('account-panel').hidden = false;
  $('account-heading').focus();
}

function showReset(reset) {
  $('reset-code').textContent = reset.code;
  $('reset-link').textContent = new URL(reset.link, location.origin).href;
  $('reset-expires').textContent = formatDateTime(Date.parse(reset.expires_at));
  $('reset-result').hidden = false;
}

async function onSaveAccount(event) {
  event.preventDefault();
  $('account-error').textContent = '';
  const body = {
    display_name: $('account-display').value.trim() || undefined,
    role: $('account-role').value,
    helplines: checked('account-helplines'),
    backup_helplines: checked('account-backup'),
    languages: list($('account-languages').value),
    capacity: Number($('account-capacity').value),
    extension: $('account-extension').value.trim() || null,
    senior: $('account-senior').checked,
    districts: list($('account-districts').value),
  };
  let res;
  if (state.editing === null) {
    body.username = $('account-username').value.trim().toLowerCase();
    if ($('account-password').value) body.password = $('account-password').value;
    if (!body.display_name) delete body.display_name;
    res = await api('/api/v1/users', { method: 'POST', body });
    if (res.status !== 201) {
      $('account-error').textContent = refusal(res);
      return;
    }
    notice(t('admin.accounts.created', { name: res.body.account.username }));
    await loadAccounts();
    const made = state.accounts.find((x) => x.username === res.body.account.username) || res.body.account;
    openAccount(made);
    if (res.body.reset) showReset(res.body.reset);
    return;
  }
  body.disabled = $('account-disabled').checked;
  if (!body.display_name) delete body.display_name;
  res = await api(`/api/v1/users/${encodeURIComponent(state.editing.username)}`, { method: 'PATCH', body });
  if (res.status !== 200) {
    $('account-error').textContent = refusal(res);
    return;
  }
  notice(t('admin.accounts.saved', { name: res.body.username }));
  await loadAccounts();
  $('account-panel').hidden = true;
  state.editing = undefined;
}

async function onReset() {
  const a = state.editing;
  if (!a) return;
  const res = await api(`/api/v1/users/${encodeURIComponent(a.username)}/reset`, { method: 'POST' });
  if (res.status !== 201) {
    $('account-error').textContent = refusal(res);
    return;
  }
  showReset(res.body);
  notice(t('admin.reset.made', { name: a.username }));
}

async function onUnlock() {
  const a = state.editing;
  if (!a) return;
  const res = await api(`/api/v1/users/${encodeURIComponent(a.username)}/unlock`, { method: 'POST' });
  if (res.status !== 200) {
    $('account-error').textContent = refusal(res);
    return;
  }
  notice(t('admin.accounts.unlocked', { name: a.username, n: res.body.lifted }));
}

// ----- helplines ----------------------------------------------------------------------

function drawHelplineChoices() {
  const keep = (id, value) => {
    const s = $(id);
    s.replaceChildren(...state.helplines.map((h) => el('option', { value: h.name, text: helplineName(h.name) })));
    if (value) s.value = value;
  };
  keep('helpline-choice', state.helpline);
  keep('number-helpline', $('number-helpline').value);
}

async function loadHelpline() {
  const name = $('helpline-choice').value || state.helplines[0]?.name;
  if (!name) return;
  state.helpline = name;
  const base = `/api/v1/helplines/${encodeURIComponent(name)}`;
  const [hours, settings, canned, taxonomy] = await Promise.all([
    api(`${base}/hours`),
    api(`${base}/settings`),
    api(`/api/v1/canned-responses?helpline=${encodeURIComponent(name)}`),
    api(`${base}/taxonomy`),
  ]);
  if (hours.status === 200) drawHours(hours.body);
  if (settings.status === 200) {
    $('settings-wrapup').value = String(Math.round(settings.body.wrapup_limit_ms / 1000));
    $('settings-away').value = settings.body.away_reasons.join(', ');
    $('settings-triage').value = settings.body.triage_priority == null ? '' : String(settings.body.triage_priority);
  }
  if (canned.status === 200) {
    state.canned = canned.body.canned_responses;
    drawCanned();
  }
  if (taxonomy.status === 200) drawTaxonomy(taxonomy.body);
  const h = state.helplines.find((x) => x.name === name);
  $('canned-language').replaceChildren(...(h?.languages || []).map((l) => el('option', { value: l, text: has(`lang.${l}`) ? t(`lang.${l}`) : l })));
  for (const id of ['hours-error', 'settings-error', 'canned-error', 'taxonomy-error']) $(id).textContent = '';
}

function drawHours(view) {
  $('hours-zone').value = view.hours.time_zone;
  $('hours-weekly').value = view.hours.weekly.map((s) => `${s.day} ${s.open}-${s.close}`).join('\n');
  $('hours-holidays').value = view.hours.holidays.join('\n');
  $('hours-now').textContent = view.always_open ? t('admin.hours.always') : view.open_now ? t('admin.hours.openNow') : t('admin.hours.closedNow');
}

/** The spans typed, one a line (`mon 08:00-20:00`, or `mon-fri 08:00-20:00`); null when a line is not one. */
function parseSpans(text) {
  const spans = [];
  for (const line of text.split('\n').map((l) => l.trim().toLowerCase()).filter(Boolean)) {
    const m = /^([a-z]{3})(?:\s*-\s*([a-z]{3}))?\s+(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})$/.exec(line);
    if (!m) return null;
    const from = DAYS.indexOf(m[1]);
    const to = m[2] ? DAYS.indexOf(m[2]) : from;
    if (from < 0 || to < from) return null;
    for (let d = from; d <= to; d += 1) spans.push({ day: DAYS[d], open: m[3].padStart(5, '0'), close: m[4].padStart(5, '0') });
  }
  return spans;
}

async function onSaveHours(event) {
  event.preventDefault();
  $('hours-error').textContent = '';
  const weekly = parseSpans($('hours-weekly').value);
  if (weekly === null) {
    $('hours-error').textContent = t('admin.hours.badSpan');
    $('hours-weekly').focus();
    return;
  }
  const holidays = $('hours-holidays').value.split('\n').map((l) => l.trim()).filter(Boolean);
  const body = { time_zone: $('hours-zone').value.trim() || 'UTC', weekly, holidays };
  const res = await api(`/api/v1/helplines/${encodeURIComponent(state.helpline)}/hours`, { method: 'PUT', body });
  if (res.status !== 200) {
    $('hours-error').textContent = refusal(res);
    return;
  }
  drawHours(res.body);
  notice(t('admin.hours.saved', { helpline: helplineName(state.helpline) }));
}

async function onSaveSettings(event) {
  event.preventDefault();
  $('settings-error').textContent = '';
  const triage = $('settings-triage').value.trim();
  const body = {
    wrapup_limit_ms: Math.round(Number($('settings-wrapup').value || 0) * 1000),
    away_reasons: list($('settings-away').value),
    triage_priority: triage ? Number(triage) : null,
  };
  const res = await api(`/api/v1/helplines/${encodeURIComponent(state.helpline)}/settings`, { method: 'PUT', body });
  if (res.status !== 200) {
    $('settings-error').textContent = refusal(res);
    return;
  }
  notice(t('admin.settings.saved', { helpline: helplineName(state.helpline) }));
}

function drawCanned() {
  $('canned-list').replaceChildren(
    ...state.canned.map((c) => {
      const remove = el('button', { type: 'button', class: 'secondary small', text: t('admin.remove'), 'aria-label': t('admin.canned.removeNamed', { title: c.title }) });
      remove.addEventListener('click', async () => {
        const res = await api(`/api/v1/canned-responses/${encodeURIComponent(c.id)}`, { method: 'DELETE' });
        if (res.status !== 204) return notice(refusal(res), true);
        await loadHelpline();
        return undefined;
      });
      return el('li', {}, el('span', { class: 'item-text' }, el('strong', { text: `${c.title} ` }), el('span', { class: 'muted', text: `(${c.language}) ` }), c.body), remove);
    }),
  );
  if (!state.canned.length) $('canned-list').append(el('li', { class: 'empty', text: t('admin.canned.none') }));
}

async function onAddCanned(event) {
  event.preventDefault();
  $('canned-error').textContent = '';
  const body = { helpline: state.helpline, language: $('canned-language').value, title: $('canned-title').value.trim(), body: $('canned-body').value.trim() };
  if (!body.title || !body.body) {
    $('canned-error').textContent = t('admin.canned.missing');
    return;
  }
  const res = await api('/api/v1/canned-responses', { method: 'POST', body });
  if (res.status !== 201) {
    $('canned-error').textContent = refusal(res);
    return;
  }
  $('canned-form').reset();
  notice(t('admin.canned.added', { title: body.title }));
  await loadHelpline();
}

function drawTaxonomy(taxonomy) {
  $('taxonomy-text').value = taxonomy.categories.map((c) => `${c.code} | ${c.label}`).join('\n');
  $('taxonomy-state').textContent = taxonomy.own_categories ? t('admin.taxonomy.own') : t('admin.taxonomy.builtin');
}

async function onSaveTaxonomy(event) {
  event.preventDefault();
  $('taxonomy-error').textContent = '';
  const categories = [];
  for (const line of $('taxonomy-text').value.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const at = line.indexOf('|');
    if (at < 0) {
      $('taxonomy-error').textContent = t('admin.taxonomy.badLine', { line });
      return;
    }
    categories.push({ code: line.slice(0, at).trim(), label: line.slice(at + 1).trim() });
  }
  const res = await api(`/api/v1/helplines/${encodeURIComponent(state.helpline)}/taxonomy`, { method: 'PUT', body: { categories } });
  if (res.status !== 200) {
    $('taxonomy-error').textContent = refusal(res);
    return;
  }
  drawTaxonomy(res.body);
  notice(t('admin.taxonomy.saved', { helpline: helplineName(state.helpline) }));
}

// ----- telephony ----------------------------------------------------------------------

async function loadTelephony() {
  const [numbers, gateways] = await Promise.all([api('/api/v1/dialled-numbers'), api('/api/v1/gateways')]);
  if (numbers.status === 200) state.numbers = numbers.body.numbers;
  if (gateways.status === 200) state.gateways = gateways.body.gateways;
  drawTelephony();
}

function drawTelephony() {
  $('numbers-list').replaceChildren(
    ...state.numbers.map((n) => {
      const remove = el('button', { type: 'button', class: 'secondary small', text: t('admin.remove'), 'aria-label': t('admin.numbers.removeNamed', { number: n.number }) });
      remove.addEventListener('click', async () => {
        const res = await api(`/api/v1/dialled-numbers/${encodeURIComponent(n.number)}`, { method: 'DELETE' });
        if (res.status !== 204) return notice(refusal(res), true);
        await loadTelephony();
        return undefined;
      });
      return el('li', {}, el('span', { class: 'item-text', text: `${n.number} → ${helplineName(n.helpline)}` }), remove);
    }),
  );
  $('gateways-list').replaceChildren(
    ...state.gateways.map((g) => {
      const item = el('li', {}, el('span', { class: 'item-text', text: `${g.name} — ${g.revoked_at ? t('admin.gateways.revoked') : t('admin.gateways.active')}` }));
      if (!g.revoked_at) {
        const revoke = el('button', { type: 'button', class: 'secondary small', text: t('admin.gateways.revoke'), 'aria-label': t('admin.gateways.revokeNamed', { name: g.name }) });
        revoke.addEventListener('click', async () => {
          const res = await api(`/api/v1/gateways/${encodeURIComponent(g.name)}/revoke`, { method: 'POST' });
          if (res.status !== 204) return notice(refusal(res), true);
          notice(t('admin.gateways.revokedNamed', { name: g.name }));
          await loadTelephony();
          return undefined;
        });
        item.append(revoke);
      }
      return item;
    }),
  );
}

async function onSaveNumber(event) {
  event.preventDefault();
  $('number-error').textContent = '';
  const number = $('number-value').value.trim();
  if (!number) {
    $('number-error').textContent = t('admin.numbers.missing');
    return;
  }
  const res = await api(`/api/v1/dialled-numbers/${encodeURIComponent(number)}`, { method: 'PUT', body: { helpline: $('number-helpline').value } });
  if (res.status !== 200) {
    $('number-error').textContent = refusal(res);
    return;
  }
  $('number-value').value = '';
  await loadTelephony();
}

async function onAddGateway(event) {
  event.preventDefault();
  $('gateway-error').textContent = '';
  const res = await api('/api/v1/gateways', { method: 'POST', body: { name: $('gateway-name').value.trim() } });
  if (res.status !== 201) {
    $('gateway-error').textContent = refusal(res);
    return;
  }
  $('gateway-name').value = '';
  $('gateway-token-value').textContent = res.body.token;
  $('gateway-token').hidden = false;
  await loadTelephony();
}

// ----- services -----------------------------------------------------------------------

async function loadServices() {
  const res = await api('/api/v1/services');
  if (res.status !== 200) return notice(refusal(res), true);
  state.services = res.body.services;
  $('services-list').replaceChildren(
    ...state.services.map((s) => el('li', {}, el('span', { class: 'item-text', text: `${s.name} — ${s.district} — ${t('admin.services.free', { free: s.capacity - s.in_use, capacity: s.capacity })}` }))),
  );
  return undefined;
}

async function onAddService(event) {
  event.preventDefault();
  $('service-error').textContent = '';
  const body = {
    name: $('service-name').value.trim(),
    kind: $('service-kind').value,
    district: $('service-district').value.trim(),
    capacity: Number($('service-capacity').value || 0),
    admission_24_7: $('service-always').checked,
    helplines: checked('service-helplines'),
  };
  const res = await api('/api/v1/services', { method: 'POST', body });
  if (res.status !== 201 && res.status !== 200) {
    $('service-error').textContent = refusal(res);
    return;
  }
  $('service-form').reset();
  notice(t('admin.services.added', { name: body.name }));
  await loadServices();
}

// ----- sign in and out ----------------------------------------------------------------

function onLogin(event) {
  return submitLogin(event, (body) => {
    if (body.user?.role !== 'admin') return t('admin.notAdmin');
    signedIn(body.access_token, body.user);
    return null;
  });
}

async function signedIn(token, user) {
  await showSignedIn(state, TOKEN_KEY, 'admin', token, user);
  drawHelplineChoices();
  $('service-kind').replaceChildren(...SERVICE_KINDS.map((k) => el('option', { value: k, text: has(`admin.kind.${k}`) ? t(`admin.kind.${k}`) : k })));
  checks('service-helplines', 'sv', []);
  showTab(state.tab);
}

async function resumeSession(token) {
  const res = await apiCall(token, '/api/v1/me');
  if (res.status === 200 && res.body?.role === 'admin') {
    await signedIn(token, res.body);
    return;
  }
  forgetToken(TOKEN_KEY);
  $('username').focus();
}

function signOut(message) {
  if (!message) revokeToken(state.token);
  state.token = null;
  state.me = null;
  state.accounts = [];
  state.editing = undefined;
  forgetToken(TOKEN_KEY);
  $('accounts').replaceChildren();
  $('account-panel').hidden = true;
  $('gateway-token').hidden = true;
  $('reset-result').hidden = true;
  $('admin').hidden = true;
  $('me-name').hidden = true;
  $('signout').hidden = true;
  showLogin(message);
}

function redraw() {
  translatePage();
  if (!state.token) return;
  drawAccounts();
  drawHelplineChoices();
  drawCanned();
  drawTelephony();
}

function init() {
  mountLogin();
  initLocale(() => state.token);
  onLocaleChange(redraw);
  $('login-form').addEventListener('submit', onLogin);
  $('signout').addEventListener('click', () => signOut(''));
  for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => showTab(b.dataset.tab));
  $('account-new').addEventListener('click', () => openAccount(null));
  $('account-form').addEventListener('submit', onSaveAccount);
  $('account-reset').addEventListener('click', onReset);
  $('account-unlock').addEventListener('click', onUnlock);
  $('account-cancel').addEventListener('click', () => {
    $('account-panel').hidden = true;
    state.editing = undefined;
  });
  $('helpline-choice').addEventListener('change', loadHelpline);
  $('hours-form').addEventListener('submit', onSaveHours);
  $('settings-form').addEventListener('submit', onSaveSettings);
  $('canned-form').addEventListener('submit', onAddCanned);
  $('taxonomy-form').addEventListener('submit', onSaveTaxonomy);
  $('number-form').addEventListener('submit', onSaveNumber);
  $('gateway-form').addEventListener('submit', onAddGateway);
  $('service-form').addEventListener('submit', onAddService);
  translatePage();
  const saved = savedToken(TOKEN_KEY);
  if (saved) resumeSession(saved);
  else $('username').focus();
}

init();
