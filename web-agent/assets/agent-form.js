// The contact form of one conversation in the counsellor console: the helpline's taxonomy (caller type,
// age group, gender, district, categories, summary, outcome, risk), a draft saved as it is typed
// (debounced PUT with draft: true, read back after a reload or a reconnect), submission with every
// field's error shown next to the field (422), and risk `imminent` saved at once (the server alerts the
// helpline's supervisors).
//
// Text is put into the page with textContent only.

import { el } from './common.js';
import { apiCall, codeLabel } from './staff.js';
import { t, has, formatTime } from './staff-i18n.js';
import { setText } from './agent-text.js';

/** A time of day in the page's language. */
function timeOf(at) {
  return formatTime(at);
}

/** An option's words (caller type, age group, gender, outcome, risk): the catalogue's, else the code made readable. */
function optionWords(code) {
  return has(`opt.${code}`) ? t(`opt.${code}`) : codeLabel(code);
}

/** A text made by script that translatePage() writes again in a new language (its key kept on the node). */
function keyed(tag, props, key, params) {
  return setText(el(tag, props), key, params);
}

/** A draft is saved this long after the last keystroke or change. */
const SAVE_AFTER_MS = 1200;
/** A save that could not reach the server is tried again after this long. */
const RETRY_MS = 4000;
/** The fields, in the order the server names them. */
const FIELDS = ['caller_type', 'age_group', 'gender', 'district', 'categories', 'summary', 'outcome', 'risk'];
/** A field's label: catalogue key `form.<field>`. */
const label = (name) => t(`form.${name}`);

/** helpline -> Promise of its taxonomy (fetched once per page). */
const taxonomies = new Map();

function taxonomy(ctx, helpline) {
  if (!taxonomies.has(helpline)) {
    const p = apiCall(ctx.token(), `/api/v1/helplines/${encodeURIComponent(helpline)}/taxonomy`).then((r) => {
      if (r.status !== 200) {
        taxonomies.delete(helpline);
        throw new Error(`taxonomy: HTTP ${r.status}`);
      }
      return r.body;
    });
    taxonomies.set(helpline, p);
  }
  return taxonomies.get(helpline);
}

/** What the server said about a field, in words. */
function errorWords(field, message) {
  if (message === 'required') return field === 'categories' ? t('form.chooseCategory') : t('form.required');
  if (message.startsWith('unknown: ')) return t('form.unknown', { what: message.slice(9) });
  if (message.startsWith('too_long: ')) return t('form.tooLong', { what: message.slice(10) });
  return message;
}

/**
 * The contact form of conversation `c` (its section goes in the pane): returns the form's state.
 * `ctx`: `token()`, `announce(text)`, `changed(form)` (after each save: submitted or not, risk).
 */
export function contactForm(c, ctx) {
  const f = {
    c,
    ctx,
    id: c.id,
    fields: {},
    loaded: false,
    touched: false,
    /** Edits so far: a save answered after a later edit does not say "saved". */
    edits: 0,
    submitted: false,
    risk: null,
    next: null,
    busy: false,
    timer: null,
    destroyed: false,
  };
  const headingId = `cf-h-${c.id}`;
  // Not a live region: it changes with every pause in typing. What matters is announced (ctx.announce) or an alert.
  f.status = el('p', { class: 'form-status' });
  f.body = el('div', { class: 'form-fields' }, keyed('p', { class: 'empty' }, 'form.loading'));
  f.formError = el('p', { class: 'error form-error', role: 'alert' });
  f.submit = keyed('button', { type: 'submit', class: 'submit-form' }, 'form.submit');
  f.form = el('form', { class: 'contact-form-fields', noValidate: true, 'aria-labelledby': headingId }, f.body, f.formError, el('div', { class: 'form-actions' }, f.submit));
  f.heading = keyed('h4', { id: headingId, tabindex: '-1' }, 'form.heading');
  f.section = el(
    'section',
    { class: 'contact-form', 'aria-labelledby': headingId, dataset: { contactId: c.id } },
    el('div', { class: 'form-head' }, f.heading, f.status),
    f.form,
  );
  f.form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (f.loaded) request(f, 'submit');
  });
  load(f);
  return f;
}

async function load(f) {
  const helpline = f.c.info.helpline;
  let tax;
  try {
    tax = await taxonomy(f.ctx, helpline);
  } catch {
    f.body.replaceChildren(keyed('p', { class: 'error' }, 'form.loadFailed'));
    if (!f.destroyed) setTimeout(() => load(f), RETRY_MS);
    return;
  }
  if (f.destroyed) return;
  build(f, tax);
  const res = await apiCall(f.ctx.token(), `/api/v1/contacts/${encodeURIComponent(f.id)}/form`);
  if (res.status === 200) {
    // What was typed here meanwhile wins over the stored draft.
    if (!f.touched) fill(f, res.body.form || {});
    f.submitted = res.body.status === 'submitted';
    f.risk = (res.body.form && res.body.form.risk) || null;
    if (res.body.status === 'draft') setStatus(f, 'form.draftSavedAt', { time: timeOf(res.body.updated_at) });
    else if (f.submitted) setStatus(f, 'form.submittedAt', { time: timeOf(res.body.submitted_at) });
    else setStatus(f, 'form.notStarted');
  } else if (res.status === 0) {
    setStatus(f, 'form.cannotRead');
  } else {
    setStatus(f, 'form.readFailed', { why: res.body?.message || `HTTP ${res.status}` });
  }
  f.loaded = true;
  f.ctx.changed(f);
}

