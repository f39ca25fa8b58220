// Casework in the counsellor console: per conversation, the contact form (agent-form.js) and the
// escalation with placement (agent-escalate.js); beside the conversations, the open wrap-ups (ended
// contacts whose form is not submitted: the tab cannot be closed until it is) and "My cases" (the cases
// this counsellor opened, due and overdue marked). agent.js calls the hooks below from small sections.
//
// Text is put into the page with textContent only.

import { $, el } from './common.js';
import { apiCall, codeLabel, dateTime, languageName } from './staff.js';
import { mountLinks } from './agent-links.js';
import { t, has, formatTime } from './staff-i18n.js';
import { setText } from './agent-text.js';

/** A time of day in the page's language. */
function timeOf(at) {
  return formatTime(at);
}

/** A code's words: the catalogue's `prefix.code` when it has them, else the code made readable. */
function words(prefix, code) {
  return has(`${prefix}.${code}`) ? t(`${prefix}.${code}`) : codeLabel(code);
}
import { contactForm, dropForm, district } from './agent-form.js';
import { escalation, onEscalated, onEscalateError } from './agent-escalate.js';

const REFRESH_MS = 60000;
const DAY_MS = 86400000;

let ctx = null;
let timer = null;

/**
 * Starts casework for the console. `context`: `token()`, `send(frame)`, `announce(text)`,
 * `helplineName(name)`, `openWrapup(wrapup)` (opens an ended contact's pane), `conversations()`.
 */
export function initCasework(context) {
  ctx = context;
  $('cases-refresh').addEventListener('click', () => refreshCases(true));
}

/** Signed in (or back after a drop): the side lists, now and every minute. */
export function caseworkOnline() {
  refreshCases(false);
  refreshWrapups();
  clearInterval(timer);
  timer = setInterval(() => {
    refreshCases(false);
    refreshWrapups();
  }, REFRESH_MS);
}

/** The side lists as last loaded, drawn again after a change of language. */
let lastWrapups = null;
let lastCases = null;

/** After a change of language: the side lists drawn again (the forms' words follow by themselves). */
export function caseworkRedraw() {
  if (lastWrapups) drawWrapups(lastWrapups);
  if (lastCases) drawCases(lastCases);
  if (!ctx) return;
  for (const c of ctx.conversations().values()) {
    if (c.cf) formChanged(c, c.cf, true);
  }
}

export function caseworkSignedOut() {
  clearInterval(timer);
  timer = null;
  $('my-cases').replaceChildren();
  $('wrapups').replaceChildren();
  $('no-cases').hidden = false;
  $('no-wrapups').hidden = false;
  $('cases-checked').textContent = '';
  lastWrapups = null;
  lastCases = null;
}

// ----- per conversation ---------------------------------------------------------

/** Adds the contact form and the escalation to a new conversation's pane. */
export function mountCasework(c) {
  const own = {
    token: ctx.token,
    send: ctx.send,
    announce: ctx.announce,
    changed: (f) => formChanged(c, f),
    risk: () => c.cf?.risk || '',
    district: () => district(c.cf),
    caseOpened: () => refreshCases(false),
  };
  c.cf = contactForm(c, own);
  c.esc = escalation(c, own);
  c.casework = el('div', { class: 'casework' }, c.esc.section, c.cf.section, mountLinks(c, ctx.token));
  (c.work || c.pane).append(c.casework);
}

export function unmountCasework(c) {
  if (c.cf) dropForm(c.cf);
}

function formChanged(c, f, redrawOnly = false) {
  c.tab.classList.toggle('imminent', f.risk === 'imminent');
  c.pane.classList.toggle('imminent', f.risk === 'imminent');
  c.tab.querySelector('.risk-mark')?.remove();
  if (f.risk === 'imminent') c.tab.append(el('span', { class: 'risk-mark' }, ' ', el('span', { text: t('person.urgent'), dataset: { i18n: 'person.urgent' } })));
  if (redrawOnly) return;
  if (c.ended) refreshWrapups();
  if (f.submitted) c.closeHint?.remove();
}

/** The `escalated` frame: to its conversation's escalation section. */
export function caseworkFrame(f) {
  if (f.type !== 'escalated') return false;
  const c = ctx.conversations().get(f.contact_id);
  if (c?.esc) onEscalated(c.esc, f);
  return true;
}

