// The supervisors' dashboard: the live board (waiting callers, service level, counsellors), alerts,
// and interventions (move to front, offer to, transfer, monitor, whisper, join and write, set a
// counsellor's status).
//
// The access token is kept in memory and in this tab's sessionStorage, as in the console. The board
// comes over /ws/supervisor once a second; between frames the waiting times and times in state are
// counted on in the page, so they tick smoothly. The chart of today by hour comes from the reports
// endpoint, once a minute. Alerts are acknowledged in this page only (nothing is sent to the server).
// When the socket drops, the page reconnects by itself with a fresh ticket and watches again what it
// was watching.
//
// `?wall=1` (or the Wall mode button) hides every control: large type for a screen on the wall.
//
// Caller and counsellor text is always put into the page with textContent, never as HTML.

import { $, el, newClientId, setBanner, bannerBackOnline, placeInLog, highestSeq, onEnter } from './common.js';
import { languageName, mountLogin, submitLogin, showLogin, saveToken, savedToken, forgetToken, revokeToken, setConn, staffSocket } from './staff.js';
// Every word on the page comes from the staff catalogue (staff-i18n.js), in the account's language.
import { t, has, formatTime, formatPercent, formatNumber, onLocaleChange, translatePage } from './staff-i18n.js';
// A helpline's name in the page's language, for the helplines the widget knows (else the server's name).
import { HELPLINE_NAMES } from './chat-i18n.js';
import { locale } from './staff-i18n.js';
import { initLocale, localeSignedIn } from './staff.js';
// Casework (escalations to acknowledge, case deadlines): see supervisor-cases.js.
import { initCases, casesOnline, casesSignedOut, casesRedraw, onEscalation } from './supervisor-cases.js';
// Sign-in lockouts (failed logins): see supervisor-lockouts.js.
import { lockoutsOnline, lockoutsSignedOut, lockoutsRedraw } from './supervisor-lockouts.js';
// Blocked callers, and lifting a block: see supervisor-blocks.js.
import { initBlocks, blocksOnline, blocksSignedOut, blocksRedraw } from './supervisor-blocks.js';
// Wall lists that do not fit end with "+N more".
import { initWallFit } from './supervisor-wall.js';

const TOKEN_KEY = 'helpline.supervisor.token';
const PING_EVERY_MS = 15000;
/** The board comes every second: this long without any frame means the socket is dead. */
const SILENT_LIMIT_MS = 10000;
/** The board is marked as stale after this long without a new one. */
const STALE_MS = 3000;
const CHART_EVERY_MS = 60000;
/** A waiting row turns amber, then red, after these waits (or sooner, when the server's alerts say so). */
const AMBER_MS = 10000;
const RED_MS = 15000;
const MAX_ALERTS = 100;
/** Supervisors' own messages carry this client_id prefix, so the console can tell them from its own. */
const CLIENT_PREFIX = 'sup-';
/** The counsellors' groups, by the board's `state`. */
const STATES = ['available', 'busy', 'wrap_up', 'away', 'offline'];
/** What a supervisor may set a counsellor's status to (`set_status`). */
const STATUSES = ['available', 'away', 'offline'];
const SVG = 'http://www.w3.org/2000/svg';

const state = {
  token: null,
  me: null,
  signingOut: false,
  /** performance.now() when the last board arrived */
  boardAt: 0,
  board: null,
  /** helpline name -> its card (see helplineCard()) */
  cards: new Map(),
  /** user_id -> latest counsellor entry of the board */
  counsellors: new Map(),
  /** user_id -> { el, entry } */
  counsellorRows: new Map(),
  /** user_id -> the status asked for with set_status, until the server answers */
  statusAsked: new Map(),
  /** contact_id -> 1 (wait_10s seen) or 2 (wait_15s seen) */
  alertLevel: new Map(),
  alerts: [],
  alertSeq: 0,
  /** contact_id -> monitor pane (see monitorPane()) */
  monitors: new Map(),
  chartTimer: null,
  wall: false,
};

// ----- small helpers ----------------------------------------------------------

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') node.textContent = v;
    else node.setAttribute(k, String(v));
  }
  node.append(...children);
  return node;
}

/**
 * A helpline's name in the page's language: the widget's names of the known helplines, else the name
 * the server gave (`fallback`, e.g. a frame's `helpline_name`, or the board's), else its code.
 */
function helplineName(name, fallback) {
  const own = locale() === 'en' ? null : HELPLINE_NAMES[name]?.[locale()];
  return own || state.cards.get(name)?.displayName || fallback || name || '';
}

/** A counsellor's display name: from the board, else the name a frame carried, else "a counsellor". */
function counsellorName(id, fallback) {
  return state.counsellors.get(id)?.display_name || fallback || t('someone.counsellor');
}

/** 0:07, 1:23, 12:05: minutes and seconds, for waits. */
function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** 45 s, 3 min, 1 h 20 min: for times in a state. */
function span(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return t('dur.s', { n: s });
  const m = Math.floor(s / 60);
  if (m < 60) return t('dur.min', { n: m });
  return t('dur.hmin', { h: Math.floor(m / 60), m: m % 60 });
}

function pct(ratio) {
  return formatPercent(ratio);
}

function seconds(ms) {
  return ms == null ? '–' : t('dur.s', { n: Math.round(ms / 1000) });
}

function timeOf(at) {
  return formatTime(at, { seconds: true });
}

function shortId(id) {
  return id.slice(-6);
}

/** A short visible (and announced) line about what just happened. */
function notice(text, error = false) {
  const n = $('notice');
  n.classList.toggle('error', error);
  n.textContent = text;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => {
    if (n.textContent === text) n.textContent = '';
  }, 8000);
}

function updateTitle() {
  const n = state.alerts.filter((a) => !a.acked).length;
  document.title = n ? t('app.titleCount', { n }) : t('app.title');
  const badge = $('alert-count');
  badge.hidden = !n;
  badge.textContent = n ? t('alert.count', { n }) : '';
}

// ----- wall mode --------------------------------------------------------------

function setWall(on) {
  state.wall = on;
  document.body.classList.toggle('wall', on);
  $('wall').setAttribute('aria-pressed', String(on));
  $('wall').textContent = on ? t('wall.off') : t('wall.on');
  const url = new URL(location.href);
  if (on) url.searchParams.set('wall', '1');
  else url.searchParams.delete('wall');
  history.replaceState(null, '', url);
}