function fieldId(f, name) {
  return `cf-${name}-${f.id}`;
}

function errorElement(f, name) {
  return el('p', { class: 'field-error', id: `${fieldId(f, name)}-error` });
}

function selectField(f, name, options) {
  const id = fieldId(f, name);
  const select = el('select', { id, name }, keyed('option', { value: '' }, 'form.choose'), ...options.map((o) => (has(`opt.${o}`) ? keyed('option', { value: o }, `opt.${o}`) : el('option', { value: o, text: optionWords(o) }))));
  const error = errorElement(f, name);
  f.fields[name] = { inputs: [select], error, box: select };
  select.addEventListener('change', () => edited(f, name));
  return el('div', { class: 'form-field', dataset: { field: name } }, keyed('label', { for: id }, `form.${name}`), select, error);
}

function build(f, tax) {
  const districtId = fieldId(f, 'district');
  const district = el('input', { id: districtId, name: 'district', type: 'text', maxLength: 100, autocomplete: 'off' });
  const districtError = errorElement(f, 'district');
  f.fields.district = { inputs: [district], error: districtError, box: district };
  district.addEventListener('input', () => edited(f, 'district'));

  const catError = errorElement(f, 'categories');
  const catBoxes = tax.categories.map((cat) => {
    const box = el('input', { type: 'checkbox', name: 'categories', value: cat.code });
    box.addEventListener('change', () => edited(f, 'categories'));
    // The helpline's categories in the page's language (the server's English label for one the catalogue lacks).
    const words = has(`cat.${cat.code}`) ? keyed('span', {}, `cat.${cat.code}`) : el('span', { text: cat.label });
    return { box, label: el('label', { class: 'check' }, box, ' ', words) };
  });
  const categories = el(
    'fieldset',
    { class: 'categories', 'aria-describedby': catError.id },
    keyed('legend', {}, 'form.categories'),
    el('div', { class: 'checks' }, ...catBoxes.map((x) => x.label)),
  );
  f.fields.categories = { inputs: catBoxes.map((x) => x.box), error: catError, box: categories };

  const summaryId = fieldId(f, 'summary');
  const summary = el('textarea', { id: summaryId, name: 'summary', rows: 3, maxLength: 8000 });
  const summaryError = errorElement(f, 'summary');
  f.fields.summary = { inputs: [summary], error: summaryError, box: summary };
  summary.addEventListener('input', () => edited(f, 'summary'));

  const riskError = errorElement(f, 'risk');
  const radios = tax.risks.map((r) => {
    const radio = el('input', { type: 'radio', name: `risk-${f.id}`, value: r });
    radio.addEventListener('change', () => {
      edited(f, 'risk');
      if (r === 'imminent') {
        // Not debounced: supervisors must hear of it now, even before the form is complete.
        request(f, 'draft');
        f.ctx.announce(t('form.imminentAnnounce'));
      }
    });
    const words = has(`form.riskLevel.${r}`) ? keyed('span', {}, `form.riskLevel.${r}`) : el('span', { text: codeLabel(r) });
    return { radio, label: el('label', { class: `check risk-${r}` }, radio, ' ', words) };
  });
  const risk = el('fieldset', { class: 'risk', 'aria-describedby': riskError.id }, keyed('legend', {}, 'form.risk'), el('div', { class: 'checks row' }, ...radios.map((x) => x.label)));
  f.fields.risk = { inputs: radios.map((x) => x.radio), error: riskError, box: risk };

  f.body.replaceChildren(
    el(
      'div',
      { class: 'form-grid' },
      selectField(f, 'caller_type', tax.caller_types),
      selectField(f, 'age_group', tax.age_groups),
      selectField(f, 'gender', tax.genders),
      el('div', { class: 'form-field', dataset: { field: 'district' } }, keyed('label', { for: districtId }, 'form.district'), district, districtError),
    ),
    el('div', { class: 'form-field', dataset: { field: 'categories' } }, categories, catError),
    el('div', { class: 'form-field', dataset: { field: 'summary' } }, keyed('label', { for: summaryId }, 'form.summary'), summary, summaryError),
    el('div', { class: 'form-grid' }, selectField(f, 'outcome', tax.outcomes)),
    el('div', { class: 'form-field', dataset: { field: 'risk' } }, risk, riskError),
  );
}

/** The form as the server takes it (empty fields left out). */
export function values(f) {
  const v = {};
  for (const name of FIELDS) {
    const field = f.fields[name];
    if (!field) continue;
    if (name === 'categories') {
      v.categories = field.inputs.filter((b) => b.checked).map((b) => b.value);
    } else if (name === 'risk') {
      const on = field.inputs.find((r) => r.checked);
      if (on) v.risk = on.value;
    } else {
      const value = field.inputs[0].value.trim();
      if (value) v[name] = value;
    }
  }
  return v;
}

