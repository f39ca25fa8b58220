// Shared by the staff pages only (the counsellor console, the supervisors' dashboard and the case managers'
// workspace; never the caller
// widget): the sign-in form, the access token in this tab's sessionStorage, the connection chip, and the
// socket that asks for a fresh one-time ticket before each connect.
//
// The access token is kept in memory and in this tab's sessionStorage (so a reload does not sign out; it is
// gone when the tab closes or on Sign out). Never cookies or localStorage. Access tokens are short (15
// minutes): a minute before one expires, the page trades its refresh token (single use, rotated every
// time) for a new pair at /api/v1/auth/refresh and puts the new access token in the page's `state.token`.

import { $, el, LiveSocket } from './common.js';
import { t, has, locale, setLocale, startingLocale, onLocaleChange, supported, formatDateTime } from './staff-i18n.js';

export const LANGUAGES = { ro: 'Romanian', ru: 'Russian', uk: 'Ukrainian', en: 'English' };

/** A language's name in the page's language ("Romanian", "română", "румынский"…). */
export function languageName(code) {
  return has(`lang.${code}`) ? t(`lang.${code}`) : LANGUAGES[code] || code;
}

// ----- the language of the page -----------------------------------------------------

/** Whether the language was chosen on this device (not only guessed from the browser). */
let chosenHere = false;

/**
 * Starts the page in the last language chosen on this device (else the browser's), and wires the header's
 * selector `#ui-locale`: a choice switches the page at once and, when signed in (`token()`), is kept with
 * the account (`PUT /api/v1/me/locale`).
 */
export function initLocale(token) {
  try {
    chosenHere = Boolean(supported(localStorage.getItem('helpline.staff.locale')));
  } catch {
    chosenHere = false;
  }
  setLocale(startingLocale(), { remember: false });
  const select = $('ui-locale');
  if (!select) return;
  select.value = locale();
  onLocaleChange((l) => {
    select.value = l;
  });
  select.addEventListener('change', async () => {
    chosenHere = true;
    setLocale(select.value);
    if (token()) await saveLocale(token(), select.value);
  });
}

/** Keeps the language with the account; says so when it could not be kept. */
async function saveLocale(token, l) {
  const res = await apiCall(token, '/api/v1/me/locale', { method: 'PUT', body: { locale: l } });
  if (res.status !== 200) {
    const notice = $('notice');
    if (notice) {
      notice.classList.add('error');
      notice.textContent = t('locale.notSaved');
    }
  }
  return res.status === 200;
}

/**
 * Signed in (or a reload resumed the session): the page takes the account's language; an account that has
 * none yet keeps the one chosen on this device's sign-in screen.
 */
export function localeSignedIn(token, user) {
  if (supported(user?.locale)) setLocale(user.locale);
  else if (chosenHere) saveLocale(token, locale());
}

// ----- the sign-in form ---------------------------------------------------------

