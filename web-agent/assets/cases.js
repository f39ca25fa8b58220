// The case managers' workspace (`/cases`, docs/cases.md "The workspace"): my cases by next deadline
// (overdue and due soon first), one case on one screen (person, stage and deadline, timeline, placements,
// referrals, who may see it), the three-day case file as a guided form, search by case number, and a case
// opened without a helpline contact. REST only (`/api/v1/cases…`); every word through staff-i18n.js
// (keys `cases.…`). Usable on a tablet: one column below 60rem, large touch targets.

import { $, el } from './common.js';
import { mountLogin, submitLogin, showLogin, savedToken, forgetToken, revokeToken, apiCall, refreshNow, initLocale, showSignedIn, CASES_TOKEN_KEY } from './staff.js';
import { t, has, locale, onLocaleChange, translatePage, formatDateTime } from './staff-i18n.js';
import { HELPLINE_NAMES } from './chat-i18n.js';

const TOKEN_KEY = CASES_TOKEN_KEY;
const REFRESH_EVERY_MS = 60_000;
const SOON_MS = 24 * 3_600_000;
/** The referral services (`casework::REFERRAL_KINDS`). */
const SERVICES = ['psychosocial_rehabilitation', 'maternal_service', 'family_support', 'social_assistance', 'legal_aid', 'health', 'mental_health', 'law_enforcement', 'education'];

