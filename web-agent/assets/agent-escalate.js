// Escalation from a conversation in the counsellor console: kind, risk, district and reason go out as the
// `escalate` frame; the server alerts the supervisors and, for an emergency placement, answers with
// suggestions (services with a free place, the person's district first). Reserve takes a place
// (POST /api/v1/placements): the case number is shown; when someone else took the last place, a clear
// message and the next suggestion.
//
// Text is put into the page with textContent only.

import { el, timeOf } from './common.js';
import { apiCall, codeLabel, dateTime } from './staff.js';

const KINDS = ['emergency_placement', 'child_protection', 'emergency_services'];
const RISKS = ['none', 'low', 'medium', 'high', 'imminent'];

/**
 * The Escalate section of conversation `c`. `ctx`: `token()`, `send(frame)`, `announce(text)`,
 * `risk()` and `district()` (from the contact form, to prefill), `caseOpened(case)`.
 */
export function escalation(c, ctx) {
  const e = { c, ctx, id: c.id, pending: false, last: null, suggestions: new Map() };
  const base = `esc-${c.id}`;
  e.toggle = el('button', { type: 'button', class: 'danger escalate-toggle', 'aria-expanded': 'false', 'aria-controls': `${base}-panel`, text: 'Escalate…' });
  e.toggle.addEventListener('click', () => open(e, e.panel.hidden));

  e.kindError = el('p', { class: 'field-error', id: `${base}-kind-error` });
  e.kinds = KINDS.map((k, i) => {
    const radio = el('input', { type: 'radio', name: `${base}-kind`, value: k, checked: i === 0 });
    return { radio, label: el('label', { class: 'check' }, radio, ` ${codeLabel(k)}`) };
  });
  const kindSet = el('fieldset', { class: 'kinds', 'aria-describedby': e.kindError.id }, el('legend', { text: 'Kind' }), el('div', { class: 'checks' }, ...e.kinds.map((x) => x.label)));
  e.risk = el('select', { id: `${base}-risk` }, ...RISKS.map((r) => el('option', { value: r, text: codeLabel(r) })));
  e.risk.value = 'high';
  e.district = el('input', { id: `${base}-district`, type: 'text', maxLength: 100, autocomplete: 'off' });
  e.reasonError = el('p', { class: 'field-error', id: `${base}-reason-error` });
  e.reason = el('textarea', { id: `${base}-reason`, rows: 2, maxLength: 2000 });
  e.reason.addEventListener('input', () => {
    e.reasonError.textContent = '';
    e.reason.removeAttribute('aria-invalid');
  });
  e.sendButton = el('button', { type: 'submit', class: 'danger send-escalation', text: 'Send escalation' });
  e.error = el('p', { class: 'error', role: 'alert' });
  e.form = el(
    'form',
    { class: 'escalate-form', noValidate: true, 'aria-label': 'Escalate this contact' },
    kindSet,
    e.kindError,
    el(
      'div',
      { class: 'form-grid' },
      el('div', { class: 'form-field' }, el('label', { for: e.risk.id, text: 'Risk' }), e.risk),
      el('div', { class: 'form-field' }, el('label', { for: e.district.id, text: 'District (to find places near the person)' }), e.district),
    ),
    el('div', { class: 'form-field' }, el('label', { for: e.reason.id, text: 'Reason' }), e.reason, e.reasonError),
    e.error,
    el('div', { class: 'form-actions' }, e.sendButton),
  );
  e.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    send(e);
  });
  e.resultHeading = el('h5', { tabindex: '-1', class: 'result-heading' });
  e.resultText = el('p', { class: 'result-text', role: 'status' });
  e.placeError = el('p', { class: 'error place-error', role: 'alert' });
  e.caseBox = el('div', { class: 'case-box', hidden: true });
  e.list = el('ul', { class: 'suggestions', 'aria-label': 'Places with room' });
  e.result = el('div', { class: 'escalation-result', hidden: true }, e.resultHeading, e.resultText, e.placeError, e.caseBox, e.list);
  e.panel = el('div', { class: 'escalate-panel', id: `${base}-panel`, hidden: true }, e.form);
  e.section = el('section', { class: 'escalate', 'aria-label': 'Escalation', dataset: { contactId: c.id } }, e.toggle, e.panel, e.result);
  return e;
}

function open(e, on) {
  e.panel.hidden = !on;
  e.toggle.setAttribute('aria-expanded', String(on));
  e.toggle.textContent = on ? 'Cancel escalation' : 'Escalate…';
  if (on) {
    const risk = e.ctx.risk();
    if (risk) e.risk.value = risk;
    if (!e.district.value) e.district.value = e.ctx.district();
    e.kinds.find((x) => x.radio.checked)?.radio.focus();
  }
}

function send(e) {
  const kind = e.kinds.find((x) => x.radio.checked)?.radio.value;
  const reason = e.reason.value.trim();
  e.error.textContent = '';
  e.kindError.textContent = kind ? '' : 'Choose what kind of escalation.';
  e.reasonError.textContent = reason ? '' : 'Reason: say in a few words why (the supervisors read it).';
  if (!reason) {
    e.reason.setAttribute('aria-invalid', 'true');
    e.reason.setAttribute('aria-describedby', e.reasonError.id);
    e.reason.focus();
    return;
  }
  if (!kind) return;
  const frame = { type: 'escalate', contact_id: e.id, kind, risk: e.risk.value, reason };
  const district = e.district.value.trim();
  if (district) frame.district = district;
  if (!e.ctx.send(frame)) {
    e.error.textContent = 'Not connected: the escalation was not sent. Try again when the connection is back.';
    return;
  }
  e.pending = true;
  e.sendButton.disabled = true;
  e.sendButton.textContent = 'Sending…';
}