/** Puts the sign-in section (hidden again once signed in) at the start of `<main>`. */
export function mountLogin() {
  const field = (id, key, input) => el('div', { class: 'field' }, el('label', { for: id, text: t(key), dataset: { i18n: key } }), input);
  const username = el('input', { id: 'username', type: 'text', name: 'username', autocomplete: 'username', required: true });
  username.setAttribute('autocapitalize', 'none');
  username.setAttribute('spellcheck', 'false');
  const password = el('input', { id: 'password', type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  // The second factor: asked for only when the server answers `totp_required` or `totp_enrolment_required`.
  const code = el('input', { id: 'totp-code', type: 'text', name: 'totp-code', autocomplete: 'one-time-code', inputMode: 'numeric' });
  code.setAttribute('spellcheck', 'false');
  const codeField = field('totp-code', 'login.code', code);
  codeField.id = 'totp-field';
  codeField.hidden = true;
  const enrol = el('div', { id: 'totp-enrol', class: 'totp-enrol', hidden: true });
  const section = el(
    'section',
    { id: 'login-screen', class: 'login', 'aria-labelledby': 'login-heading' },
    el('h2', { id: 'login-heading', text: t('login.heading'), dataset: { i18n: 'login.heading' } }),
    el(
      'form',
      { id: 'login-form', noValidate: true },
      field('username', 'login.username', username),
      field('password', 'login.password', password),
      enrol,
      codeField,
      el('p', { id: 'login-error', class: 'error', role: 'alert' }),
      el('button', { id: 'login', type: 'submit', text: t('login.submit'), dataset: { i18n: 'login.submit' } }),
    ),
  );
  $('main').prepend(section);
}

/**
 * Handles the sign-in form's submit. `done(body)` gets the server's answer (`access_token`, `user`) and
 * returns a message to show when this page will not take it (nothing when it signed in).
 */
export async function submitLogin(event, done) {
  event.preventDefault();
  const username = $('username').value.trim();
  const password = $('password').value;
  const code = $('totp-code').value.trim();
  const error = $('login-error');
  error.textContent = '';
  if (!username || !password) {
    error.textContent = t('login.missing');
    return;
  }
  if (!$('totp-field').hidden && !code) {
    error.textContent = t('login.codeMissing');
    $('totp-code').focus();
    return;
  }
  $('login').disabled = true;
  try {
    const request = { username, password };
    if (!$('totp-field').hidden) request.totp_code = code;
    const res = await fetch('/api/v1/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request),
      cache: 'no-store',
    });
    if (res.status === 401) {
      const answer = await res.json().catch(() => ({}));
      if (answer.code === 'totp_required') {
        askForCode(t('login.askCode'));
      } else if (answer.code === 'totp_enrolment_required') {
        await enrolSecondFactor(username, password);
      } else {
        error.textContent = request.totp_code ? t('login.wrongCode') : t('login.wrong');
        if (request.totp_code) $('totp-code').select();
        else $('password').select();
      }
      return;
    }
    if (res.status === 429) {
      const answer = await res.json().catch(() => ({}));
      // The server's message says how long is left, in English: other languages get the catalogue's words.
      error.textContent = (locale() === 'en' && answer.message) || t('login.locked');
      return;
    }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = await res.json();
    $('password').value = '';
    $('totp-code').value = '';
    $('totp-field').hidden = true;
    $('totp-enrol').hidden = true;
    $('totp-enrol').replaceChildren();
    session.pending = body;
    // Case managers land on their workspace (docs/cases.md "The workspace"), whichever staff page they
    // signed in on: the tokens are handed over in this tab's sessionStorage.
    if (body.user?.role === 'case_manager' && location.pathname !== CASES_PAGE) {
      saveToken(CASES_TOKEN_KEY, body.access_token);
      location.assign(CASES_PAGE);
      return;
    }
    // Admins who sign in on the counsellor console land on the admin page (docs/admin.md): the console
    // is not theirs. On the dashboard they stay (they supervise every helpline).
    if (body.user?.role === 'admin' && location.pathname === CONSOLE_PAGE) {
      saveToken(ADMIN_TOKEN_KEY, body.access_token);
      location.assign(ADMIN_PAGE);
      return;
    }
    const refused = done(body);
    if (refused) error.textContent = refused;
    else if (Array.isArray(body.recovery_codes)) showRecoveryCodes(body.recovery_codes);
  } catch {
    error.textContent = t('login.unreachable');
  } finally {
    $('login').disabled = false;
  }
}

/** Shows the code field, with why. */
function askForCode(message) {
  $('totp-field').hidden = false;
  $('login-error').textContent = message;
  $('totp-code').focus();
}

/** The account must set up a second factor: asks the server for a secret and shows it to add to an app. */
async function enrolSecondFactor(username, password) {
  const res = await fetch('/api/v1/auth/totp/enrol', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
    cache: 'no-store',
  });
  if (!res.ok) {
    const answer = await res.json().catch(() => ({}));
    $('login-error').textContent = (locale() === 'en' && answer.message) || t('login.enrolFailed');
    return;
  }
  const { secret, otpauth_uri: uri } = await res.json();
  $('totp-enrol').replaceChildren(
    el('p', { text: t('login.enrolIntro'), dataset: { i18n: 'login.enrolIntro' } }),
    el('p', {}, el('a', { id: 'totp-uri', href: uri, text: t('login.enrolLink'), dataset: { i18n: 'login.enrolLink' } })),
    el('p', {}, el('span', { text: t('login.enrolKey'), dataset: { i18n: 'login.enrolKey' } }), ' ', el('code', { id: 'totp-secret', text: secret })),
  );
  $('totp-enrol').hidden = false;
  askForCode(t('login.enrolAsk'));
}

/** After an enrolment: the recovery codes, shown once, until the person says they have kept them. */
function showRecoveryCodes(codes) {
  const done = el('button', { id: 'recovery-codes-done', type: 'button', text: t('login.recoveryDone'), dataset: { i18n: 'login.recoveryDone' } });
  const section = el(
    'section',
    { id: 'recovery-codes', class: 'login', role: 'dialog', 'aria-labelledby': 'recovery-heading' },
    el('h2', { id: 'recovery-heading', text: t('login.recoveryHeading'), dataset: { i18n: 'login.recoveryHeading' } }),
    el('p', { text: t('login.recoveryIntro'), dataset: { i18n: 'login.recoveryIntro' } }),
    el('ul', { id: 'recovery-list' }, ...codes.map((c) => el('li', {}, el('code', { text: c })))),
    done,
  );
  done.addEventListener('click', () => section.remove());
  $('main').prepend(section);
  done.focus();
}