const state = {
  token: null,
  me: null,
  cases: [],
  helplines: [],
  /** The services registry (referrals go to these). */
  services: [],
  /** Each helpline's stage forms (as data: `GET /api/v1/helplines/{name}/stage-forms`). */
  forms: {},
  /** My tasks falling due (the deadline alerts). */
  alerts: [],
  /** Transfers offered to me. */
  offers: [],
  /** What was typed in the stage forms, by form code, kept across redraws until saved. */
  formValues: {},
  /** The case shown: `{ file, person, personStatus, referrals, tasks, approvals }`. */
  open: null,
  /** The guided form's step (1 to 3) and what was typed in it, kept across redraws. */
  file: { step: 1, values: {} },
  timer: null,
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

// ----- words ---------------------------------------------------------------------

function word(prefix, code) {
  return has(`${prefix}.${code}`) ? t(`${prefix}.${code}`) : String(code || '').replaceAll('_', ' ');
}

function helplineName(name) {
  const own = HELPLINE_NAMES[name]?.[locale()];
  return own || state.helplines.find((h) => h.name === name)?.display_name || name;
}

function notice(text, error = false) {
  const n = $('notice');
  n.classList.toggle('error', error);
  n.textContent = text;
}

/** Where a case stands against its deadline at `now`: `overdue`, `soon` (within 24 h), `later` or `none`. */
function urgency(c, now = Date.now()) {
  if (c.stage === 'closed' || c.due_at_ms == null) return 'none';
  if (c.due_at_ms <= now) return 'overdue';
  if (c.due_at_ms <= now + SOON_MS) return 'soon';
  return 'later';
}

function dueText(c) {
  const u = urgency(c);
  if (u === 'none') return t('cases.due.none');
  return t(`cases.due.${u}`, { what: word('cases.what', c.due_what), when: formatDateTime(c.due_at_ms) });
}

// ----- my cases ----------------------------------------------------------------------

async function loadMine() {
  const res = await api('/api/v1/cases');
  if (res.status === 401) return undefined;
  if (res.status !== 200) return notice(t('cases.error.load'), true);
  const rank = { overdue: 0, soon: 1, later: 2, none: 3 };
  state.cases = res.body.cases.slice().sort((a, b) => rank[urgency(a)] - rank[urgency(b)] || (a.due_at_ms ?? Infinity) - (b.due_at_ms ?? Infinity));
  drawMine();
  await loadAlerts();
  await loadOffers();
}

/** My open tasks due within 24 hours or overdue (`GET /api/v1/tasks`): the workspace's deadline alerts. */
async function loadAlerts() {
  const res = await api('/api/v1/tasks?due=24h');
  if (res.status !== 200) return;
  state.alerts = res.body.tasks;
  drawAlerts();
}

function drawAlerts() {
  $('alerts').hidden = state.alerts.length === 0;
  $('alert-list').replaceChildren(
    ...state.alerts.map((task) => {
      const c = state.cases.find((x) => x.id === task.case_id);
      const b = el('button', { type: 'button', class: 'case-link', dataset: { urgency: task.overdue ? 'overdue' : 'soon' } },
        el('span', { class: 'number', text: c?.number || '' }),
        el('span', { class: 'label', text: task.title }),
        el('span', { class: `due due-${task.overdue ? 'overdue' : 'soon'}`, text: t(task.overdue ? 'cases.task.overdue' : 'cases.task.dueSoon', { when: formatDateTime(task.due_at_ms) }) }));
      b.addEventListener('click', () => openCase(task.case_id));
      return el('li', {}, b);
    }),
  );
}

/** Transfers offered to me (`GET /api/v1/transfers`), each accepted or refused here. */
async function loadOffers() {
  const res = await api('/api/v1/transfers');
  if (res.status !== 200) return;
  state.offers = res.body.transfers;
  drawOffers();
}

function drawOffers() {
  $('offers').hidden = state.offers.length === 0;
  $('offer-list').replaceChildren(
    ...state.offers.map((o) => {
      const decide = async (decision) => {
        const res = await api(`/api/v1/transfers/${encodeURIComponent(o.id)}/decision`, { method: 'POST', body: { decision } });
        if (res.status !== 200) return notice(t('cases.error.save'), true);
        notice(t(decision === 'accepted' ? 'cases.transfer.accepted' : 'cases.transfer.refused', { number: o.case_number }));
        await loadMine();
        if (decision === 'accepted') await openCase(o.case_id);
        return undefined;
      };
      const accept = el('button', { type: 'button', text: t('cases.transfer.accept'), 'aria-label': t('cases.transfer.acceptNamed', { number: o.case_number }) });
      accept.addEventListener('click', () => decide('accepted'));
      const refuse = el('button', { type: 'button', class: 'secondary', text: t('cases.transfer.refuse'), 'aria-label': t('cases.transfer.refuseNamed', { number: o.case_number }) });
      refuse.addEventListener('click', () => decide('refused'));
      return el('li', { dataset: { transferId: o.id } }, el('strong', { text: o.case_number }), ' ', el('span', { text: o.person_label }),
        o.note ? el('p', { class: 'muted', text: t('cases.transfer.note', { text: o.note }) }) : '', el('div', { class: 'actions' }, accept, refuse));
    }),
  );
}

function drawMine() {
  const list = $('mine');
  list.replaceChildren(
    ...state.cases.map((c) => {
      const u = urgency(c);
      const button = el(
        'button',
        { type: 'button', class: 'case-link', dataset: { caseId: c.id, urgency: u }, 'aria-current': state.open?.file.case.id === c.id ? 'true' : 'false' },
        el('span', { class: 'number', text: c.number }),
        el('span', { class: 'label', text: c.person_label }),
        el('span', { class: 'stage', text: word('cases.stage', c.stage) }),
        el('span', { class: `due due-${u}`, text: dueText(c) }),
      );
      button.addEventListener('click', () => openCase(c.id));
      return el('li', {}, button);
    }),
  );
  $('mine-empty').hidden = state.cases.length > 0;
}

// ----- one case ----------------------------------------------------------------------

async function openCase(id, { focus = true } = {}) {
  const res = await api(`/api/v1/cases/${encodeURIComponent(id)}`);
  if (res.status === 401) return undefined;
  if (res.status !== 200) return notice(t('cases.error.case'), true);
  const person = await api(`/api/v1/cases/${encodeURIComponent(id)}/person`);
  const referrals = await api(`/api/v1/cases/${encodeURIComponent(id)}/referrals`);
  const tasks = await api(`/api/v1/cases/${encodeURIComponent(id)}/tasks`);
  const approvals = await api(`/api/v1/cases/${encodeURIComponent(id)}/approvals`);
  const helpline = res.body.case.helpline;
  if (!state.forms[helpline]) {
    const forms = await api(`/api/v1/helplines/${encodeURIComponent(helpline)}/stage-forms`);
    if (forms.status === 200) state.forms[helpline] = forms.body.forms;
  }
  if (state.open?.file.case.id !== id) state.file = { step: 1, values: {} };
  state.open = {
    file: res.body,
    person: person.status === 200 ? person.body : null,
    personStatus: person.status,
    referrals: referrals.status === 200 ? referrals.body.referrals : [],
    tasks: tasks.status === 200 ? tasks.body.tasks : [],
    approvals: approvals.status === 200 ? approvals.body.approvals : [],
  };
  const url = new URL(location.href);
  url.searchParams.set('case', id);
  history.replaceState(null, '', url);
  $('welcome').hidden = true;
  $('new-case-panel').hidden = true;
  drawCase();
  drawMine();
  if (focus) $('case-heading').focus();
}

function section(id, key, ...children) {
  return el('section', { id, class: 'panel', 'aria-labelledby': `${id}-heading` }, el('h3', { id: `${id}-heading`, text: t(key) }), ...children);
}

function facts(pairs) {
  return el('dl', { class: 'facts' }, ...pairs.flatMap(([k, v]) => [el('dt', { text: t(k) }), el('dd', { text: v })]));
}

function managerText(c) {
  if (!c.case_manager_id) return t('cases.manager.none');
  return c.case_manager_id === state.me?.id ? t('cases.manager.you') : t('cases.manager.other');
}

function drawCase() {
  const { file, person, personStatus } = state.open;
  const c = file.case;
  const u = urgency(c);
  const article = $('case');
  article.hidden = false;
  const header = el(
    'header',
    { class: 'case-head' },
    el('h2', { id: 'case-heading', tabindex: '-1' }, el('span', { class: 'number', text: c.number }), ' ', el('span', { text: c.person_label })),
    el('p', { id: 'case-due', class: `due due-${u}`, text: dueText(c) }),
  );
  const summary = facts([
    ['cases.fact.stage', word('cases.stage', c.stage)],
    ['cases.fact.helpline', helplineName(c.helpline)],
    ['cases.fact.district', c.district || t('cases.fact.noDistrict')],
    ['cases.fact.manager', managerText(c)],
    ['cases.fact.opened', formatDateTime(c.opened_at_ms)],
  ]);
  summary.id = 'case-facts';
  article.replaceChildren(header, summary, stagePanel(c), approvalsPanel(c), personPanel(person, personStatus));
  if (c.stage === 'open') article.append(caseFilePanel(c));
  for (const def of (state.forms[c.helpline] || []).filter((f) => f.stage === c.stage)) article.append(stageFormPanel(c, def));
  article.append(tasksPanel(c), notePanel(), timelinePanel(file), placementsPanel(file), referralsPanel(file), whoPanel(c));
}

function stagePanel(c) {
  const buttons = c.allowed_next.map((s) => {
    const b = el('button', { type: 'button', class: s === 'closed' ? 'danger' : 'secondary', dataset: { stage: s }, text: t('cases.stage.moveTo', { stage: word('cases.stage', s) }) });
    b.addEventListener('click', () => moveStage(c.id, s));
    return b;
  });
  return section('stage', 'cases.stage.heading', el('p', { text: t('cases.stage.now', { stage: word('cases.stage', c.stage) }) }), el('div', { class: 'actions' }, ...buttons));
}

async function moveStage(id, stage) {
  const res = await api(`/api/v1/cases/${encodeURIComponent(id)}/stage`, { method: 'POST', body: { stage } });
  if (res.status === 200) notice(t('cases.stage.moved', { stage: word('cases.stage', stage) }));
  else if (res.status === 409 && res.body?.approval_needed) notice(t('cases.approval.needed', { kind: word('cases.approval.kind', res.body.approval_needed) }), true);
  else if (res.status === 403) notice(t('cases.error.forbidden'), true);
  else notice(t('cases.error.save'), true);
  await refresh(id);
}

/** The supervisor's approvals of the plan and the closure: the requests with their answers, and asking. */
function approvalsPanel(c) {
  const items = state.open.approvals.map((a) =>
    el('li', { dataset: { kind: a.kind, status: a.status } },
      el('span', { text: t('cases.approval.line', { kind: word('cases.approval.kind', a.kind), status: word('cases.approval.status', a.status) }) }),
      a.comment ? el('span', { class: 'feedback', text: ` — ${t('cases.approval.comment', { text: a.comment })}` }) : ''),
  );
  const list = items.length ? el('ul', { class: 'approvals' }, ...items) : el('p', { class: 'empty', text: t('cases.approval.none') });
  const asks = [];
  const pending = (kind) => state.open.approvals.some((a) => a.kind === kind && a.status === 'pending');
  if (c.stage === 'intervention_plan' && !pending('plan')) asks.push('plan');
  if (c.stage !== 'closed' && c.stage !== 'open' && !pending('closure')) asks.push('closure');
  const buttons = asks.map((kind) => {
    const b = el('button', { type: 'button', class: 'secondary', text: t(`cases.approval.ask.${kind}`) });
    b.addEventListener('click', async () => {
      const res = await api(`/api/v1/cases/${encodeURIComponent(c.id)}/approvals`, { method: 'POST', body: { kind } });
      if (res.status === 201) notice(t('cases.approval.asked', { kind: word('cases.approval.kind', kind) }));
      else notice(res.status === 403 ? t('cases.error.forbidden') : t('cases.error.save'), true);
      await refresh(c.id);
    });
    return b;
  });
  return section('approvals', 'cases.approval.heading', list, buttons.length ? el('div', { class: 'actions' }, ...buttons) : '');
}

function personPanel(person, status) {
  if (status === 403 || !person) return section('person', 'cases.person.heading', el('p', { class: 'muted', text: t('cases.person.hidden') }));
  const fields = ['full_name', 'birth_date', 'address', 'phone'];
  const filled = fields.filter((f) => person[f]);
  const body = filled.length ? facts(filled.map((f) => [`cases.person.${f}`, person[f]])) : el('p', { class: 'empty', text: t('cases.person.none') });
  return section('person', 'cases.person.heading', body);
}

// ----- the three-day case file ---------------------------------------------------------

/** The guided form: 1. the person, 2. the situation, 3. the services needed; then filed at once. */
function caseFilePanel(c) {
  const v = state.file.values;
  const step = state.file.step;
  const input = (id, key, type = 'text') => {
    const i = el('input', { id, type, value: v[id] ?? state.open.person?.[id.replace('file-', '').replaceAll('-', '_')] ?? '', autocomplete: 'off' });
    i.addEventListener('input', () => (v[id] = i.value));
    return el('div', { class: 'field' }, el('label', { for: id, text: t(key) }), i);
  };
  const area = (id, key, hint) => {
    const a = el('textarea', { id, rows: 4, value: v[id] ?? '' });
    a.setAttribute('aria-describedby', `${id}-hint`);
    a.addEventListener('input', () => (v[id] = a.value));
    return el('div', { class: 'field' }, el('label', { for: id, text: t(key) }), el('p', { id: `${id}-hint`, class: 'muted', text: t(hint) }), a);
  };
  let body;
  if (step === 1) {
    body = el('fieldset', {}, el('legend', { text: t('cases.file.step1') }), input('file-full-name', 'cases.person.full_name'), input('file-birth-date', 'cases.person.birth_date'),
      input('file-address', 'cases.person.address'), input('file-phone', 'cases.person.phone'));
  } else if (step === 2) {
    body = el('fieldset', {}, el('legend', { text: t('cases.file.step2') }), area('file-findings', 'cases.file.findings', 'cases.file.findingsHint'), area('file-safety', 'cases.file.safety', 'cases.file.safetyHint'));
  } else {
    const boxes = SERVICES.map((s) => {
      const box = el('input', { id: `file-service-${s}`, type: 'checkbox', checked: Boolean(v[`service:${s}`]) });
      box.addEventListener('change', () => (v[`service:${s}`] = box.checked));
      return el('div', { class: 'check' }, box, el('label', { for: box.id, text: word('cases.service', s) }));
    });
    body = el('fieldset', {}, el('legend', { text: t('cases.file.step3') }), ...boxes);
  }
  const error = el('p', { id: 'file-error', class: 'error', role: 'alert' });
  const back = el('button', { type: 'button', class: 'secondary', text: t('cases.file.back'), disabled: step === 1 });
  back.addEventListener('click', () => goStep(step - 1));
  const next = el('button', { type: 'submit', text: step < 3 ? t('cases.file.next') : t('cases.file.submit') });
  const form = el('form', { id: 'case-file-form', noValidate: true }, body, error, el('div', { class: 'actions' }, back, next));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (step === 2 && !(v['file-findings'] || '').trim()) {
      error.textContent = t('cases.file.findingsMissing');
      $('file-findings').focus();
      return;
    }
    if (step < 3) goStep(step + 1);
    else submitFile(c);
  });
  return section(
    'case-file',
    'cases.file.heading',
    el('p', { class: 'muted', text: t('cases.file.intro', { when: formatDateTime(c.due_at_ms) }) }),
    el('p', { id: 'file-progress', class: 'progress', text: t('cases.file.progress', { n: step, total: 3 }) }),
    form,
  );
}

