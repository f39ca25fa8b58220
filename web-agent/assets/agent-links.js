// Earlier contacts in the console (issue 24): under a conversation's contact form, the contacts it is
// linked to (`GET /api/v1/contacts/{id}/links`), and *Find an earlier contact…*: a search of the past
// contacts she may see (`GET /api/v1/contacts?from=&to=&category=&risk=&case_number=`: the ones she
// handled), each found one with its date, helpline, categories, risk, case numbers and summary, and
// *Link*, which links this contact to it (`POST /api/v1/contacts/{id}/links`). The server audits each
// search, read and link. Words under `links.` in the staff catalogue. Text goes in with textContent only.

import { el } from './common.js';
import { apiCall, codeLabel } from './staff.js';
import { t, formatDateTime } from './staff-i18n.js';

const RISKS = ['none', 'low', 'medium', 'high', 'imminent'];

function word(tag, key, props = {}) {
  return el(tag, { ...props, text: t(key), dataset: { ...(props.dataset || {}), i18n: key } });
}

/** One contact as a line: date, helpline, categories, risk, case numbers, then its summary. */
function contactLine(x) {
  const facts = [
    formatDateTime(x.at),
    x.helpline,
    (x.categories || []).map((c) => codeLabel(c)).join(', '),
    x.risk ? t('links.risk', { risk: t(`risk.${x.risk}`) }) : '',
    (x.case_numbers || []).length ? t('links.cases', { numbers: x.case_numbers.join(', ') }) : '',
  ].filter(Boolean).join(' · ');
  const box = el('div', { class: 'link-contact' }, el('span', { class: 'link-facts', text: facts }));
  if (x.summary) box.append(el('p', { class: 'link-summary', text: x.summary, translate: false }));
  return box;
}

/** The Earlier contacts section of conversation `c`; `token()` is the access token. */
export function mountLinks(c, token) {
  const base = `links-${c.id}`;
  const list = el('ul', { class: 'link-list', 'aria-labelledby': `${base}-heading` });
  const none = word('p', 'links.none', { class: 'empty' });
  const toggle = word('button', 'links.find', { type: 'button', class: 'secondary', 'aria-expanded': 'false', 'aria-controls': `${base}-form` });
  const from = el('input', { type: 'date', id: `${base}-from` });
  const to = el('input', { type: 'date', id: `${base}-to` });
  const risk = el('select', { id: `${base}-risk` }, el('option', { value: '', text: t('links.anyRisk'), dataset: { i18n: 'links.anyRisk' } }));
  for (const r of RISKS) risk.append(el('option', { value: r, text: t(`risk.${r}`), dataset: { i18n: `risk.${r}` } }));
  const category = el('input', { type: 'text', id: `${base}-category`, autocomplete: 'off' });
  const caseNumber = el('input', { type: 'text', id: `${base}-case`, autocomplete: 'off' });
  const submit = word('button', 'links.search', { type: 'submit' });
  const status = el('p', { class: 'links-status', role: 'status' });
  const results = el('ul', { class: 'link-results', 'aria-label': t('links.results'), dataset: { i18nAttr: 'aria-label:links.results' } });
  const field = (key, input) => el('div', { class: 'field' }, word('label', key, { for: input.id }), input);
  const form = el('form', { class: 'links-form', id: `${base}-form`, hidden: true, noValidate: true, 'aria-label': t('links.formLabel'), dataset: { i18nAttr: 'aria-label:links.formLabel' } },
    el('div', { class: 'links-fields' }, field('links.from', from), field('links.to', to), field('links.riskLabel', risk), field('links.category', category), field('links.caseNumber', caseNumber)),
    el('div', { class: 'buttons' }, submit),
  );
  const section = el('section', { class: 'links', 'aria-labelledby': `${base}-heading` },
    word('h3', 'links.heading', { id: `${base}-heading` }), none, list, toggle, form, status, results);

  const drawLinks = (links) => {
    list.replaceChildren();
    for (const l of links || []) {
      const item = el('li', { dataset: { contactId: l.contact_id } }, word('span', l.earlier ? 'links.earlier' : 'links.later', { class: 'link-kind' }), ' ');
      item.append(l.contact ? contactLine(l.contact) : el('span', { text: t('links.hidden') }));
      list.append(item);
    }
    none.hidden = list.children.length > 0;
  };
  const refresh = async () => {
    const res = await apiCall(token(), `/api/v1/contacts/${encodeURIComponent(c.id)}/links`);
    if (res.status === 200) drawLinks(res.body);
  };
  const link = async (other, button) => {
    button.disabled = true;
    const res = await apiCall(token(), `/api/v1/contacts/${encodeURIComponent(c.id)}/links`, { method: 'POST', body: { contact_id: other } });
    if (res.status === 200) {
      drawLinks(res.body);
      status.textContent = t('links.linked');
      button.textContent = t('links.done');
      return;
    }
    button.disabled = false;
    status.textContent = t('links.failed', { message: res.body?.message || String(res.status) });
  };
  toggle.addEventListener('click', () => {
    form.hidden = !form.hidden;
    toggle.setAttribute('aria-expanded', String(!form.hidden));
    if (!form.hidden) from.focus();
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (from.value) q.set('from', from.value);
    if (to.value) q.set('to', to.value);
    if (risk.value) q.set('risk', risk.value);
    if (category.value.trim()) q.set('category', category.value.trim());
    if (caseNumber.value.trim()) q.set('case_number', caseNumber.value.trim());
    submit.disabled = true;
    const res = await apiCall(token(), `/api/v1/contacts?${q}`);
    submit.disabled = false;
    results.replaceChildren();
    if (res.status !== 200) {
      status.textContent = t('links.failed', { message: res.body?.message || String(res.status) });
      return;
    }
    const found = res.body.filter((x) => x.contact_id !== c.id);
    status.textContent = t('links.found', { n: found.length });
    for (const x of found) {
      const button = el('button', { type: 'button', class: 'secondary', text: t('links.link'), 'aria-label': t('links.linkNamed', { when: formatDateTime(x.at) }) });
      button.addEventListener('click', () => link(x.contact_id, button));
      results.append(el('li', { dataset: { contactId: x.contact_id } }, contactLine(x), button));
    }
  });
  refresh();
  c.links = { section, refresh };
  return section;
}