/** Back to the sign-in form, with why (or nothing). */
export function showLogin(message) {
  $('login-screen').hidden = false;
  $('login-error').textContent = message || '';
  $('username').focus();
}

// ----- the token ------------------------------------------------------------------

/** The case managers' workspace and the key its token is kept under in this tab. */
export const CASES_PAGE = '/cases';
export const CASES_TOKEN_KEY = 'helpline.cases.token';
/** The admin page and the key its token is kept under in this tab; the console admins are sent away from. */
export const ADMIN_PAGE = '/admin';
export const ADMIN_TOKEN_KEY = 'helpline.admin.token';
const CONSOLE_PAGE = '/agent';

/** This page's session: where its tokens are kept, the refresh token, when the access token expires. */
const session = { key: null, refresh: null, expiresAt: 0, timer: null, state: null, inflight: null, pending: null };

/** Refresh this long before the access token expires. */
const REFRESH_AHEAD_MS = 60_000;

function store(key, value) {
  try {
    if (value === null) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, value);
  } catch {
    /* memory only */
  }
}

function stored(key) {
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

/** Keeps a fresh pair of tokens (from a login or a refresh) and plans the next refresh. */
function keep(body) {
  session.refresh = body.refresh_token || null;
  session.expiresAt = Date.now() + (Number(body.expires_in) || 0) * 1000;
  if (session.key) {
    store(`${session.key}.refresh`, session.refresh);
    store(`${session.key}.expires`, String(session.expiresAt));
  }
  plan();
}

/** Sets the timer for the next refresh (a minute before expiry; at once if that is past). */
function plan() {
  clearTimeout(session.timer);
  if (!session.refresh || !session.state) return;
  const wait = Math.max(1000, session.expiresAt - Date.now() - REFRESH_AHEAD_MS);
  session.timer = setTimeout(() => refreshNow(), wait);
}

/**
 * Trades the refresh token for a new pair; resolves true when the page has a fresh access token. Several
 * callers at once share one request (a refresh token is single use: a second request would be a reuse).
 */
export function refreshNow() {
  if (session.inflight) return session.inflight;
  if (!session.refresh) return Promise.resolve(false);
  session.inflight = (async () => {
    try {
      const res = await fetch('/api/v1/auth/refresh', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refresh_token: session.refresh }),
        cache: 'no-store',
      });
      if (res.status === 401) {
        // The login is over (expired, signed out, disabled): the next request signs the page out.
        session.refresh = null;
        if (session.key) store(`${session.key}.refresh`, null);
        return false;
      }
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const body = await res.json();
      if (session.state) session.state.token = body.access_token;
      if (session.key) store(session.key, body.access_token);
      keep(body);
      return true;
    } catch {
      // Offline for a moment: try again shortly, while the refresh token lasts.
      clearTimeout(session.timer);
      session.timer = setTimeout(() => refreshNow(), 15_000);
      return false;
    } finally {
      session.inflight = null;
    }
  })();
  return session.inflight;
}

/** A page without a staff socket (the workspace) keeps its access token fresh the same way: `state.token`. */
export function keepFresh(state) {
  session.state = state;
  plan();
}

// A staff page signed in: the session kept (its token saved under `tokenKey`, refreshed before it
// expires), the page's language set from the account, the sign-in screen swapped for `mainId`, and
// the helplines fetched (an empty list if they cannot be read). Used by the workspace and admin pages.
export async function showSignedIn(state, tokenKey, mainId, token, user) {
  state.token = token;
  state.me = user;
  saveToken(tokenKey, token);
  keepFresh(state);
  localeSignedIn(token, user);
  document.getElementById('me-name').textContent = user.display_name;
  document.getElementById('login-screen').hidden = true;
  document.getElementById(mainId).hidden = false;
  document.getElementById('me-name').hidden = false;
  document.getElementById('signout').hidden = false;
  const lines = await fetch('/api/v1/helplines', { cache: 'no-store' }).then((r) => (r.ok ? r.json() : [])).catch(() => []);
  state.helplines = Array.isArray(lines) ? lines : [];
}