function goStep(step) {
  state.file.step = Math.min(3, Math.max(1, step));
  drawCase();
  $('case-file-form').querySelector('input, textarea')?.focus();
}

async function submitFile(c) {
  const v = state.file.values;
  const id = encodeURIComponent(c.id);
  const details = {};
  for (const f of ['full_name', 'birth_date', 'address', 'phone']) {
    const typed = (v[`file-${f.replaceAll('_', '-')}`] ?? state.open.person?.[f] ?? '').trim();
    details[f] = typed || null;
  }
  const steps = [];
  if (state.open.personStatus === 200) steps.push(() => api(`/api/v1/cases/${id}/person`, { method: 'PUT', body: details }));
  const findings = { findings: v['file-findings'].trim(), file: 'case_file' };
  if ((v['file-safety'] || '').trim()) findings.safety = v['file-safety'].trim();
  steps.push(() => api(`/api/v1/cases/${id}/entries`, { method: 'POST', body: { kind: 'assessment', body: findings } }));
  for (const s of SERVICES.filter((s) => v[`service:${s}`])) {
    steps.push(() => api(`/api/v1/cases/${id}/entries`, { method: 'POST', body: { kind: 'referral', body: { service: s } } }));
  }
  steps.push(() => api(`/api/v1/cases/${id}/stage`, { method: 'POST', body: { stage: 'initial_assessment' } }));
  for (const step of steps) {
    const res = await step();
    if (res.status >= 300) {
      $('file-error').textContent = res.status === 403 ? t('cases.error.forbidden') : t('cases.error.save');
      return;
    }
  }
  state.file = { step: 1, values: {} };
  notice(t('cases.file.done', { number: c.number }));
  await refresh(c.id);
}

