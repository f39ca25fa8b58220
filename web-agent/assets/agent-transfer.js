// Transfer from the counsellor console (issue 24): hand a conversation you hold over to a helpline's
// queue (cold) with a reason the next counsellor reads; the `handover` frames say how it went, and a
// conversation handed over to you shows who handed it over and why (and, warm, the consult between
// them). Words through the staff catalogue (`transfer.` keys; the control's own words carry `data-i18n`, so a
// change of language redraws them). Text goes in with textContent only.

import { el } from './common.js';
import { t } from './staff-i18n.js';

let helplines = null;

/** The helplines a contact may go to (GET /api/v1/helplines, read once). */
async function loadHelplines() {
  if (!helplines) {
    helplines = fetch('/api/v1/helplines')
      .then((r) => (r.ok ? r.json() : []))
      .catch(() => []);
  }
  return helplines;
}

/** The Transfer control of conversation `c`; `send(frame)` sends on the console's socket. */
export function mountTransfer(c, send) {
  const base = `transfer-${c.id}`;
  const toggle = el('button', { type: 'button', class: 'secondary transfer-toggle', text: t('transfer.open'), dataset: { i18n: 'transfer.open' }, 'aria-expanded': 'false', 'aria-controls': `${base}-form` });
  const target = el('select', { id: `${base}-helpline` });
  const reason = el('textarea', { id: `${base}-reason`, rows: 2, maxLength: 1000 });
  const submit = el('button', { type: 'submit', text: t('transfer.send'), dataset: { i18n: 'transfer.send' } });
  const cancel = el('button', { type: 'button', class: 'secondary', text: t('transfer.cancel'), dataset: { i18n: 'transfer.cancel' } });
  const result = el('p', { class: 'transfer-result', role: 'status' });
  const form = el('form', { class: 'transfer-form', id: `${base}-form`, hidden: true, noValidate: true, 'aria-label': t('transfer.formLabel'), dataset: { i18nAttr: 'aria-label:transfer.formLabel' } },
    el('label', { for: target.id, text: t('transfer.helpline'), dataset: { i18n: 'transfer.helpline' } }), target,
    el('label', { for: reason.id, text: t('transfer.reason'), dataset: { i18n: 'transfer.reason' } }), reason,
    el('div', { class: 'buttons' }, submit, cancel),
  );
  const show = (open) => {
    form.hidden = !open;
    toggle.setAttribute('aria-expanded', String(open));
    if (open) target.focus();
  };
  toggle.addEventListener('click', async () => {
    if (!target.options.length) {
      for (const h of await loadHelplines()) target.append(el('option', { value: h.name, text: h.display_name || h.name }));
    }
    show(form.hidden);
  });
  cancel.addEventListener('click', () => {
    show(false);
    toggle.focus();
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const why = reason.value.trim();
    const frame = { type: 'transfer', contact_id: c.id, helpline: target.value };
    if (why) frame.reason = why;
    if (!target.value || !send(frame)) return;
    submit.disabled = true;
    result.dataset.state = '';
    result.textContent = t('transfer.sending');
  });
  c.transfer = { toggle, form, submit, result, show };
  return el('div', { class: 'transfer' }, toggle, form, result);
}

/** A `handover` frame about conversation `c` (if still shown). */
export function onHandover(c, f) {
  if (!c?.transfer) return;
  const x = c.transfer;
  x.submit.disabled = false;
  x.result.dataset.state = f.state;
  x.result.textContent = t(`transfer.state.${f.state}`, { name: f.from || '' });
  if (f.state === 'done') x.show(false);
}

/** An error about conversation `c` while a transfer was on its way: shown under the control. True if taken. */
export function onTransferError(c, f) {
  if (!c?.transfer || !c.transfer.submit.disabled) return false;
  c.transfer.submit.disabled = false;
  c.transfer.result.dataset.state = 'error';
  c.transfer.result.textContent = t('transfer.refused', { message: f.message || '' });
  return true;
}

/** The note above a conversation handed over to you: who, why, and the consult (warm). */
export function showHandover(c, note) {
  c.handoverNote?.remove();
  if (!note) return;
  const box = el('div', { class: 'handover-note', role: 'note' },
    el('p', { text: t('transfer.from', { name: note.from }) }));
  if (note.reason) box.append(el('p', { text: t('transfer.why', { reason: note.reason }) }));
  for (const m of note.consult || []) box.append(el('p', { class: 'consult', text: `${m.from}: ${m.text}` }));
  c.handoverNote = box;
  c.log.before(box);
}
