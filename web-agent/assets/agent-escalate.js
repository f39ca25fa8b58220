// Escalation from a conversation in the counsellor console: kind, risk, district and reason go out as the
// `escalate` frame; the server alerts the supervisors and, for an emergency placement, answers with
// suggestions (services with a free place, the person's district first). Reserve takes a place
// (POST /api/v1/placements): the case number is shown; when someone else took the last place, a clear
// message and the next suggestion.
//
// Text is put into the page with textContent only.

import { el } from './common.js';
import { apiCall, codeLabel, dateTime } from './staff.js';
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

/** An element whose text is catalogue key `key` (written again in a new language). */
function keyed(tag, props, key, params) {
  return setText(el(tag, props), key, params);
}

const KINDS = ['emergency_placement', 'child_protection', 'emergency_services'];
const RISKS = ['none', 'low', 'medium', 'high', 'imminent'];

/**
 * The Escalate section of conversation `c`. `ctx`: `token()`, `send(frame)`, `announce(text)`,
 * `risk()` and `district()` (from the contact form, to prefill), `caseOpened(case)`.
 */
export function escalation(c, ctx) {
  const e = { c, ctx, id: c.id, pending: false, last: null, suggestions: new Map() };
  const base = `esc-${c.id}`;
  e.toggle = el('button', { type: 'button', class: 'danger escalate-toggle', 'aria-expanded': 'false', 'aria-controls': `${base}-panel`, text: t('console.esc.toggle'), dataset: { i18n: 'console.esc.toggle' } });
  e.toggle.addEventListener('click', () => open(e, e.panel.hidden));

  e.kindError = el('p', { class: 'field-error', id: `${base}-kind-error` });
  e.kinds = KINDS.map((k, i) => {
    const radio = el('input', { type: 'radio', name: `${base}-kind`, value: k, checked: i === 0 });
    return { radio, label: el('label', { class: 'check' }, radio, ' ', keyed('span', {}, `kind.${k}`)) };
  });
  const kindSet = el('fieldset', { class: 'kinds', 'aria-describedby': e.kindError.id }, keyed('legend', {}, 'console.esc.kind'), el('div', { class: 'checks' }, ...e.kinds.map((x) => x.label)));
  e.risk = el('select', { id: `${base}-risk` }, ...RISKS.map((r) => keyed('option', { value: r }, `risk.${r}`)));
  e.risk.value = 'high';
  e.district = el('input', { id: `${base}-district`, type: 'text', maxLength: 100, autocomplete: 'off' });
  e.reasonError = el('p', { class: 'field-error', id: `${base}-reason-error` });
  e.reason = el('textarea', { id: `${base}-reason`, rows: 2, maxLength: 2000 });
  e.reason.addEventListener('input', () => {
    e.reasonError.textContent = '';
    e.reason.removeAttribute('aria-invalid');
  });
  e.sendButton = keyed('button', { type: 'submit', class: 'danger send-escalation' }, 'console.esc.send');
  e.error = el('p', { class: 'error', role: 'alert' });
  e.form = el(
    'form',
    { class: 'escalate-form', noValidate: true, 'aria-label': t('console.esc.formLabel'), dataset: { i18nAttr: 'aria-label:console.esc.formLabel' } },
    kindSet,
    e.kindError,
    el(
      'div',
      { class: 'form-grid' },
      el('div', { class: 'form-field' }, keyed('label', { for: e.risk.id }, 'form.risk'), e.risk),
      el('div', { class: 'form-field' }, keyed('label', { for: e.district.id }, 'console.esc.district'), e.district),
    ),
    el('div', { class: 'form-field' }, keyed('label', { for: e.reason.id }, 'console.esc.reason'), e.reason, e.reasonError),
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
  e.list = el('ul', { class: 'suggestions', 'aria-label': t('console.esc.places'), dataset: { i18nAttr: 'aria-label:console.esc.places' } });
  e.result = el('div', { class: 'escalation-result', hidden: true }, e.resultHeading, e.resultText, e.placeError, e.caseBox, e.list);
  e.panel = el('div', { class: 'escalate-panel', id: `${base}-panel`, hidden: true }, e.form);
  e.section = el('section', { class: 'escalate', 'aria-label': t('console.esc.section'), dataset: { contactId: c.id, i18nAttr: 'aria-label:console.esc.section' } }, e.toggle, e.panel, e.result);
  return e;
}

function open(e, on) {
  e.panel.hidden = !on;
  e.toggle.setAttribute('aria-expanded', String(on));
  setText(e.toggle, on ? 'console.esc.cancel' : 'console.esc.toggle');
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
  e.kindError.textContent = kind ? '' : t('console.esc.chooseKind');
  e.reasonError.textContent = reason ? '' : t('console.esc.reasonMissing');
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
    e.error.textContent = t('console.esc.notConnected');
    return;
  }
  e.pending = true;
  e.sendButton.disabled = true;
  setText(e.sendButton, 'console.esc.sending');
}