// ----- stage forms (defined as data per helpline) ------------------------------------------

/** A label from the data in the page's language (else English, else the code). */
function dataLabel(labels, fallback) {
  return (labels && (labels[locale()] || labels.en)) || fallback;
}

function optionLabel(code) {
  return word('cases.option', code);
}

/** One stage form drawn from its definition; each field's fault shown next to it. */
function stageFormPanel(c, def) {
  const values = (state.formValues[def.form] ||= {});
  const id = (name) => `form-${def.form}-${name}`;
  const fields = def.fields.map((f) => {
    const label = `${dataLabel(f.label, f.name)}${f.required ? ' *' : ''}`;
    const error = el('p', { id: `${id(f.name)}-error`, class: 'error field-error', role: 'alert' });
    if (f.kind === 'actions') return actionsField(def, f, values, label, error);
    let input;
    if (f.kind === 'choice') {
      input = el('select', { id: id(f.name) }, el('option', { value: '', text: t('cases.form.choose') }), ...f.options.map((o) => el('option', { value: o, text: optionLabel(o) })));
    } else if (f.kind === 'text') {
      input = el('textarea', { id: id(f.name), rows: 3 });
    } else {
      input = el('input', { id: id(f.name), type: f.kind === 'date' ? 'date' : 'text', autocomplete: 'off' });
    }
    input.value = values[f.name] ?? '';
    input.addEventListener('input', () => (values[f.name] = input.value));
    input.addEventListener('change', () => (values[f.name] = input.value));
    input.setAttribute('aria-describedby', error.id);
    return el('div', { class: 'field', dataset: { field: f.name } }, el('label', { for: input.id, text: label }), input, error);
  });
  const status = el('p', { class: 'error', role: 'alert' });
  const form = el('form', { id: `form-${def.form}`, class: 'stage-form', noValidate: true }, ...fields, status, el('button', { type: 'submit', text: t('cases.form.save') }));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const p of form.querySelectorAll('.field-error')) p.textContent = '';
    const sent = {};
    for (const f of def.fields) {
      const v = values[f.name];
      if (f.kind === 'actions') {
        const rows = (v || []).filter((r) => Object.values(r).some((x) => String(x || '').trim()));
        if (rows.length) sent[f.name] = rows;
      } else if (v !== undefined && String(v).trim()) sent[f.name] = v;
    }
    const res = await api(`/api/v1/cases/${encodeURIComponent(c.id)}/forms`, { method: 'POST', body: { form: def.form, values: sent } });
    if (res.status === 422 && res.body?.fields) {
      for (const [name, why] of Object.entries(res.body.fields)) {
        const target = $(`${id(name)}-error`);
        if (target) target.textContent = t('cases.form.fault', { why });
        else status.textContent = t('cases.form.fault', { why: `${name}: ${why}` });
      }
      form.querySelector('.field-error:not(:empty)')?.previousElementSibling?.focus();
      return;
    }
    if (res.status !== 201) {
      status.textContent = res.status === 403 ? t('cases.error.forbidden') : t('cases.error.save');
      return;
    }
    delete state.formValues[def.form];
    notice(t('cases.form.saved', { form: dataLabel(def.label, def.form) }));
    await refresh(c.id);
  });
  return el('section', { id: `stage-form-${def.form}`, class: 'panel', 'aria-labelledby': `stage-form-${def.form}-heading` },
    el('h3', { id: `stage-form-${def.form}-heading`, text: dataLabel(def.label, def.form) }), form);
}