export function saveToken(key, token) {
  store(key, token);
  session.key = key;
  if (session.pending && session.pending.access_token === token) {
    keep(session.pending);
    session.pending = null;
  } else if (!session.refresh) {
    // A reload: the refresh token kept in this tab.
    session.refresh = stored(`${key}.refresh`);
    session.expiresAt = Number(stored(`${key}.expires`)) || 0;
    plan();
  }
}

export function savedToken(key) {
  return stored(key);
}

/** Tells the server to void this token and close this account's sockets (Sign out). Best effort: the
 * page forgets the token either way. `keepalive` lets the request finish while the page changes. */
export function revokeToken(token) {
  if (!token) return;
  fetch('/api/v1/auth/logout', { method: 'POST', headers: { authorization: `Bearer ${token}` }, keepalive: true }).catch(() => {});
}

export function forgetToken(key) {
  for (const k of [key, `${key}.refresh`, `${key}.expires`]) store(k, null);
  clearTimeout(session.timer);
  session.refresh = null;
  session.expiresAt = 0;
}

// ----- the socket ---------------------------------------------------------------

/** The connection chip in the top bar. */
export function setConn(s, onlineLabel) {
  const c = $('conn');
  c.dataset.state = s;
  c.textContent = { online: onlineLabel, connecting: t('conn.connecting'), lost: t('conn.reconnecting') }[s];
}

/** A one-time ticket for the socket (the token itself never goes in a URL). Throws `unauthorized` on 401. */
async function ticket(token) {
  const res = await fetch('/api/v1/ws-ticket', {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    cache: 'no-store',
  });
  if (res.status === 401) {
    const e = new Error('unauthorized');
    e.unauthorized = true;
    throw e;
  }
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return (await res.json()).ticket;
}

/**
 * The staff socket at `path` (/ws/agent, /ws/supervisor) for `state` (`token`, `signingOut`): a fresh
 * ticket before each connect; an expired session or a disabled account signs out (`signOut(message)`);
 * otherwise it reconnects by itself. `onlineLabel` is what the chip says when connected; the other options
 * go to LiveSocket.
 */
export function staffSocket({ path, state, signOut, onlineLabel, ...options }) {
  session.state = state;
  plan();
  return new LiveSocket({
    ...options,
    active: () => !state.signingOut && Boolean(state.token),
    onConnecting: (retries) => setConn(retries ? 'lost' : 'connecting', onlineLabel),
    path: async () => {
      try {
        return `${path}?ticket=${encodeURIComponent(await ticket(state.token))}`;
      } catch (e) {
        // An access token that expired while the laptop slept: refresh once, then try again.
        if (!e.unauthorized || !(await refreshNow())) throw e;
        return `${path}?ticket=${encodeURIComponent(await ticket(state.token))}`;
      }
    },
    onPathError: (e) => {
      if (!e.unauthorized) return false;
      signOut(t('session.expired'));
      return true;
    },
    onClose: (e) => {
      if (e.code !== 4003) return false;
      signOut(t('session.revoked'));
      return true;
    },
    onLost: () => {
      setConn('lost', onlineLabel);
      options.onLost?.();
    },
  });
}

// ----- the REST API ---------------------------------------------------------------

/**
 * Calls the REST API with the access token: `{ status, body }` (body parsed when JSON, else null).
 * A network failure answers status 0, so callers say "not reachable" and try again.
 */
export async function apiCall(token, path, { method = 'GET', body } = {}) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  try {
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    let parsed = null;
    if ((res.headers.get('content-type') || '').startsWith('application/json')) {
      try {
        parsed = await res.json();
      } catch {
        parsed = null;
      }
    }
    return { status: res.status, body: parsed };
  } catch {
    return { status: 0, body: null };
  }
}

/** The words for a code from the casework vocabularies: `person_concerned` → "Person concerned". */
export function codeLabel(code) {
  const special = {
    '0_9': '0–9', '10_14': '10–14', '15_17': '15–17', '18_24': '18–24', '25_59': '25–59', '60_plus': '60 and over',
    emergency_placement: 'Emergency placement', child_protection: 'Child protection',
    emergency_services: 'Emergency services (police or ambulance called)',
    family_violence_centre: 'Assistance and protection centre (family violence)', maternal_centre: 'Maternal centre',
    community_home_children: 'Community home for children', family_type_home: 'Family-type children’s home',
    elderly_disability_centre: 'Placement centre (elderly, disability)',
    case_file: 'case file', monitoring_review: 'monitoring review',
  };
  if (special[code]) return special[code];
  const words = String(code || '').replaceAll('_', ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** A date and time for deadlines: "Tue 24 Nov, 14:05" (in the page's language: staff-i18n.js). */
export function dateTime(at) {
  return formatDateTime(at);
}