// ----- sign in and out ----------------------------------------------------------

function mayUse(user) {
  return user && (user.role === 'supervisor' || user.role === 'admin');
}

function onLogin(event) {
  return submitLogin(event, (body) => {
    if (!mayUse(body.user)) return t('login.notSupervisor');
    signedIn(body.access_token, body.user);
    return null;
  });
}

function signedIn(token, user) {
  state.token = token;
  state.me = user;
  state.signingOut = false;
  saveToken(TOKEN_KEY, token);
  // The account's language (or, when it has none yet, the one chosen on the sign-in screen, kept with it).
  localeSignedIn(token, user);
  $('me-name').textContent = user.display_name;
  $('login-screen').hidden = true;
  $('board').hidden = false;
  for (const id of ['me-name', 'conn', 'updated', 'signout']) $(id).hidden = false;
  socket.connect();
  loadCharts();
  casesOnline();
  lockoutsOnline(() => state.token);
  blocksOnline();
  clearInterval(state.chartTimer);
  state.chartTimer = setInterval(loadCharts, CHART_EVERY_MS);
}

async function resumeSession(token) {
  try {
    const res = await fetch('/api/v1/me', { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' });
    if (res.ok) {
      const user = await res.json();
      if (mayUse(user)) {
        signedIn(token, user);
        return;
      }
    }
  } catch {
    /* sign in again */
  }
  forgetToken(TOKEN_KEY);
  $('username').focus();
}

function signOut(message) {
  // A chosen sign-out (no message) also voids the token on the server; a forced one (expired, disabled) has nothing left to void.
  if (!message) revokeToken(state.token);
  state.signingOut = true;
  clearInterval(state.chartTimer);
  socket.close(1000);
  state.token = null;
  state.me = null;
  forgetToken(TOKEN_KEY);
  for (const m of state.monitors.values()) m.section.remove();
  state.monitors.clear();
  for (const c of state.cards.values()) c.section.remove();
  state.cards.clear();
  for (const r of state.counsellorRows.values()) r.el.remove();
  state.counsellorRows.clear();
  state.counsellors.clear();
  state.statusAsked.clear();
  $('counsellor-groups').replaceChildren();
  state.alerts = [];
  $('alert-list').replaceChildren();
  state.board = null;
  casesSignedOut();
  lockoutsSignedOut();
  blocksSignedOut();
  refreshEmpty();
  updateTitle();
  setBanner('');
  $('board').hidden = true;
  for (const id of ['me-name', 'conn', 'updated', 'signout']) $(id).hidden = true;
  showLogin(message);
}

// ----- the socket -------------------------------------------------------------

/** The socket: a fresh ticket each time; when it drops, a banner, and it comes back by itself. */
const socket = staffSocket({
  path: '/ws/supervisor',
  state,
  signOut,
  get onlineLabel() {
    return t('conn.live');
  },
  silentMs: SILENT_LIMIT_MS,
  onOpen: () => {
    // Escalations that came while the socket was down are fetched again.
    if (socket.retries) casesOnline();
    // Watch again what was watched before the drop (the server forgets watchers with the socket).
    for (const m of state.monitors.values()) {
      if (!m.ended) {
        m.syncing = true;
        send({ type: 'monitor', contact_id: m.id });
      }
    }
  },
  onFrame: (f) => handle(f),
  onLost: () => setBanner(t('board.lost')),
});

function send(frame) {
  return socket.send(frame);
}

/** Sends an intervention, or says that it cannot go out now. */
function act(frame) {
  if (send(frame)) return true;
  notice(t('board.notSent'), true);
  return false;
}

function handle(f) {
  switch (f.type) {
    case 'dashboard':
      onBoard(f);
      break;
    case 'alert':
      onAlert(f);
      break;
    case 'escalation':
      onEscalation(f);
      break;
    case 'done':
      onDone(f);
      break;
    case 'monitoring':
      onMonitoring(f);
      break;
    case 'message':
      onMessage(f);
      break;
    case 'whisper':
      onWhisper(f);
      break;
    case 'ack':
      onAck(f);
      break;
    case 'contact_ended':
      onEnded(f.contact_id, f.reason);
      break;
    case 'error':
      onError(f);
      break;
    case 'reconnect':
      socket.lost();
      break;
    default:
      break;
  }
}

// ----- the board --------------------------------------------------------------

function onBoard(f) {
  bannerBackOnline(t('board.back'));
  socket.retries = 0;
  setConn('online', t('conn.live'));
  state.board = f;
  state.boardAt = performance.now();
  renderBoard(f);
}

/** Draws a board frame (a new one, or the last one again in another language). */
function renderBoard(f) {
  state.counsellors = new Map(f.counsellors.map((c) => [c.user_id, c]));
  const seen = new Set();
  for (const h of f.helplines) {
    seen.add(h.name);
    renderHelpline(helplineCard(h), h);
  }
  for (const [name, card] of state.cards) {
    if (!seen.has(name)) {
      card.section.remove();
      state.cards.delete(name);
    }
  }
  renderCounsellors(f.counsellors);
  for (const m of state.monitors.values()) renderMonitorHead(m);
  tick();
}

/** The card of a helpline (made on first sight). */
function helplineCard(h) {
  let card = state.cards.get(h.name);
  if (card) {
    card.displayName = h.display_name;
    return card;
  }
  const base = `hl-${h.name}`;
  card = { name: h.name, displayName: h.display_name, rows: new Map(), chart: null };
  card.heading = el('h2', { id: `${base}-h`, tabindex: '-1', text: helplineName(h.name, h.display_name) });
  card.slValue = el('p', { class: 'sl-value' });
  card.slTarget = el('p', { class: 'sl-target' });
  card.sl = el('div', { class: 'sl' }, el('p', { class: 'sl-label', dataset: { i18n: 'sl.label' }, text: t('sl.label') }), card.slValue, card.slTarget);
  card.stats = el('dl', { class: 'stats' });
  card.staff = el('p', { class: 'staff' });
  card.waitingCount = el('span', { class: 'waiting-count' });
  card.longest = el('dd', { class: 'longest' });
  card.empty = el('p', { class: 'empty', dataset: { i18n: 'queue.empty' }, text: t('queue.empty') });
  card.tbody = el('tbody');
  card.table = el(
    'table',
    { class: 'waiting', hidden: true },
    (card.caption = el('caption', { class: 'visually-hidden' })),
    el(
      'thead',
      {},
      el(
        'tr',
        {},
        el('th', { scope: 'col', dataset: { i18n: 'queue.place' }, text: t('queue.place') }),
        el('th', { scope: 'col', dataset: { i18n: 'queue.waiting' }, text: t('queue.waiting') }),
        el('th', { scope: 'col', dataset: { i18n: 'queue.caller' }, text: t('queue.caller') }),
        el('th', { scope: 'col', class: 'control', dataset: { i18n: 'queue.actions' }, text: t('queue.actions') }),
      ),
    ),
    card.tbody,
  );
  card.chartBox = el(
    'figure',
    { class: 'chart' },
    el('figcaption', { dataset: { i18n: 'chart.caption' }, text: t('chart.caption') }),
    el('p', { class: 'empty', dataset: { i18n: 'chart.loading' }, text: t('chart.loading') }),
  );
  card.section = el(
    'section',
    { class: 'helpline', 'aria-labelledby': card.heading.id, dataset: { helpline: h.name } },
    card.heading,
    el('div', { class: 'figures' }, card.sl, card.stats),
    card.staff,
    el('h3', { class: 'waiting-now' }, el('span', { dataset: { i18n: 'queue.waitingNow' }, text: t('queue.waitingNow') }), ' ', card.waitingCount),
    card.empty,
    card.table,
    card.chartBox,
  );
  state.cards.set(h.name, card);
  // Keep the board's order of helplines.
  $('helplines').append(card.section);
  loadChart(card);
  return card;
}

function renderHelpline(card, h) {
  card.heading.textContent = helplineName(h.name, h.display_name);
  card.caption.textContent = t('queue.caption', { name: helplineName(h.name, h.display_name) });
  // The helpline's own thresholds (the server sends them; older servers did not).
  card.amberMs = h.sla_at_risk_ms ?? AMBER_MS;
  card.redMs = h.sla_target_ms ?? RED_MS;
  const today = h.figures.today;
  const target = h.service_level_target_pct;
  const sl = today.service_level;
  card.slValue.textContent = pct(sl);
  const level = sl == null ? 'none' : sl * 100 >= target ? 'ok' : 'low';
  card.sl.dataset.level = level;
  card.slTarget.textContent = t({ low: 'sl.below', ok: 'sl.on', none: 'sl.none' }[level], { target: formatPercent(target / 100) });
  const q = h.figures.last_15m;
  card.stats.replaceChildren(
    el('dt', { text: t('stats.longest') }), card.longest,
    el('dt', { text: t('stats.last15') }), el('dd', { text: t('stats.last15Value', { pct: pct(q.service_level), n: q.offered }) }),
    el('dt', { text: t('stats.answered') }), el('dd', { text: t('stats.answeredValue', { answered: today.answered, offered: today.offered }) }),
    el('dt', { text: t('stats.abandoned') }), el('dd', { text: `${formatNumber(today.abandoned)} (${pct(today.abandonment_rate)})` }),
    el('dt', { text: t('stats.asa') }), el('dd', { text: seconds(today.asa_ms) }),
  );
  card.staff.replaceChildren(
    ...[['available', h.available], ['busy', h.busy], ['away', h.away], ['offline', h.offline]].map(([s, n]) =>
      el('span', { class: 'chip', dataset: { state: s } }, t(`chip.${s}`, { n })),
    ),
  );
  card.waitingCount.textContent = String(h.waiting.length);
  // New contacts today: redraw the chart soon (at most every 10 s), not only on the minute.
  const stamp = `${today.offered}/${today.answered}/${today.abandoned}`;
  if (card.stamp !== undefined && stamp !== card.stamp && performance.now() - (card.loadedAt || 0) > 10000) loadChart(card);
  card.stamp = stamp;

  const seen = new Set();
  for (const w of h.waiting) {
    seen.add(w.contact_id);
    let row = card.rows.get(w.contact_id);
    if (!row) row = waitingRow(card, w);
    row.w = w;
    row.baseWaited = w.waited_ms;
    renderRow(card, row);
  }
  for (const [id, row] of card.rows) {
    if (seen.has(id)) continue;
    const hadFocus = row.el.contains(document.activeElement);
    row.el.remove();
    card.rows.delete(id);
    state.alertLevel.delete(id);
    if (hadFocus) card.heading.focus();
  }
  // Keep the rows in queue order (moving only what is out of place, so focus stays where it is).
  const ordered = [...h.waiting].sort((a, b) => a.position - b.position).map((w) => card.rows.get(w.contact_id).el);
  ordered.forEach((node, i) => {
    if (card.tbody.children[i] !== node) card.tbody.insertBefore(node, card.tbody.children[i] || null);
  });
  card.empty.hidden = h.waiting.length > 0;
  card.table.hidden = h.waiting.length === 0;
}

function waitingRow(card, w) {
  const id = w.contact_id;
  const row = { id, w, baseWaited: w.waited_ms, level: '', optionsKey: '' };
  row.position = el('td', { class: 'position' });
  row.language = el('span', { class: 'language' });
  row.age = el('span', { class: 'age-value' });
  row.levelText = el('span', { class: 'level-text' });
  row.stateText = el('span', { class: 'state' });
  const front = el('button', { type: 'button', class: 'secondary front', dataset: { i18n: 'queue.toFront' }, text: t('queue.toFront') });
  front.addEventListener('click', () => {
    if (act({ type: 'to_front', contact_id: id })) notice(t('queue.moving'));
  });
  const selectId = `offer-${id}`;
  row.select = el('select', { id: selectId, class: 'offer-to' });
  row.offerGroup = el('span', { class: 'offer-group', hidden: true }, el('label', { for: selectId, class: 'visually-hidden', dataset: { i18n: 'queue.offerTo' }, text: t('queue.offerTo') }), row.select);
  const offer = el('button', { type: 'button', class: 'secondary offer', dataset: { i18n: 'queue.offer' }, text: t('queue.offer') });
  row.offerGroup.append(offer);
  offer.addEventListener('click', () => {
    const to = row.select.value;
    if (!to) {
      notice(t('queue.nobody'), true);
      return;
    }
    if (act({ type: 'offer_to', contact_id: id, counsellor_id: to })) notice(t('queue.offering', { name: counsellorName(to) }));
  });
  row.el = el(
    'tr',
    { dataset: { contactId: id, level: 'ok' } },
    row.position,
    el('td', { class: 'age' }, row.age, row.levelText),
    el('td', { class: 'caller' }, row.language, row.stateText),
    el('td', { class: 'control' }, el('div', { class: 'actions' }, front, row.offerGroup)),
  );
  card.rows.set(id, row);
  return row;
}

function renderRow(card, row) {
  const w = row.w;
  row.position.textContent = String(w.position);
  row.language.textContent = languageName(w.language);
  const bits = [];
  if (w.offered_to) bits.push(t('queue.ringingFor', { name: counsellorName(w.offered_to) }));
  if (w.priority > 0) bits.push(t('queue.movedToFront'));
  if (!w.caller_online) bits.push(t('queue.callerOffline'));
  row.stateText.textContent = bits.join(' · ') || t('queue.justWaiting');
  // Who may be offered this caller: connected counsellors with room (the server checks the rest).
  const options = [...state.counsellors.values()]
    .filter((c) => c.connected && c.state === 'available')
    .sort((a, b) => a.display_name.localeCompare(b.display_name));
  const key = options.map((c) => c.user_id).join(',');
  if (key !== row.optionsKey) {
    row.optionsKey = key;
    const keep = row.select.value;
    row.select.replaceChildren(...options.map((c) => el('option', { value: c.user_id, text: c.display_name })));
    if (options.some((c) => c.user_id === keep)) row.select.value = keep;
    // Offer only when someone could take it.
    row.offerGroup.hidden = !options.length;
  }
}

/** Counts on between board frames: waiting times, longest waits, times in state, staleness. */
function tick() {
  if (!state.board) return;
  const since = performance.now() - state.boardAt;
  for (const card of state.cards.values()) {
    let longest = 0;
    for (const row of card.rows.values()) {
      const age = row.baseWaited + since;
      longest = Math.max(longest, age);
      const text = clock(age);
      if (row.age.textContent !== text) row.age.textContent = text;
      const alerted = state.alertLevel.get(row.id) || 0;
      const level = age >= (card.redMs ?? RED_MS) || alerted >= 2 ? 'red' : age >= (card.amberMs ?? AMBER_MS) || alerted >= 1 ? 'amber' : 'ok';
      if (row.level !== level) {
        row.level = level;
        row.el.dataset.level = level;
        row.levelText.textContent = { ok: '', amber: t('queue.atRisk'), red: t('queue.overTarget') }[level];
      }
    }
    const text = card.rows.size ? clock(longest) : '–';
    if (card.longest.textContent !== text) card.longest.textContent = text;
  }
  for (const r of state.counsellorRows.values()) {
    const text = t('person.for', { span: span(r.entry.in_state_ms + since) });
    if (r.time.textContent !== text) r.time.textContent = text;
  }
  const stale = since > STALE_MS;
  const updated = $('updated');
  updated.dataset.stale = String(stale);
  const text = stale ? t('board.stale', { n: Math.round(since / 1000) }) : t('board.updated', { time: timeOf(state.board.at) });
  if (updated.textContent !== text) updated.textContent = text;
}

// ----- counsellors ------------------------------------------------------------

function renderCounsellors(list) {
  const groups = $('counsellor-groups');
  if (!groups.children.length) {
    for (const key of STATES) {
      const h = el('h3', { id: `group-${key}-h` }, el('span', { dataset: { i18n: `state.${key}` }, text: t(`state.${key}`) }), ' ', el('span', { class: 'group-count' }));
      const ul = el('ul', { class: 'people', 'aria-labelledby': h.id });
      groups.append(el('div', { class: 'group', dataset: { state: key } }, h, ul));
    }
  }
  const seen = new Set();
  for (const c of list) {
    seen.add(c.user_id);
    let r = state.counsellorRows.get(c.user_id);
    if (!r) r = counsellorRow(c);
    r.entry = c;
    renderCounsellor(r);
  }
  for (const [id, r] of state.counsellorRows) {
    if (!seen.has(id)) {
      r.el.remove();
      state.counsellorRows.delete(id);
    }
  }
  // A row moves to another group when its state changes: keep the focus on the control it had.
  const focused = document.activeElement;
  const keep = focused && groups.contains(focused) ? focused : null;
  // Only the groups: on a wall the list may also end with its "+N more" line (supervisor-wall.js).
  for (const group of groups.querySelectorAll(':scope > .group')) {
    const key = group.dataset.state;
    const ul = group.querySelector('ul');
    const members = list
      .filter((c) => c.state === key)
      .sort((a, b) => a.display_name.localeCompare(b.display_name))
      .map((c) => state.counsellorRows.get(c.user_id).el);
    members.forEach((node, i) => {
      if (ul.children[i] !== node) ul.insertBefore(node, ul.children[i] || null);
    });
    group.querySelector('.group-count').textContent = `(${members.length})`;
  }
  if (keep && keep.isConnected && document.activeElement !== keep) keep.focus();
}

function counsellorRow(c) {
  const r = { id: c.user_id, entry: c, activeKey: null };
  r.name = el('span', { class: 'name' });
  r.time = el('span', { class: 'in-state' });
  r.load = el('span', { class: 'load' });
  r.ring = el('span', { class: 'ring' });
  r.convs = el('ul', { class: 'convs' });
  // Set the counsellor's status (they are told it was a supervisor); hidden on the wall.
  const selectId = `status-${c.user_id}`;
  r.statusLabel = el('label', { for: selectId, class: 'visually-hidden' });
  r.statusSelect = el(
    'select',
    { id: selectId, class: 'status-select' },
    ...STATUSES.map((value) => el('option', { value, dataset: { i18n: `statusOption.${value}` }, text: t(`statusOption.${value}`) })),
  );
  r.statusSelect.value = c.status;
  r.statusShown = c.status;
  r.setButton = el('button', { type: 'button', class: 'secondary set-status', dataset: { i18n: 'person.set' }, text: t('person.set') });
  r.setButton.addEventListener('click', () => {
    const status = r.statusSelect.value;
    const name = r.entry.display_name;
    if (act({ type: 'set_status', counsellor_id: r.id, status })) {
      state.statusAsked.set(r.id, status);
      notice(t('person.setting', { name, status: t(`status.${status}`) }));
    }
  });
  r.statusControl = el('div', { class: 'status-control control' }, r.statusLabel, r.statusSelect, r.setButton);
  r.el = el(
    'li',
    { class: 'person', dataset: { userId: c.user_id } },
    el('p', { class: 'line' }, r.name, ' ', r.time, ' ', r.load, ' ', r.ring),
    r.statusControl,
    r.convs,
  );
  state.counsellorRows.set(c.user_id, r);
  return r;
}

function renderCounsellor(r) {
  const c = r.entry;
  r.el.dataset.state = c.state;
  r.name.textContent = c.display_name;
  r.load.textContent = c.connected
    ? t('person.load', { active: c.active.length, capacity: c.capacity })
    : c.active.length
      ? t('person.disconnected', { n: c.active.length })
      : '';
  r.ring.textContent = c.ringing ? t('person.ringing') : '';
  r.ring.hidden = !c.ringing;
  r.statusLabel.textContent = t('person.statusFor', { name: c.display_name });
  r.setButton.setAttribute('aria-label', t('person.setFor', { name: c.display_name }));
  // Follow the server's status, unless the supervisor is choosing one right now.
  if (c.status !== r.statusShown) {
    r.statusShown = c.status;
    if (document.activeElement !== r.statusSelect) r.statusSelect.value = c.status;
  }
  const urgent = new Set(c.urgent || []);
  const key = `${c.active.join(',')}|${[...urgent].join(',')}`;
  if (key === r.activeKey) return;
  r.activeKey = key;
  const focused = document.activeElement?.closest?.('.convs li')?.dataset.contactId;
  r.convs.replaceChildren(
    ...c.active.map((id) => {
      const watch = el('button', {
        type: 'button',
        class: 'secondary monitor control',
        text: t('person.monitor'),
        'aria-label': t('person.monitorLabel', { id: shortId(id), name: c.display_name }),
      });
      watch.addEventListener('click', () => startMonitor(id));
      const risk = urgent.has(id) ? el('span', { class: 'urgent', text: t('person.urgent') }) : '';
      return el('li', { dataset: { contactId: id, urgent: String(urgent.has(id)) } }, el('span', { class: 'conv-id', text: t('conv.name', { id: shortId(id) }) }), ' ', risk, watch);
    }),
  );
  if (focused) r.convs.querySelector(`li[data-contact-id="${CSS.escape(focused)}"] button`)?.focus();
}

// ----- alerts -----------------------------------------------------------------

function onAlert(f) {
  if (f.contact_id && (f.kind === 'wait_10s' || f.kind === 'wait_15s')) {
    const level = f.kind === 'wait_15s' ? 2 : 1;
    state.alertLevel.set(f.contact_id, Math.max(level, state.alertLevel.get(f.contact_id) || 0));
    tick();
  }
  const a = { id: ++state.alertSeq, frame: f, acked: false, ackedAt: null };
  a.el = el('li', { class: 'alert', dataset: { kind: f.kind, alertId: String(a.id), contactId: f.contact_id || '' } });
  renderAlert(a);
  state.alerts.unshift(a);
  $('alert-list').prepend(a.el);
  while (state.alerts.length > MAX_ALERTS) state.alerts.pop().el.remove();
  refreshEmpty();
  updateTitle();
  // Announced in a live region of its own, so an alert never hides the answer to a supervisor's action.
  $('alert-announce').textContent = t('alert.announce', { what: [a.what, ...a.where].join(', ') });
}

/** An alert's words (again after a change of language): what, where, and what happened. */
function renderAlert(a) {
  const f = a.frame;
  a.what = has(`alert.${f.kind}`) ? t(`alert.${f.kind}`) : f.kind;
  const where = [];
  if (f.helpline) where.push(helplineName(f.helpline));
  if (f.counsellor_id) where.push(counsellorName(f.counsellor_id));
  if (f.contact_id) where.push(t('alert.caller', { id: shortId(f.contact_id) }));
  a.where = where;
  // The server's message is English; the catalogue says the same for each known kind.
  const said = has(`alertDesc.${f.kind}`) ? t(`alertDesc.${f.kind}`) : f.message;
  a.state = el('span', { class: 'ack-state', text: a.acked ? t('alert.acked', { time: timeOf(a.ackedAt) }) : '' });
  const parts = [
    el('p', { class: 'alert-head' }, el('time', { dateTime: f.at, text: timeOf(f.at) }), ' ', el('strong', { text: a.what }), ' ', a.state),
    el('p', { class: 'alert-body', text: `${where.join(' · ')}${where.length ? ': ' : ''}${said}` }),
  ];
  if (!a.acked) {
    a.ack = el('button', { type: 'button', class: 'secondary ack control', text: t('alert.ack'), 'aria-label': t('alert.ackLabel', { what: a.what, where: where.join(', ') }) });
    a.ack.addEventListener('click', () => acknowledge(a));
    parts.push(a.ack);
  }
  a.el.replaceChildren(...parts);
}

function acknowledge(a) {
  if (a.acked) return;
  a.acked = true;
  a.ackedAt = Date.now();
  a.el.classList.add('acked');
  a.state.textContent = t('alert.acked', { time: timeOf(a.ackedAt) });
  const hadFocus = a.ack === document.activeElement;
  a.ack.remove();
  updateTitle();
  if (hadFocus) {
    const next = state.alerts.find((x) => !x.acked);
    if (next) next.ack.focus();
    else $('alerts-heading').focus?.();
  }
}

// ----- monitoring, whisper, join ----------------------------------------------

function startMonitor(id) {
  let m = state.monitors.get(id);
  if (!m) m = monitorPane(id);
  m.syncing = true;
  m.status.textContent = t('mon.opening');
  act({ type: 'monitor', contact_id: id });
  m.heading.focus();
}

function monitorPane(id) {
  const m = { id, ended: false, joined: false, syncing: false, shown: new Set(), own: new Map(), pending: [], whispers: [], counsellor: null };
  const base = `mon-${id}`;
  m.heading = el('h3', { id: `${base}-h`, tabindex: '-1', text: t('conv.name', { id: shortId(id) }) });
  // Not a live region: #notice already announces what happened.
  m.status = el('p', { class: 'mon-status' });
  m.log = el('div', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': t('mon.log', { id: shortId(id) }), tabindex: '0' });

  m.whisperText = el('textarea', { id: `${base}-whisper`, rows: 2, maxLength: 4000, autocomplete: 'off' });
  m.whisperForm = el(
    'form',
    { class: 'composer whisper-form', noValidate: true },
    el('label', { for: m.whisperText.id, dataset: { i18n: 'mon.whisperLabel' }, text: t('mon.whisperLabel') }),
    el('div', { class: 'row' }, m.whisperText, el('button', { type: 'submit', dataset: { i18n: 'mon.whisper' }, text: t('mon.whisper') })),
  );
  m.whisperForm.addEventListener('submit', (e) => {
    e.preventDefault();
    sendWhisper(m);
  });

  m.writeText = el('textarea', { id: `${base}-write`, rows: 2, maxLength: 4000, autocomplete: 'off' });
  m.writeForm = el(
    'form',
    { class: 'composer write-form', noValidate: true, hidden: true },
    el('label', { for: m.writeText.id, dataset: { i18n: 'mon.writeLabel' }, text: t('mon.writeLabel') }),
    el('div', { class: 'row' }, m.writeText, el('button', { type: 'submit', dataset: { i18n: 'mon.send' }, text: t('mon.send') })),
  );
  m.writeForm.addEventListener('submit', (e) => {
    e.preventDefault();
    sendMessage(m);
  });
  for (const [area, fn] of [[m.whisperText, sendWhisper], [m.writeText, sendMessage]]) onEnter(area, () => fn(m));

  m.joinButton = el('button', { type: 'button', class: 'join', dataset: { i18n: 'mon.join' }, text: t('mon.join') });
  m.joinButton.addEventListener('click', () => {
    if (act({ type: 'join', contact_id: id })) m.status.textContent = t('mon.joining');
  });

  m.transferSelect = el('select', { id: `${base}-transfer` });
  const transfer = el('button', { type: 'button', class: 'secondary transfer', dataset: { i18n: 'mon.transfer' }, text: t('mon.transfer') });
  transfer.addEventListener('click', () => {
    const [kind, target] = m.transferSelect.value.split(':');
    if (!target) return;
    const frame = kind === 'c' ? { type: 'transfer', contact_id: id, counsellor_id: target } : { type: 'transfer', contact_id: id, helpline: target };
    if (act(frame)) m.status.textContent = t('mon.transferring');
  });
  m.transferForm = el(
    'div',
    { class: 'transfer-row' },
    el('label', { for: m.transferSelect.id, dataset: { i18n: 'mon.transferTo' }, text: t('mon.transferTo') }),
    m.transferSelect,
    transfer,
  );

  m.stopButton = el('button', { type: 'button', class: 'secondary stop', dataset: { i18n: 'mon.stop' }, text: t('mon.stop') });
  m.stopButton.addEventListener('click', () => stopMonitor(m));

  m.section = el(
    'section',
    { class: 'monitor', 'aria-labelledby': m.heading.id, dataset: { contactId: id } },
    el('div', { class: 'mon-head' }, m.heading, m.stopButton),
    m.status,
    m.log,
    m.whisperForm,
    el('div', { class: 'mon-actions' }, m.joinButton, m.transferForm),
    m.writeForm,
  );
  state.monitors.set(id, m);
  $('monitor-list').append(m.section);
  refreshEmpty();
  renderMonitorHead(m);
  return m;
}

/** The pane's heading and transfer targets, from the board. */
function renderMonitorHead(m) {
  let owner = null;
  for (const c of state.counsellors.values()) if (c.active.includes(m.id)) owner = c;
  const who = owner ? owner.display_name : m.counsellor;
  m.heading.textContent = who ? t('conv.with', { id: shortId(m.id), name: who }) : t('conv.name', { id: shortId(m.id) });
  m.log.setAttribute('aria-label', t('mon.log', { id: shortId(m.id) }));
  const options = [];
  for (const c of [...state.counsellors.values()].sort((a, b) => a.display_name.localeCompare(b.display_name))) {
    if (c.connected && c.state === 'available' && c !== owner) options.push([`c:${c.user_id}`, t('mon.toCounsellor', { name: c.display_name })]);
  }
  for (const card of state.cards.values()) options.push([`h:${card.name}`, t('mon.toQueue', { name: helplineName(card.name) })]);
  const key = `${locale()}|${options.map((o) => o[0]).join(',')}`;
  if (key !== m.transferKey) {
    m.transferKey = key;
    const keep = m.transferSelect.value;
    m.transferSelect.replaceChildren(...options.map(([value, text]) => el('option', { value, text })));
    if (options.some((o) => o[0] === keep)) m.transferSelect.value = keep;
  }
}

function stopMonitor(m) {
  if (!m.ended) send({ type: 'unmonitor', contact_id: m.id });
  const hadFocus = m.section.contains(document.activeElement);
  m.section.remove();
  state.monitors.delete(m.id);
  refreshEmpty();
  if (hadFocus) $('monitors-heading').focus();
}

function onMonitoring(f) {
  const m = state.monitors.get(f.contact_id) || monitorPane(f.contact_id);
  m.syncing = false;
  m.counsellor = f.counsellor;
  m.log.replaceChildren();
  m.shown.clear();
  for (const msg of f.history) renderMessage(m, msg);
  for (const id of m.pending) {
    const own = m.own.get(id);
    if (own) place(m, own.el, null);
  }
  // Own messages written during a drop go out now, with their original client_id.
  if (m.joined) for (const id of m.pending) send({ type: 'message', contact_id: m.id, client_id: id, text: m.own.get(id).text });
  m.status.textContent = m.joined ? t('mon.joined') : t('mon.watching');
  renderMonitorHead(m);
}

function messageElement(who, cls, text, at) {
  return el(
    'div',
    { class: `msg ${cls}` },
    el('span', { class: 'who', text: who }),
    el('p', { class: 'text', text, translate: false }),
    el('span', { class: 'meta', text: at ? timeOf(at) : '' }),
  );
}

function place(m, node, seq) {
  // Own messages do not pull the log down: the supervisor may be reading further up.
  placeInLog(m.log, node, seq, { followMine: false });
}

function renderMessage(m, msg) {
  if (m.shown.has(msg.seq)) return;
  m.shown.add(msg.seq);
  const own = m.own.get(msg.client_id);
  if (own) {
    own.seq = msg.seq;
    m.pending = m.pending.filter((x) => x !== msg.client_id);
    own.meta.textContent = t('mon.sent', { time: timeOf(msg.at) });
    place(m, own.el, msg.seq);
    return;
  }
  const who =
    msg.from === 'caller'
      ? t('who.caller')
      : msg.from === 'system'
        ? t('who.system')
        : msg.client_id.startsWith(CLIENT_PREFIX)
          ? t('who.supervisor')
          : m.counsellor || t('who.counsellor');
  const cls = msg.from === 'caller' ? 'theirs caller' : msg.from === 'system' ? 'theirs system' : 'mine counsellor';
  // A supervisor joined (`notice`): said in the page's language; another system line as the server wrote it.
  const text = msg.notice?.kind === 'joined' ? t('console.joined', { name: msg.notice.name }) : msg.text;
  place(m, messageElement(who, cls, text, msg.at), msg.seq);
}

function onMessage(f) {
  const m = state.monitors.get(f.contact_id);
  if (!m || m.syncing) return;
  renderMessage(m, f);
}

function whisperNote(m, from, text, at) {
  const node = el('div', { class: 'note whisper' }, el('strong', { text: `${t('mon.whisperFrom', { name: from })} ` }), el('span', { class: 'text', text }), el('span', { class: 'meta', text: ` ${timeOf(at)}` }));
  place(m, node, highestSeq(m.shown) + 0.5);
}

function onWhisper(f) {
  const m = state.monitors.get(f.contact_id);
  if (m) whisperNote(m, f.from, f.text, f.at);
}

function sendWhisper(m) {
  const text = m.whisperText.value;
  if (!text.trim() || m.ended) return;
  if (!act({ type: 'whisper', contact_id: m.id, text })) return;
  m.whispers.push(text);
  m.whisperText.value = '';
  m.status.textContent = t('mon.whispering');
}

function sendMessage(m) {
  const text = m.writeText.value;
  if (!text.trim() || m.ended || !m.joined) return;
  const clientId = newClientId(CLIENT_PREFIX);
  const meta = el('span', { class: 'meta', text: t('mon.sending') });
  const node = el('div', { class: 'msg mine own' }, el('span', { class: 'who', text: t('who.you') }), el('p', { class: 'text', text }), meta);
  m.own.set(clientId, { el: node, meta, text, seq: null });
  m.pending.push(clientId);
  place(m, node, null);
  m.writeText.value = '';
  send({ type: 'message', contact_id: m.id, client_id: clientId, text });
}

function onAck(f) {
  const m = state.monitors.get(f.contact_id);
  const own = m?.own.get(f.client_id);
  if (!own || own.seq != null) return;
  own.seq = f.seq;
  clearTimeout(own.resendTimer);
  own.resendTimer = null;
  m.shown.add(f.seq);
  m.pending = m.pending.filter((x) => x !== f.client_id);
  own.meta.textContent = t('mon.sent', { time: timeOf() });
  place(m, own.el, f.seq);
}

function onEnded(id, reason) {
  const m = state.monitors.get(id);
  if (!m) return;
  m.ended = true;
  m.status.textContent = ['caller_ended', 'counsellor_ended', 'caller_lost'].includes(reason) ? t(`ended.${reason}`) : t('ended.other');
  m.section.classList.add('ended');
  for (const part of [m.whisperForm, m.writeForm, m.joinButton, m.transferForm]) part.hidden = true;
  m.stopButton.dataset.i18n = 'mon.close';
  m.stopButton.textContent = t('mon.close');
}

// ----- answers to interventions ----------------------------------------------

function onDone(f) {
  const id = f.ref;
  const m = id ? state.monitors.get(id) : null;
  switch (f.request) {
    case 'whisper':
      if (m) {
        const text = m.whispers.shift();
        if (text != null) whisperNote(m, t('mon.you'), text, null);
        m.status.textContent = t('mon.whisperDone');
      }
      notice(t('done.whisper'));
      break;
    case 'join':
      if (m) {
        m.joined = true;
        m.joinButton.hidden = true;
        m.writeForm.hidden = false;
        m.status.textContent = t('mon.joined');
        m.writeText.focus();
      }
      notice(t('done.join'));
      break;
    case 'transfer':
      notice(t('done.transfer'));
      // Ask again: the pane's heading shows who has the conversation now.
      if (m && !m.ended) send({ type: 'monitor', contact_id: m.id });
      break;
    case 'to_front':
      notice(t('done.to_front'));
      break;
    case 'offer_to':
      notice(t('done.offer_to'));
      break;
    case 'set_status': {
      const status = state.statusAsked.get(id);
      state.statusAsked.delete(id);
      notice(status ? t('done.statusNow', { name: counsellorName(id), status: t(`status.${status}`) }) : t('done.status'));
      break;
    }
    default:
      break;
  }
}

function onError(f) {
  const ref = f.ref;
  if (ref) state.statusAsked.delete(ref);
  for (const m of state.monitors.values()) {
    const own = ref ? m.own.get(ref) : null;
    if (own && own.seq == null && (f.code === 'overloaded' || (f.code === 'rate_limited' && f.retry_after_ms))) {
      // Read but not taken in time: sent again with the same client_id after retry_after_ms (and
      // up to half again at random); a copy stored after all is acknowledged, not stored twice.
      if (own.resendTimer) return;
      own.meta.textContent = t('mon.resending', { time: timeOf() });
      const base = Math.max(100, Number(f.retry_after_ms) || 1000);
      own.resendTimer = setTimeout(() => {
        own.resendTimer = null;
        if (own.seq == null && m.joined) send({ type: 'message', contact_id: m.id, client_id: ref, text: own.text });
      }, base + Math.random() * base * 0.5);
      return;
    }
    if (own && own.seq == null) {
      m.pending = m.pending.filter((x) => x !== ref);
      own.meta.textContent = t('mon.notSent', { message: f.message });
      own.el.classList.add('failed');
      return;
    }
  }
  const m = ref ? state.monitors.get(ref) : null;
  if (m) {
    m.syncing = false;
    if (m.whispers.length && m.status.textContent === t('mon.whispering')) m.whispers.shift();
    m.status.textContent = t('mon.refused', { message: f.message });
    if (f.code === 'unknown_contact' && !m.shown.size && !m.joined) onEnded(m.id, null);
  }
  notice(t('error.refused', { message: f.message }), true);
}

// ----- the chart of today by hour ---------------------------------------------

/** The browser's UTC offset as ±HH:MM (the chart's hours are local hours). */
function utcOffset(date) {
  const minutes = -date.getTimezoneOffset();
  const sign = minutes < 0 ? '-' : '+';
  const a = Math.abs(minutes);
  return `${sign}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

function loadCharts() {
  for (const card of state.cards.values()) loadChart(card);
}

async function loadChart(card) {
  if (!state.token) return;
  card.loadedAt = performance.now();
  const now = new Date();
  const midnight = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const q = new URLSearchParams({
    helpline: card.name,
    from: String(midnight.getTime()),
    to: String(now.getTime() + 1),
    by: 'hour',
    format: 'json',
    utc_offset: utcOffset(now),
  });
  try {
    const res = await fetch(`/api/v1/reports/summary?${q}`, { headers: { authorization: `Bearer ${state.token}` }, cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    drawChart(card, await res.json(), midnight.getTime());
  } catch {
    if (!card.chart) card.chartBox.querySelector('.empty')?.replaceChildren(t('chart.failed'));
  }
}

/** Bars of contacts offered per hour of today, the part answered within target in green. */
function drawChart(card, summary, midnight) {
  const hours = Array.from({ length: 24 }, () => ({ offered: 0, inTarget: 0, sl: null }));
  for (const b of summary.buckets) {
    const h = Math.floor((b.start - midnight) / 3600000);
    if (h < 0 || h > 23) continue;
    hours[h].offered += b.figures.offered;
    hours[h].inTarget += b.figures.answered_in_target;
    hours[h].sl = b.figures.service_level;
  }
  const max = Math.max(1, ...hours.map((h) => h.offered));
  const W = 480;
  const H = 150;
  const top = 14;
  const bottom = 22;
  const left = 26;
  const slot = (W - left) / 24;
  const plot = H - top - bottom;
  const titleId = `${card.section.dataset.helpline}-chart-title`;
  const descId = `${card.section.dataset.helpline}-chart-desc`;
  const total = summary.total.figures;
  let busiest = 0;
  hours.forEach((h, i) => {
    if (h.offered > hours[busiest].offered) busiest = i;
  });
  const desc = total.offered
    ? t('chart.desc', {
        offered: total.offered,
        inTarget: total.answered_in_target,
        pct: pct(total.service_level),
        hour: String(busiest).padStart(2, '0'),
        busiest: hours[busiest].offered,
      })
    : t('chart.none');
  const chart = svg(
    'svg',
    { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${titleId} ${descId}`, class: 'bars', preserveAspectRatio: 'xMidYMid meet' },
    svg('title', { id: titleId, text: t('chart.title', { name: helplineName(card.name) }) }),
    svg('desc', { id: descId, text: desc }),
    svg('line', { x1: left, y1: top + plot, x2: W, y2: top + plot, class: 'axis' }),
    svg('text', { x: left - 4, y: top + 4, class: 'tick', 'text-anchor': 'end', text: String(max) }),
    svg('text', { x: left - 4, y: top + plot, class: 'tick', 'text-anchor': 'end', text: '0' }),
  );
  const nowHour = new Date().getHours();
  hours.forEach((h, i) => {
    const x = left + i * slot + 2;
    const w = slot - 4;
    const hAll = (h.offered / max) * plot;
    const hIn = (h.inTarget / max) * plot;
    const g = svg('g', { class: i === nowHour ? 'hour now' : 'hour' }, svg('title', { text: t('chart.hour', { hour: String(i).padStart(2, '0'), offered: h.offered, inTarget: h.inTarget }) }));
    if (h.offered) {
      g.append(svg('rect', { x, y: top + plot - hAll, width: w, height: hAll, class: 'bar-all' }));
      if (h.inTarget) g.append(svg('rect', { x, y: top + plot - hIn, width: w, height: hIn, class: 'bar-in' }));
    }
    if (i % 3 === 0) g.append(svg('text', { x: x + w / 2, y: H - 6, class: 'tick', 'text-anchor': 'middle', text: String(i).padStart(2, '0') }));
    chart.append(g);
  });
  const legend = el(
    'p',
    { class: 'legend' },
    el('span', { class: 'key in' }),
    ` ${t('chart.inTarget')} `,
    el('span', { class: 'key all' }),
    ` ${t('chart.other')}`,
  );
  card.chart = chart;
  card.summary = summary;
  card.midnight = midnight;
  card.chartBox.replaceChildren(el('figcaption', { text: t('chart.captionOffset', { offset: summary.utc_offset }) }), chart, legend);
}

// ----- start up ---------------------------------------------------------------

function refreshEmpty() {
  $('no-alerts').hidden = state.alerts.length > 0;
  $('no-monitors').hidden = state.monitors.size > 0;
}

/** After a change of language: everything the script drew is drawn again in the new words. */
function redraw() {
  // What was said in the other language is not said again (it was announced already).
  $('notice').textContent = '';
  $('alert-announce').textContent = '';
  if ($('banner').classList.contains('good')) setBanner('');
  setWall(state.wall);
  updateTitle();
  if (state.board) {
    for (const card of state.cards.values()) {
      for (const row of card.rows.values()) row.level = '';
      if (card.summary) drawChart(card, card.summary, card.midnight);
    }
    for (const r of state.counsellorRows.values()) r.activeKey = null;
    renderBoard(state.board);
  }
  for (const a of state.alerts) renderAlert(a);
  if (state.token) setConn($('conn').dataset.state, t('conn.live'));
  casesRedraw();
  lockoutsRedraw();
  blocksRedraw();
}

function init() {
  // The sign-in screen's words first: the last language chosen here, else the browser's.
  mountLogin();
  initLocale(() => state.token);
  onLocaleChange(redraw);
  initBlocks({ token: () => state.token, helplineName, notice });
  initCases({
    token: () => state.token,
    helplineName,
    counsellorName,
    notice,
    announce: (text) => {
      $('alert-announce').textContent = text;
    },
  });
  $('login-form').addEventListener('submit', onLogin);
  $('signout').addEventListener('click', () => signOut(''));
  $('wall').addEventListener('click', () => setWall(!state.wall));
  setWall(new URLSearchParams(location.search).get('wall') === '1');
  initWallFit();
  translatePage();
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) socket.reconnectNow();
  });
  window.addEventListener('online', () => socket.reconnectNow());
  setInterval(tick, 250);
  setInterval(() => socket.heartbeat(), PING_EVERY_MS);
  setInterval(() => socket.silent(), 2000);
  refreshEmpty();
  const saved = savedToken(TOKEN_KEY);
  if (saved) resumeSession(saved);
  else $('username').focus();
}

init();