/** A plan's goals and actions: one row each (goal, action, owner, due date), rows added as needed. */
function actionsField(def, f, values, label, error) {
  const rows = (values[f.name] ||= [{}]);
  const parts = ['goal', 'action', 'owner', 'due'];
  const list = el('ol', { class: 'actions-list' });
  const draw = () => {
    list.replaceChildren(
      ...rows.map((row, i) =>
        el(
          'li',
          {},
          el('fieldset', {}, el('legend', { text: t('cases.form.actionN', { n: i + 1 }) }),
            ...parts.map((part) => {
              const inputId = `form-${def.form}-${f.name}-${i}-${part}`;
              const input = el('input', { id: inputId, type: part === 'due' ? 'date' : 'text', autocomplete: 'off', value: row[part] ?? '' });
              input.addEventListener('input', () => (row[part] = input.value));
              input.addEventListener('change', () => (row[part] = input.value));
              return el('div', { class: 'field' }, el('label', { for: inputId, text: t(`cases.form.${part}`) }), input);
            })),
        ),
      ),
    );
  };
  draw();
  const add = el('button', { type: 'button', class: 'secondary', text: t('cases.form.addAction') });
  add.addEventListener('click', () => {
    rows.push({});
    draw();
    list.lastElementChild?.querySelector('input')?.focus();
  });
  const group = el('div', { class: 'field', role: 'group', 'aria-labelledby': `form-${def.form}-${f.name}-label`, dataset: { field: f.name } },
    el('span', { id: `form-${def.form}-${f.name}-label`, class: 'group-label', text: label }), list, add, error);
  // The fault of the whole list goes next to it (its id: form-<form>-<field>-error).
  error.id = `form-${def.form}-${f.name}-error`;
  return group;
}

