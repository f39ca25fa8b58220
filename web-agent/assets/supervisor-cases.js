// Casework on the supervisors' dashboard: the escalations waiting for acknowledgement (live `escalation`
// frames, and GET /api/v1/escalations on sign-in and after a reconnect, so a reload loses none), each with
// an Acknowledge button (POST /api/v1/escalations/{id}/acknowledge: acknowledged for every supervisor,
// and no 2-minute broadcast); and the case deadlines of the supervisor's helplines: overdue and due
// within 24 hours (GET /api/v1/cases?due=…), every minute.
//
// Text is put into the page with textContent only.

import { $, el } from './common.js';
import { apiCall, codeLabel, dateTime } from './staff.js';
import { t, has, formatTime } from './staff-i18n.js';

/** A time of day in the page's language (with seconds when asked). */
function timeOf(at, options) {
  return formatTime(at, options);
}

/** A code's words: the catalogue's `prefix.code` when it has them, else the code made readable. */
function words(prefix, code) {
  return has(`${prefix}.${code}`) ? t(`${prefix}.${code}`) : codeLabel(code);
}

/** A helpline's name, as the board has it, else the name the server sent with the escalation. */
function helplineOf(v) {
  return ctx.helplineName(v.helpline, v.helpline_name);
}

/** The last case deadlines loaded, drawn again after a change of language. */
let lastDue = null;

const CASES_EVERY_MS = 60000;

let ctx = null;
let timer = null;
/** escalation_id -> { view, el, ack, acked } */
const items = new Map();

/**
 * `context`: `token()`, `helplineName(name)`, `counsellorName(id)`, `notice(text, error)`,
 * `announce(text)`.
 */
export function initCases(context) {
  ctx = context;
  $('cases-refresh').addEventListener('click', () => refreshDue(true));
}

/** Signed in, or the socket is back: what may have been missed is fetched again. */
export function casesOnline() {
  refreshEscalations();
  refreshDue(false);
  clearInterval(timer);
  timer = setInterval(() => refreshDue(false), CASES_EVERY_MS);
}

export function casesSignedOut() {
  clearInterval(timer);
  timer = null;
  items.clear();
  $('escalation-list').replaceChildren();
  $('cases-overdue').replaceChildren();
  $('cases-soon').replaceChildren();
  $('cases-checked').textContent = '';
  lastDue = null;
  refreshEmpty();
}

function refreshEmpty() {
  const open = [...items.values()].filter((i) => !i.acked).length;
  $('no-escalations').hidden = items.size > 0;
  const badge = $('escalation-count');
  badge.hidden = !open;
  badge.textContent = open ? t('esc.count', { n: open }) : '';
  $('no-overdue').hidden = $('cases-overdue').children.length > 0;
  $('no-soon').hidden = $('cases-soon').children.length > 0;
}

// ----- escalations --------------------------------------------------------------

/** An `escalation` frame (a new one, or one sent again to every supervisor after 2 minutes). */
export function onEscalation(view) {
  const known = items.get(view.escalation_id);
  if (known?.acked) return;
  show(view);
  const where = [helplineOf(view), view.district].filter(Boolean).join(', ');
  ctx.announce(t('esc.announce', { kind: words('kind', view.kind), risk: words('risk', view.risk), where }));
}

async function refreshEscalations() {
  const res = await apiCall(ctx.token(), '/api/v1/escalations');
  if (res.status !== 200) return;
  const open = new Set();
  for (const v of res.body.escalations || []) {
    open.add(v.escalation_id);
    show(v);
  }
  // Acknowledged meanwhile (by someone else, or before a reload): gone from the list.
  for (const [id, item] of items) {
    if (!open.has(id) && !item.acked) {
      item.el.remove();
      items.delete(id);
    }
  }
  refreshEmpty();
}

