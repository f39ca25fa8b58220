// Casework on the supervisors' dashboard: the escalations waiting for acknowledgement (live `escalation`
// frames, and GET /api/v1/escalations on sign-in and after a reconnect, so a reload loses none), each with
// an Acknowledge button (POST /api/v1/escalations/{id}/acknowledge: acknowledged for every supervisor,
// and no 2-minute broadcast); and the case deadlines of the supervisor's helplines: overdue and due
// within 24 hours (GET /api/v1/cases?due=…), every minute.
//
// Text is put into the page with textContent only.

import { $, el, timeOf } from './common.js';
import { apiCall, codeLabel, dateTime } from './staff.js';

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
  refreshEmpty();
}

function refreshEmpty() {
  const open = [...items.values()].filter((i) => !i.acked).length;
  $('no-escalations').hidden = items.size > 0;
  const badge = $('escalation-count');
  badge.hidden = !open;
  badge.textContent = open ? `${open} to acknowledge` : '';
  $('no-overdue').hidden = $('cases-overdue').children.length > 0;
  $('no-soon').hidden = $('cases-soon').children.length > 0;
}

// ----- escalations --------------------------------------------------------------

/** An `escalation` frame (a new one, or one sent again to every supervisor after 2 minutes). */
export function onEscalation(view) {
  const known = items.get(view.escalation_id);
  if (known?.acked) return;
  show(view);
  const where = [ctx.helplineName(view.helpline), view.district].filter(Boolean).join(', ');
  ctx.announce(`Escalation: ${codeLabel(view.kind)}, risk ${view.risk}, ${where}.`);
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
    item.reason = el('p', { class: 'reason' });
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
    el('strong', { text: codeLabel(v.kind) }),
    ' ',
    el('span', { class: `risk risk-${v.risk}`, text: `risk ${v.risk}` }),
    v.everyone ? el('span', { class: 'everyone', text: ' · sent to every supervisor' }) : '',
    ' ',
    item.state,
  );
  const who = [ctx.helplineName(v.helpline), ctx.counsellorName(v.counsellor_id), v.district, `contact ${v.contact_id.slice(-6)}`].filter(Boolean);
  item.body.textContent = who.join(' · ');
  item.reason.textContent = v.reason;
  item.ack.textContent = 'Acknowledge';
  item.ack.setAttribute('aria-label', `Acknowledge escalation: ${codeLabel(v.kind)}, risk ${v.risk}, ${ctx.helplineName(v.helpline)}`);
  refreshEmpty();
}

async function acknowledge(item) {
  if (item.acked) return;
  item.ack.disabled = true;
  const res = await apiCall(ctx.token(), `/api/v1/escalations/${encodeURIComponent(item.view.escalation_id)}/acknowledge`, { method: 'POST' });
  if (res.status !== 200) {
    item.ack.disabled = false;
    ctx.notice(`Not acknowledged: ${res.body?.message || (res.status ? `HTTP ${res.status}` : 'the server cannot be reached')}.`, true);
    return;
  }
  item.acked = true;
  item.el.classList.add('acked');
  item.state.textContent = res.body.first ? `· acknowledged by you at ${timeOf()}` : '· already acknowledged by another supervisor';
  const hadFocus = document.activeElement === item.ack;
  item.ack.remove();
  refreshEmpty();
  ctx.notice('Escalation acknowledged.');
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
    if (byHand) ctx.notice('The case deadlines cannot be loaded now; they are tried again every minute.', true);
    return;
  }
  $('cases-overdue').replaceChildren(...overdue.body.cases.map((c) => caseItem(c, 'overdue')));
  $('cases-soon').replaceChildren(...soon.body.cases.map((c) => caseItem(c, 'soon')));
  $('cases-checked').textContent = `Checked at ${timeOf(Date.parse(overdue.body.now))}.`;
  refreshEmpty();
}

function caseItem(c, due) {
  const manager = c.case_manager_id ? 'case manager assigned' : 'no case manager yet';
  return el(
    'li',
    { class: 'case', dataset: { caseId: c.id, due } },
    el('p', {}, el('strong', { class: 'case-number', text: c.number }), ' ', el('span', { class: `due-mark ${due}`, text: due === 'overdue' ? 'Overdue' : 'Due within 24 h' })),
    el('p', { class: 'muted', text: `${ctx.helplineName(c.helpline)} · ${codeLabel(c.stage)} · ${codeLabel(c.due_what || '')} due ${dateTime(c.due_at)} · ${c.district || 'district not set'} · ${manager}` }),
  );
}