// ----- notes, timeline, placements, referrals, who sees it ----------------------------------

/** The case's tasks and follow-ups with their due dates; done with a button; a new one below. */
function tasksPanel(c) {
  const items = state.open.tasks.map((task) => {
    const status = task.status === 'done' ? t('cases.task.done') : task.overdue ? t('cases.task.overdue', { when: formatDateTime(task.due_at_ms) }) : t('cases.task.due', { when: formatDateTime(task.due_at_ms) });
    const li = el('li', { dataset: { taskId: task.id, status: task.status } }, el('span', { class: 'task-title', text: task.title }), ' — ',
      el('span', { class: task.overdue ? 'due due-overdue' : 'due', text: status }));
    if (task.status === 'open') {
      const b = el('button', { type: 'button', class: 'secondary', text: t('cases.task.markDone'), 'aria-label': t('cases.task.markDoneNamed', { title: task.title }) });
      b.addEventListener('click', async () => {
        const res = await api(`/api/v1/tasks/${encodeURIComponent(task.id)}/done`, { method: 'POST' });
        if (res.status === 200) notice(t('cases.task.doneNotice', { title: task.title }));
        else notice(res.status === 403 ? t('cases.error.forbidden') : t('cases.error.save'), true);
        await refresh(c.id);
      });
      li.append(' ', b);
    }
    return li;
  });
  const list = items.length ? el('ul', { class: 'tasks' }, ...items) : el('p', { class: 'empty', text: t('cases.task.none') });
  if (c.stage === 'closed') return section('tasks', 'cases.task.heading', list);
  const title = el('input', { id: 'task-title', type: 'text', autocomplete: 'off', maxLength: 500 });
  const due = el('input', { id: 'task-due', type: 'date' });
  const error = el('p', { id: 'task-error', class: 'error', role: 'alert' });
  const form = el('form', { id: 'task-form', noValidate: true },
    el('div', { class: 'field' }, el('label', { for: 'task-title', text: t('cases.task.title') }), title),
    el('div', { class: 'field' }, el('label', { for: 'task-due', text: t('cases.task.dueDate') }), due),
    error, el('button', { type: 'submit', text: t('cases.task.add') }));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!title.value.trim() || !due.value) {
      error.textContent = t('cases.task.missing');
      return;
    }
    const body = { title: title.value.trim(), due_at_ms: new Date(`${due.value}T17:00:00`).getTime() };
    const res = await api(`/api/v1/cases/${encodeURIComponent(c.id)}/tasks`, { method: 'POST', body });
    if (res.status !== 201) {
      error.textContent = res.status === 403 ? t('cases.error.forbidden') : t('cases.task.bad');
      return;
    }
    notice(t('cases.task.added', { title: body.title }));
    await refresh(c.id);
  });
  return section('tasks', 'cases.task.heading', list, form);
}

function notePanel() {
  const text = el('textarea', { id: 'note-text', rows: 3 });
  const error = el('p', { id: 'note-error', class: 'error', role: 'alert' });
  const form = el('form', { id: 'note-form', noValidate: true }, el('div', { class: 'field' }, el('label', { for: 'note-text', text: t('cases.note.label') }), text), error,
    el('button', { type: 'submit', text: t('cases.note.submit') }));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!text.value.trim()) {
      error.textContent = t('cases.note.empty');
      return;
    }
    const id = state.open.file.case.id;
    const res = await api(`/api/v1/cases/${encodeURIComponent(id)}/entries`, { method: 'POST', body: { kind: 'note', body: { text: text.value.trim() } } });
    if (res.status !== 201) {
      error.textContent = t('cases.error.save');
      return;
    }
    notice(t('cases.note.saved'));
    await refresh(id);
  });
  return section('note', 'cases.note.heading', form);
}

function entryText(e) {
  const b = e.body || {};
  switch (e.kind) {
    case 'stage':
      return b.from ? t('cases.entry.stageMoved', { from: word('cases.stage', b.from), to: word('cases.stage', b.to) }) : t('cases.entry.opened');
    case 'reason':
    case 'note':
      return b.text || '';
    case 'assessment':
      return [b.findings, b.safety].filter(Boolean).join(' — ');
    case 'referral':
      return word('cases.service', b.service);
    case 'form': {
      const def = (state.forms[state.open?.file.case.helpline] || []).find((f) => f.form === b.form);
      const title = dataLabel(def?.label, b.form);
      const shown = Object.entries(b.values || {}).map(([name, v]) => {
        const field = def?.fields.find((x) => x.name === name);
        const text = Array.isArray(v)
          ? v.map((a) => t('cases.form.actionLine', { goal: a.goal, action: a.action, owner: a.owner, due: a.due })).join('; ')
          : field?.kind === 'choice' ? optionLabel(v) : v;
        return `${dataLabel(field?.label, name)}: ${text}`;
      });
      return `${title} — ${shown.join(' · ')}`;
    }
    default:
      return '';
  }
}