/** The server stored the escalation and alerted the supervisors (`escalated`). */
export function onEscalated(e, f) {
  e.pending = false;
  e.sendButton.disabled = false;
  e.sendButton.textContent = 'Send escalation';
  e.last = f;
  e.reason.value = '';
  open(e, false);
  e.result.hidden = false;
  e.placeError.textContent = '';
  const who = f.risk === 'imminent' ? 'every supervisor was alerted' : 'the helpline’s supervisors were alerted';
  e.resultHeading.textContent = `${codeLabel(f.kind)}: escalated at ${timeOf()}`;
  e.resultText.textContent = `Risk ${f.risk}: ${who}.`;
  e.suggestions.clear();
  e.list.replaceChildren();
  if (f.kind === 'emergency_placement') {
    if (f.suggestions.length) {
      e.resultText.textContent += ` ${f.suggestions.length} place${f.suggestions.length === 1 ? '' : 's'} with room, nearest first: reserve one.`;
      for (const s of f.suggestions) addSuggestion(e, s);
    } else {
      e.resultText.textContent += ' No fitting service has a free place now: call your supervisor.';
    }
  }
  e.resultHeading.focus();
  e.ctx.announce(`${e.resultHeading.textContent}. ${e.resultText.textContent}`);
}

/** The server refused the escalation (an `error` frame about this contact): true when it was ours. */
export function onEscalateError(e, f) {
  if (!e.pending) return false;
  e.pending = false;
  e.sendButton.disabled = false;
  e.sendButton.textContent = 'Send escalation';
  e.error.textContent = `Not escalated: ${f.message}.`;
  return true;
}

function addSuggestion(e, s, first = false) {
  const existing = e.suggestions.get(s.service_id);
  if (existing) existing.remove();
  const reserve = el('button', { type: 'button', class: 'reserve', text: 'Reserve a place', 'aria-label': `Reserve a place at ${s.name}` });
  reserve.addEventListener('click', () => reservePlace(e, s, reserve));
  const details = [codeLabel(s.kind), s.district, `${s.free} free place${s.free === 1 ? '' : 's'}`];
  if (s.admission_24_7) details.push('admission 24/7');
  if (s.phone) details.push(`phone ${s.phone}`);
  const item = el(
    'li',
    { class: 'suggestion', dataset: { serviceId: s.service_id } },
    el('p', { class: 'service-name' }, el('strong', { text: s.name })),
    el('p', { class: 'service-details', text: details.join(' · ') }),
    reserve,
  );
  if (first) e.list.prepend(item);
  else e.list.append(item);
  e.suggestions.set(s.service_id, item);
  return item;
}

async function reservePlace(e, s, button) {
  for (const b of e.list.querySelectorAll('button')) b.disabled = true;
  button.textContent = 'Reserving…';
  e.placeError.textContent = '';
  const body = { service_id: s.service_id, escalation_id: e.last.escalation_id };
  const district = e.district.value.trim();
  if (district) body.district = district;
  const res = await apiCall(e.ctx.token(), '/api/v1/placements', { method: 'POST', body });
  for (const b of e.list.querySelectorAll('button')) b.disabled = false;
  button.textContent = 'Reserve a place';
  if (res.status === 201) {
    placed(e, s, res.body);
  } else if (res.status === 409 && res.body?.code === 'service_full') {
    // Someone else took the last place: this one goes, the next suggestion comes first.
    e.suggestions.get(s.service_id)?.remove();
    e.suggestions.delete(s.service_id);
    const next = res.body.next_suggestion;
    let text = `${s.name} has no free place any more: someone else took the last one. Nothing was reserved.`;
    if (next) {
      const item = addSuggestion(e, next, true);
      text += ` Next suggestion: ${next.name} (${next.district}, ${next.free} free).`;
      e.placeError.textContent = text;
      item.querySelector('button').focus();
    } else {
      text += ' No other fitting service has a free place: call your supervisor.';
      e.placeError.textContent = text;
      e.resultHeading.focus();
    }
  } else if (res.status === 0) {
    e.placeError.textContent = 'The server cannot be reached: nothing was reserved. Try again.';
  } else {
    e.placeError.textContent = `Not reserved: ${res.body?.message || `HTTP ${res.status}`}.`;
  }
}

function placed(e, s, body) {
  e.list.replaceChildren();
  e.suggestions.clear();
  const c = body.case;
  const due = c && c.due_at ? `; ${codeLabel(c.due_what || 'case_file')} due ${dateTime(c.due_at)}` : '';
  e.caseBox.hidden = false;
  e.caseBox.replaceChildren(
    el('p', { class: 'placed', text: `Place reserved at ${s.name} (${s.district}).` }),
    c ? el('p', { class: 'case-line' }, 'Case ', el('strong', { class: 'case-number', text: c.number }), ` opened${due}.`) : el('p', { text: 'No case file was opened.' }),
  );
  e.resultHeading.textContent = 'Emergency placement: place reserved';
  e.resultText.textContent = '';
  e.resultHeading.focus();
  e.ctx.announce(`Place reserved at ${s.name}. Case ${c ? c.number : ''}.`);
  if (c) e.ctx.caseOpened(c);
}