function show(v) {
  let item = items.get(v.escalation_id);
  if (!item) {
    item = { view: v, acked: false };
    item.head = el('p', { class: 'alert-head' });
    item.body = el('p', { class: 'alert-body' });
    // The counsellor's words, as written (not the page's language).
    item.reason = el('p', { class: 'reason', translate: false });
    item.state = el('span', { class: 'ack-state' });
    item.ack = el('button', { type: 'button', class: 'ack control' });
    item.ack.addEventListener('click', () => acknowledge(item));
    item.el = el('li', { class: 'escalation', dataset: { escalationId: v.escalation_id, contactId: v.contact_id } }, item.head, item.body, item.reason, item.ack);
    items.set(v.escalation_id, item);
    // Newest first.
    $('escalation-list').prepend(item.el);
  }
  item.view = v;
  item.el.dataset.risk = v.risk;
  item.el.dataset.everyone = String(v.everyone);
  item.head.replaceChildren(
    el('time', { dateTime: v.at, text: timeOf(v.at, { seconds: true }) }),
    ' ',
    el('strong', { text: words('kind', v.kind) }),
    ' ',
    el('span', { class: `risk risk-${v.risk}`, text: t('esc.risk', { risk: words('risk', v.risk) }) }),
    v.everyone ? el('span', { class: 'everyone', text: t('esc.everyone') }) : '',
    ' ',
    item.state,
  );
  // Names, not codes: the helpline's and the counsellor's (the frame carries them; the board may not know an offline counsellor).
  const who = [helplineOf(v), ctx.counsellorName(v.counsellor_id, v.counsellor_name), v.district, t('esc.contact', { id: v.contact_id.slice(-6) })].filter(Boolean);
  item.body.textContent = who.join(' · ');
  item.reason.textContent = v.reason;
  item.ack.textContent = t('alert.ack');
  item.ack.setAttribute('aria-label', t('esc.ackLabel', { kind: words('kind', v.kind), risk: words('risk', v.risk), helpline: helplineOf(v) }));
  refreshEmpty();
}

async function acknowledge(item) {
  if (item.acked) return;
  item.ack.disabled = true;
  const res = await apiCall(ctx.token(), `/api/v1/escalations/${encodeURIComponent(item.view.escalation_id)}/acknowledge`, { method: 'POST' });
  if (res.status !== 200) {
    item.ack.disabled = false;
    ctx.notice(t('esc.notAcked', { why: res.body?.message || (res.status ? `HTTP ${res.status}` : t('esc.unreachable')) }), true);
    return;
  }
  item.acked = true;
  item.el.classList.add('acked');
  item.ackedText = res.body.first ? ['esc.ackedByYou', { time: timeOf() }] : ['esc.ackedByOther', {}];
  item.state.textContent = t(...item.ackedText);
  const hadFocus = document.activeElement === item.ack;
  item.ack.remove();
  refreshEmpty();
  ctx.notice(t('esc.acked'));
  if (hadFocus) {
    const next = [...items.values()].find((i) => !i.acked);
    if (next) next.ack.focus();
    else $('escalations-heading').focus();
  }
}

// ----- case deadlines -----------------------------------------------------------

async function refreshDue(byHand) {
  const [overdue, soon] = await Promise.all([apiCall(ctx.token(), '/api/v1/cases?due=overdue'), apiCall(ctx.token(), '/api/v1/cases?due=24h')]);
  if (overdue.status !== 200 || soon.status !== 200) {
    if (byHand) ctx.notice(t('cases.failed'), true);
    return;
  }
  lastDue = { overdue: overdue.body.cases, soon: soon.body.cases, now: overdue.body.now };
  drawDue();
}

function drawDue() {
  if (!lastDue) return;
  $('cases-overdue').replaceChildren(...lastDue.overdue.map((c) => caseItem(c, 'overdue')));
  $('cases-soon').replaceChildren(...lastDue.soon.map((c) => caseItem(c, 'soon')));
  $('cases-checked').textContent = t('cases.checked', { time: timeOf(Date.parse(lastDue.now)) });
  refreshEmpty();
}

/** After a change of language: the escalations and the deadlines in the new words. */
export function casesRedraw() {
  for (const item of items.values()) {
    show(item.view);
    if (item.acked && item.ackedText) item.state.textContent = t(...item.ackedText);
  }
  drawDue();
  refreshEmpty();
}

function caseItem(c, due) {
  const manager = c.case_manager_id ? t('cases.manager') : t('cases.noManager');
  return el(
    'li',
    { class: 'case', dataset: { caseId: c.id, due } },
    el('p', {}, el('strong', { class: 'case-number', text: c.number }), ' ', el('span', { class: `due-mark ${due}`, text: due === 'overdue' ? t('cases.overdue') : t('cases.soon') })),
    el('p', {
      class: 'muted',
      text: t('cases.line', {
        helpline: ctx.helplineName(c.helpline),
        stage: words('stage', c.stage),
        what: words('due', c.due_what || ''),
        when: dateTime(c.due_at),
        district: c.district || t('cases.noDistrict'),
        manager,
      }),
    }),
  );
}