function timelinePanel(file) {
  const items = file.entries.map((e) =>
    el('li', { dataset: { kind: e.kind } }, el('time', { dateTime: e.at, text: formatDateTime(Date.parse(e.at)) }), ' ', el('strong', { text: word('cases.kind', e.kind) }), ' ', el('span', { class: 'entry-text', text: entryText(e) })),
  );
  return section('timeline', 'cases.timeline.heading', items.length ? el('ol', { class: 'timeline' }, ...items) : el('p', { class: 'empty', text: t('cases.timeline.empty') }));
}

function placementsPanel(file) {
  const items = file.placements.map((p) => el('li', { text: t('cases.placement.line', { status: word('cases.placement', p.status), when: formatDateTime(p.created_at) }) }));
  return section('placements', 'cases.placements.heading', items.length ? el('ul', {}, ...items) : el('p', { class: 'empty', text: t('cases.placements.empty') }));
}

function serviceName(id) {
  return state.services.find((s) => s.id === id)?.name || t('cases.referral.unknownService');
}

/** The case's referrals (to services of the registry), each with its status and what may come next, and a form to refer. */
function referralsPanel(file) {
  const c = file.case;
  const items = state.open.referrals.map((r) => {
    const buttons = r.allowed_next.map((s) => {
      const b = el('button', { type: 'button', class: 'secondary', dataset: { status: s }, text: t('cases.referral.mark', { status: word('cases.referral.status', s) }) });
      b.addEventListener('click', () => changeReferral(c.id, r.id, { status: s }));
      return b;
    });
    const lines = [
      el('strong', { text: serviceName(r.service_id) }),
      ' — ',
      el('span', { class: `referral-status status-${r.status}`, text: word('cases.referral.status', r.status) }),
      el('br'),
      el('span', { text: r.reason }),
    ];
    if (r.due_at_ms) lines.push(el('br'), el('span', { text: t('cases.referral.due', { when: formatDateTime(r.due_at_ms) }) }));
    if (r.feedback) lines.push(el('br'), el('span', { class: 'feedback', text: t('cases.referral.feedback', { text: r.feedback }) }));
    return el('li', { dataset: { referralId: r.id, status: r.status } }, ...lines, buttons.length ? el('div', { class: 'actions' }, ...buttons) : '');
  });
  const list = items.length ? el('ul', { class: 'referrals' }, ...items) : el('p', { class: 'empty', text: t('cases.referrals.empty') });
  if (c.stage === 'closed') return section('referrals', 'cases.referrals.heading', list);
  const select = el('select', { id: 'referral-service' }, ...state.services.map((s) => el('option', { value: s.id, text: `${s.name} (${s.district})` })));
  const reason = el('textarea', { id: 'referral-reason', rows: 3 });
  reason.setAttribute('aria-describedby', 'referral-reason-hint');
  const due = el('input', { id: 'referral-due', type: 'date' });
  const error = el('p', { id: 'referral-error', class: 'error', role: 'alert' });
  const form = el(
    'form',
    { id: 'referral-form', noValidate: true },
    el('h4', { text: t('cases.referral.new') }),
    el('div', { class: 'field' }, el('label', { for: 'referral-service', text: t('cases.referral.service') }), select),
    el('div', { class: 'field' }, el('label', { for: 'referral-reason', text: t('cases.referral.reason') }), el('p', { id: 'referral-reason-hint', class: 'muted', text: t('cases.referral.reasonHint') }), reason),
    el('div', { class: 'field' }, el('label', { for: 'referral-due', text: t('cases.referral.dueDate') }), due),
    error,
    el('button', { type: 'submit', text: t('cases.referral.submit') }),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!reason.value.trim()) {
      error.textContent = t('cases.referral.reasonMissing');
      reason.focus();
      return;
    }
    const body = { service_id: select.value, reason: reason.value.trim() };
    // The end of the chosen day, in the device's time zone.
    if (due.value) body.due_at_ms = new Date(`${due.value}T23:59:00`).getTime();
    const res = await api(`/api/v1/cases/${encodeURIComponent(c.id)}/referrals`, { method: 'POST', body });
    if (res.status !== 201) {
      error.textContent = res.status === 403 ? t('cases.error.forbidden') : t('cases.error.save');
      return;
    }
    notice(t('cases.referral.sent', { service: serviceName(body.service_id) }));
    await refresh(c.id);
  });
  return section('referrals', 'cases.referrals.heading', list, form);
}

async function changeReferral(caseId, id, change) {
  const res = await api(`/api/v1/referrals/${encodeURIComponent(id)}`, { method: 'PATCH', body: change });
  if (res.status === 200) notice(t('cases.referral.changed', { status: word('cases.referral.status', res.body.status) }));
  else notice(res.status === 403 ? t('cases.error.forbidden') : t('cases.error.save'), true);
  await refresh(caseId);
}