/** An `error` frame: true when it answered an escalation (shown in its section). */
export function caseworkError(f) {
  const c = f.ref ? ctx.conversations().get(f.ref) : null;
  return Boolean(c?.esc && onEscalateError(c.esc, f));
}

/** The conversation ended: its wrap-up stays open until the form is submitted. */
export function caseworkEnded(c) {
  refreshWrapups();
  if (c.cf && !c.cf.submitted) setText(c.cf.heading, 'form.headingOpen');
}

/**
 * Whether an ended conversation's tab may close: only once its form is submitted (the server keeps the
 * wrap-up open until then). Otherwise says so, next to the Close button, and moves to the form.
 */
export function mayClose(c) {
  if (!c.cf || c.cf.submitted) return true;
  if (!c.closeHint || !c.closeHint.isConnected) {
    c.closeHint = setText(el('p', { class: 'error close-hint', role: 'alert' }), 'console.submitFirst');
    c.endedNote.append(c.closeHint);
  }
  c.cf.heading.focus();
  return false;
}

// ----- the side lists -----------------------------------------------------------

/** The open wrap-ups: ended contacts whose form is not submitted, each with a button to its form. */
export async function refreshWrapups() {
  if (!ctx || !ctx.token()) return;
  const res = await apiCall(ctx.token(), '/api/v1/contact-forms/incomplete');
  if (res.status !== 200) return;
  lastWrapups = res.body.wrapups || [];
  drawWrapups(lastWrapups);
}

function drawWrapups(items) {
  const list = $('wrapups');
  list.replaceChildren(
    ...items.map((w) => {
      const open = el('button', { type: 'button', class: 'secondary open-wrapup', text: t('console.openForm'), 'aria-label': t('console.openFormLabel', { helpline: ctx.helplineName(w.helpline), time: w.ended_at ? timeOf(w.ended_at) : '–' }) });
      open.addEventListener('click', () => ctx.openWrapup(w));
      const what = `${ctx.helplineName(w.helpline)} · ${languageName(w.language)}${w.channel === 'call' ? ` · ${t('console.callMark')}` : ''}`;
      const when = w.ended_at ? t('console.endedAt', { time: timeOf(w.ended_at) }) : t('console.endedMark');
      return el(
        'li',
        { class: 'wrapup', dataset: { contactId: w.contact_id } },
        el('p', { text: what }),
        el('p', { class: 'muted', text: `${when} · ${t(w.form_status === 'draft' ? 'console.draftSaved' : 'console.noForm')}` }),
        open,
      );
    }),
  );
  $('no-wrapups').hidden = items.length > 0;
  $('wrapups-count').textContent = items.length ? ` (${items.length})` : '';
}

/** My cases: the open cases this counsellor opened, soonest deadline first, overdue and due within 24 h marked. */
export async function refreshCases(byHand) {
  if (!ctx || !ctx.token()) return;
  const res = await apiCall(ctx.token(), '/api/v1/cases');
  if (res.status !== 200) {
    if (byHand) $('cases-checked').textContent = t('console.casesFailed');
    return;
  }
  lastCases = { now: Date.parse(res.body.now), cases: res.body.cases || [] };
  drawCases(lastCases);
}

function drawCases({ now, cases }) {
  $('my-cases').replaceChildren(
    ...cases.map((c) => {
      const due = c.due_at_ms == null ? 'none' : c.due_at_ms <= now ? 'overdue' : c.due_at_ms <= now + DAY_MS ? 'soon' : 'later';
      const mark = { overdue: t('cases.overdue'), soon: t('cases.soon') }[due];
      return el(
        'li',
        { class: 'case', dataset: { caseId: c.id, due } },
        el('p', {}, el('strong', { class: 'case-number', text: c.number }), ' ', mark ? el('span', { class: `due-mark ${due}`, text: mark }) : ''),
        el('p', { class: 'muted', text: `${ctx.helplineName(c.helpline)} · ${words('stage', c.stage)}${c.due_at ? ` · ${t('console.caseDue', { what: words('due', c.due_what || ''), when: dateTime(c.due_at) })}` : ''}` }),
      );
    }),
  );
  $('no-cases').hidden = cases.length > 0;
  $('cases-checked').textContent = t('cases.checked', { time: timeOf(now) });
}