function fill(f, form) {
  for (const name of FIELDS) {
    const field = f.fields[name];
    if (!field) continue;
    if (name === 'categories') {
      const on = new Set(form.categories || []);
      for (const b of field.inputs) b.checked = on.has(b.value);
    } else if (name === 'risk') {
      for (const r of field.inputs) r.checked = r.value === form.risk;
    } else {
      field.inputs[0].value = form[name] || '';
    }
  }
}

/** The line beside the form's heading: catalogue key `key` (empty for none), written again in a new language. */
function setStatus(f, key, params) {
  if (key) setText(f.status, key, params);
  else {
    delete f.status.dataset.i18n;
    f.status.textContent = '';
  }
}

function edited(f, name) {
  f.touched = true;
  f.edits += 1;
  clearError(f, name);
  setStatus(f, 'form.changed');
  clearTimeout(f.timer);
  f.timer = setTimeout(() => request(f, 'draft'), SAVE_AFTER_MS);
}

function clearError(f, name) {
  const field = f.fields[name];
  if (!field || !field.error.textContent) return;
  field.error.textContent = '';
  for (const i of field.inputs) {
    i.removeAttribute('aria-invalid');
    if (i === field.box) i.removeAttribute('aria-describedby');
  }
}

function showErrors(f, errors) {
  let first = null;
  for (const name of FIELDS) {
    const field = f.fields[name];
    if (!field) continue;
    const message = errors[name];
    if (!message) {
      clearError(f, name);
      continue;
    }
    field.error.textContent = `${label(name)}: ${errorWords(name, message)}`;
    for (const i of field.inputs) i.setAttribute('aria-invalid', 'true');
    if (field.box.tagName !== 'FIELDSET') field.box.setAttribute('aria-describedby', field.error.id);
    if (!first) first = field.inputs[0];
  }
  return first;
}

/** Saves (`draft`) or submits (`submit`): one request at a time; a submit asked meanwhile wins. */
function request(f, kind) {
  clearTimeout(f.timer);
  f.next = f.next === 'submit' ? 'submit' : kind;
  if (!f.busy) pump(f);
}

async function pump(f) {
  while (f.next && !f.destroyed) {
    const kind = f.next;
    f.next = null;
    const submit = kind === 'submit';
    const form = values(f);
    const edits = f.edits;
    f.busy = true;
    f.submit.disabled = submit;
    setStatus(f, submit ? 'form.submitting' : 'form.savingDraft');
    const res = await apiCall(f.ctx.token(), `/api/v1/contacts/${encodeURIComponent(f.id)}/form`, {
      method: 'PUT',
      body: { draft: !submit, form },
    });
    f.busy = false;
    f.submit.disabled = false;
    if (f.destroyed) return;
    if (res.status !== 0 && res.status < 500) f.failing = false;
    if (res.status === 200) {
      const wasImminent = f.risk === 'imminent';
      f.risk = form.risk || null;
      f.submitted = res.body.status === 'submitted';
      if (!f.next) showErrors(f, {});
      f.formError.textContent = '';
      if (f.edits !== edits && !f.next) {
        setStatus(f, 'form.changed');
      } else if (submit) {
        setStatus(f, 'form.submittedDone', { time: timeOf(res.body.submitted_at) });
        f.ctx.announce(t('form.submittedAnnounce'));
      } else {
        const alerted = f.risk === 'imminent' && !wasImminent;
        setStatus(f, `form.${f.submitted ? 'savedAt' : 'draftSavedAt'}${alerted ? 'Alerted' : ''}`, { time: timeOf(res.body.updated_at) });
      }
      f.ctx.changed(f);
    } else if (res.status === 422 && res.body?.fields) {
      const first = showErrors(f, res.body.fields);
      const n = Object.keys(res.body.fields).length;
      f.formError.textContent = t(submit ? 'form.notSubmittedN' : 'form.notSavedN', { n });
      setStatus(f, submit ? 'form.notSubmitted' : 'form.notSaved');
      if (submit && first) first.focus();
    } else if (res.status === 0 || res.status >= 500) {
      // Kept in the page; sent again (the last version of everything typed) when the server answers.
      setStatus(f, submit ? 'form.notSubmittedYet' : 'form.notSavedYet');
      if (!f.failing) f.ctx.announce(t('form.failingAnnounce'));
      f.failing = true;
      if (!f.next) f.next = kind;
      clearTimeout(f.timer);
      f.timer = setTimeout(() => pump(f), RETRY_MS);
      return;
    } else {
      f.formError.textContent = t(submit ? 'form.notSubmittedWhy' : 'form.notSavedWhy', { why: res.body?.message || `HTTP ${res.status}` });
      setStatus(f, '');
    }
  }
}

/** Stops saving (the pane is closed or the counsellor signs out). */
export function dropForm(f) {
  f.destroyed = true;
  clearTimeout(f.timer);
}

/** The form's district, if any (the escalation suggests services near it). */
export function district(f) {
  return f?.fields.district?.inputs[0].value.trim() || '';
}