function whoPanel(c) {
  const lines = [
    t('cases.who.manager'),
    t('cases.who.opener'),
    t('cases.who.supervisors', { helpline: helplineName(c.helpline) }),
    t('cases.who.admins'),
  ];
  return section('who', 'cases.who.heading', el('ul', {}, ...lines.map((l) => el('li', { text: l }))), el('p', { class: 'muted', text: t('cases.who.person') }));
}

async function refresh(id) {
  await loadMine();
  if (id) await openCase(id, { focus: false });
}

// ----- search and a new case -------------------------------------------------------------

async function onSearch(event) {
  event.preventDefault();
  const number = $('search-number').value.trim();
  $('search-error').textContent = '';
  if (!number) {
    $('search-error').textContent = t('cases.search.empty');
    return;
  }
  const res = await api(`/api/v1/cases?number=${encodeURIComponent(number)}`);
  const found = res.status === 200 ? res.body.cases[0] : null;
  if (!found) {
    $('search-error').textContent = t('cases.search.none', { number });
    return;
  }
  await openCase(found.id);
}

function showNewCase() {
  $('welcome').hidden = true;
  $('case').hidden = true;
  state.open = null;
  drawMine();
  const select = $('new-helpline');
  select.replaceChildren(...state.helplines.map((h) => el('option', { value: h.name, text: helplineName(h.name) })));
  $('new-error').textContent = '';
  $('new-case-panel').hidden = false;
  $('new-case-heading').focus();
}

async function onNewCase(event) {
  event.preventDefault();
  $('new-error').textContent = '';
  const reason = $('new-reason').value.trim();
  if (!reason) {
    $('new-error').textContent = t('cases.new.reasonMissing');
    $('new-reason').focus();
    return;
  }
  const body = { helpline: $('new-helpline').value, reason };
  if ($('new-district').value.trim()) body.district = $('new-district').value.trim();
  if ($('new-label').value.trim()) body.person_label = $('new-label').value.trim();
  const res = await api('/api/v1/cases', { method: 'POST', body });
  if (res.status !== 201) {
    $('new-error').textContent = res.status === 403 ? t('cases.error.forbidden') : t('cases.error.save');
    return;
  }
  $('new-case-form').reset();
  notice(t('cases.new.opened', { number: res.body.number }));
  await loadMine();
  await openCase(res.body.id);
}

// ----- sign in and out ------------------------------------------------------------------

function onLogin(event) {
  return submitLogin(event, (body) => {
    signedIn(body.access_token, body.user);
    return null;
  });
}

async function signedIn(token, user) {
  await showSignedIn(state, TOKEN_KEY, 'workspace', token, user);
  const services = await api('/api/v1/services');
  state.services = services.status === 200 ? services.body.services : [];
  await loadMine();
  clearInterval(state.timer);
  state.timer = setInterval(loadMine, REFRESH_EVERY_MS);
  const wanted = new URLSearchParams(location.search).get('case');
  if (wanted) await openCase(wanted, { focus: false });
}

async function resumeSession(token) {
  const res = await apiCall(token, '/api/v1/me');
  if (res.status === 200 && res.body) {
    await signedIn(token, res.body);
    return;
  }
  forgetToken(TOKEN_KEY);
  $('username').focus();
}

function signOut(message) {
  if (!message) revokeToken(state.token);
  clearInterval(state.timer);
  state.token = null;
  state.me = null;
  state.cases = [];
  state.alerts = [];
  state.offers = [];
  state.open = null;
  forgetToken(TOKEN_KEY);
  $('alert-list').replaceChildren();
  $('alerts').hidden = true;
  $('offer-list').replaceChildren();
  $('offers').hidden = true;
  $('workspace').hidden = true;
  $('case').hidden = true;
  $('case').replaceChildren();
  $('mine').replaceChildren();
  $('me-name').hidden = true;
  $('signout').hidden = true;
  showLogin(message);
}

function redraw() {
  translatePage();
  if (!state.token) return;
  drawMine();
  drawAlerts();
  drawOffers();
  if (state.open) drawCase();
}

function init() {
  mountLogin();
  initLocale(() => state.token);
  onLocaleChange(redraw);
  $('login-form').addEventListener('submit', onLogin);
  $('signout').addEventListener('click', () => signOut(''));
  $('search-form').addEventListener('submit', onSearch);
  $('new-case').addEventListener('click', showNewCase);
  $('new-case-form').addEventListener('submit', onNewCase);
  $('new-cancel').addEventListener('click', () => {
    $('new-case-panel').hidden = true;
    $('welcome').hidden = false;
  });
  translatePage();
  const saved = savedToken(TOKEN_KEY);
  if (saved) resumeSession(saved);
  else $('username').focus();
}

init();