/** The server stored the escalation and alerted the supervisors (`escalated`). */
export function onEscalated(e, f) {
  e.pending = false;
  e.sendButton.disabled = false;
  setText(e.sendButton, 'console.esc.send');
  e.last = f;
  e.reason.value = '';
  open(e, false);
  e.result.hidden = false;
  e.placeError.textContent = '';
  const who = t(f.risk === 'imminent' ? 'console.esc.allAlerted' : 'console.esc.helplineAlerted');
  e.resultHeading.textContent = t('console.esc.heading', { kind: words('kind', f.kind), time: timeOf() });
  e.resultText.textContent = t('console.esc.result', { risk: words('risk', f.risk), who });
  e.suggestions.clear();
  e.list.replaceChildren();
  if (f.kind === 'emergency_placement') {
    if (f.suggestions.length) {
      e.resultText.textContent += ` ${t('console.esc.withRoom', { n: f.suggestions.length })}`;
      for (const s of f.suggestions) addSuggestion(e, s);
    } else {
      e.resultText.textContent += ` ${t('console.esc.noPlace')}`;
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
  setText(e.sendButton, 'console.esc.send');
  e.error.textContent = t('console.esc.refused', { why: f.message });
  return true;
}

function addSuggestion(e, s, first = false) {
  const existing = e.suggestions.get(s.service_id);
  if (existing) existing.remove();
  const reserve = el('button', { type: 'button', class: 'reserve', text: t('console.esc.reserve'), 'aria-label': t('console.esc.reserveAt', { name: s.name }) });
  reserve.addEventListener('click', () => reservePlace(e, s, reserve));
  const details = [words('svc', s.kind), s.district, t('console.esc.free', { n: s.free })];
  if (s.admission_24_7) details.push(t('console.esc.admission'));
  if (s.phone) details.push(t('console.esc.phone', { phone: s.phone }));
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
  button.textContent = t('console.esc.reserving');
  e.placeError.textContent = '';
  const body = { service_id: s.service_id, escalation_id: e.last.escalation_id };
  const district = e.district.value.trim();
  if (district) body.district = district;
  const res = await apiCall(e.ctx.token(), '/api/v1/placements', { method: 'POST', body });
  for (const b of e.list.querySelectorAll('button')) b.disabled = false;
  button.textContent = t('console.esc.reserve');
  if (res.status === 201) {
    placed(e, s, res.body);
  } else if (res.status === 409 && res.body?.code === 'service_full') {
    // Someone else took the last place: this one goes, the next suggestion comes first.
    e.suggestions.get(s.service_id)?.remove();
    e.suggestions.delete(s.service_id);
    const next = res.body.next_suggestion;
    let text = t('console.esc.full', { name: s.name });
    if (next) {
      const item = addSuggestion(e, next, true);
      text += ` ${t('console.esc.next', { name: next.name, district: next.district, n: next.free })}`;
      e.placeError.textContent = text;
      item.querySelector('button').focus();
    } else {
      text += ` ${t('console.esc.noOther')}`;
      e.placeError.textContent = text;
      e.resultHeading.focus();
    }
  } else if (res.status === 0) {
    e.placeError.textContent = t('console.esc.unreachable');
  } else {
    e.placeError.textContent = t('console.esc.notReserved', { why: res.body?.message || `HTTP ${res.status}` });
  }
}

function placed(e, s, body) {
  e.list.replaceChildren();
  e.suggestions.clear();
  const c = body.case;
  const opened = c && c.due_at
    ? t('console.esc.openedDue', { what: words('due', c.due_what || 'case_file'), when: dateTime(c.due_at) })
    : t('console.esc.opened');
  e.caseBox.hidden = false;
  e.caseBox.replaceChildren(
    el('p', { class: 'placed', text: t('console.esc.placed', { name: s.name, district: s.district }) }),
    c ? el('p', { class: 'case-line' }, t('console.esc.caseWord'), ' ', el('strong', { class: 'case-number', text: c.number }), ` ${opened}`) : el('p', { text: t('console.esc.noCase') }),
  );
  e.resultHeading.textContent = t('console.esc.placedHeading');
  e.resultText.textContent = '';
  e.resultHeading.focus();
  e.ctx.announce(t('console.esc.placedAnnounce', { name: s.name, number: c ? c.number : '' }));
  if (c) e.ctx.caseOpened(c);
}
