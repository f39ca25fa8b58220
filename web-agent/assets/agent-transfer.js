// Transfer and consult from the counsellor console (issue 24). Under a conversation she holds:
// - *Transfer…*: to a named colleague (a picker of the colleagues signed in who could take it now,
//   `GET /api/v1/colleagues?contact_id=`) or to a helpline's queue, with a reason the next counsellor
//   reads; to a colleague it may be warm (*Talk to the colleague first*): nothing moves until she
//   accepts, the two talk in the consult thread meanwhile, and the one who asked may take it back;
// - *Ask a colleague…*: a consult about the conversation without handing it over.
// The consult thread shows in the pane under "Consult (the caller does not see this)": it is never a
// message of the conversation. On the colleague's side, the *Colleagues asking you* panel holds one
// card per contact she is consulted or briefed about: the thread, a reply box, and for a warm transfer
// *Accept* / *Decline*; once she accepts, the conversation opens with who handed it over and why.
// The `handover` frames say how a transfer went. Words through the staff catalogue (`transfer.` and
// `consult.` keys; the controls' own words carry `data-i18n`, so a change of language redraws them).
// Text goes in with textContent only.

import { $, el, onEnter } from './common.js';
import { apiCall } from './staff.js';
import { t } from './staff-i18n.js';

let helplines = null;
/** send(frame), token(), me() (the `hello` frame): given by the console at start. */
let ctx = { send: () => false, token: () => null, me: () => null };
/** The cards of the Colleagues asking you panel, by contact id. */
const asks = new Map();

export function initTransfer(context) {
  ctx = context;
}

/** The helplines a contact may go to (GET /api/v1/helplines, read once). */
async function loadHelplines() {
  if (!helplines) {
    helplines = fetch('/api/v1/helplines')
      .then((r) => (r.ok ? r.json() : []))
      .catch(() => []);
  }
  return helplines;
}

/** The colleagues signed in now, with whether each could take conversation `id` (`eligible`). */
async function loadColleagues(id) {
  const res = await apiCall(ctx.token(), `/api/v1/colleagues?contact_id=${encodeURIComponent(id)}`);
  return res.status === 200 && Array.isArray(res.body) ? res.body : [];
}

function fillColleagues(select, list, emptyKey) {
  select.replaceChildren();
  for (const x of list) select.append(el('option', { value: x.counsellor_id, text: x.name }));
  if (!list.length) select.append(el('option', { value: '', text: t(emptyKey), dataset: { i18n: emptyKey } }));
}

/** The i18n-tagged element of a word of the catalogue. */
function word(tag, key, props = {}) {
  return el(tag, { ...props, text: t(key), dataset: { ...(props.dataset || {}), i18n: key } });
}

/** The Transfer and Ask a colleague controls of conversation `c`, and its consult thread. */
export function mountTransfer(c) {
  const base = `transfer-${c.id}`;
  const toggle = word('button', 'transfer.open', { type: 'button', class: 'secondary transfer-toggle', 'aria-expanded': 'false', 'aria-controls': `${base}-form` });
  const toColleague = el('input', { type: 'radio', name: `${base}-to`, value: 'colleague', id: `${base}-to-colleague` });
  const toQueue = el('input', { type: 'radio', name: `${base}-to`, value: 'queue', id: `${base}-to-queue`, checked: true });
  const colleague = el('select', { id: `${base}-colleague` });
  const warm = el('input', { type: 'checkbox', id: `${base}-warm` });
  const target = el('select', { id: `${base}-helpline` });
  const reason = el('textarea', { id: `${base}-reason`, rows: 2, maxLength: 1000 });
  const submit = word('button', 'transfer.send', { type: 'submit' });
  const cancel = word('button', 'transfer.cancel', { type: 'button', class: 'secondary' });
  const result = el('p', { class: 'transfer-result', role: 'status' });
  const takeBack = word('button', 'transfer.takeBack', { type: 'button', class: 'secondary transfer-take-back', hidden: true });
  const colleagueRow = el('div', { class: 'field colleague-field', hidden: true },
    word('label', 'transfer.colleague', { for: colleague.id }), colleague,
    el('label', { class: 'check' }, warm, ' ', word('span', 'transfer.warm')),
  );
  const queueRow = el('div', { class: 'field queue-field' }, word('label', 'transfer.helpline', { for: target.id }), target);
  const form = el('form', { class: 'transfer-form', id: `${base}-form`, hidden: true, noValidate: true, 'aria-label': t('transfer.formLabel'), dataset: { i18nAttr: 'aria-label:transfer.formLabel' } },
    el('fieldset', { class: 'transfer-to' },
      word('legend', 'transfer.to'),
      el('label', { for: toColleague.id }, toColleague, ' ', word('span', 'transfer.toColleague')),
      el('label', { for: toQueue.id }, toQueue, ' ', word('span', 'transfer.toQueue')),
    ),
    colleagueRow,
    queueRow,
    word('label', 'transfer.reason', { for: reason.id }), reason,
    el('div', { class: 'buttons' }, submit, cancel),
  );
  const pickTarget = () => {
    colleagueRow.hidden = !toColleague.checked;
    queueRow.hidden = toColleague.checked;
  };
  toColleague.addEventListener('change', pickTarget);
  toQueue.addEventListener('change', pickTarget);
  const show = (open) => {
    form.hidden = !open;
    toggle.setAttribute('aria-expanded', String(open));
    if (open) (toColleague.checked ? toColleague : toQueue).focus();
  };
  toggle.addEventListener('click', async () => {
    if (!form.hidden) {
      show(false);
      return;
    }
    if (!target.options.length) {
      for (const h of await loadHelplines()) target.append(el('option', { value: h.name, text: h.display_name || h.name }));
    }
    fillColleagues(colleague, (await loadColleagues(c.id)).filter((x) => x.eligible), 'transfer.noColleague');
    show(true);
  });
  cancel.addEventListener('click', () => {
    show(false);
    toggle.focus();
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const why = reason.value.trim();
    let frame;
    if (toColleague.checked) {
      if (!colleague.value) return;
      frame = { type: 'transfer', contact_id: c.id, counsellor_id: colleague.value };
      if (warm.checked) frame.warm = true;
    } else {
      if (!target.value) return;
      frame = { type: 'transfer', contact_id: c.id, helpline: target.value };
    }
    if (why) frame.reason = why;
    if (!ctx.send(frame)) return;
    if (frame.warm) c.consultWith = { id: colleague.value, name: colleague.selectedOptions[0]?.textContent || '' };
    submit.disabled = true;
    result.dataset.state = '';
    result.textContent = t('transfer.sending');
  });
  takeBack.addEventListener('click', () => {
    if (ctx.send({ type: 'transfer_cancel', contact_id: c.id })) takeBack.disabled = true;
  });
  c.transfer = { toggle, form, submit, result, show, takeBack };
  return el('div', { class: 'transfer' }, el('div', { class: 'buttons' }, toggle, mountConsult(c)), form, result, takeBack, c.consult.box);
}

/** The Ask a colleague control of conversation `c` (returns its toggle) and its consult thread (c.consult.box). */
function mountConsult(c) {
  const base = `consult-${c.id}`;
  const toggle = word('button', 'consult.open', { type: 'button', class: 'secondary consult-toggle', 'aria-expanded': 'false', 'aria-controls': `${base}-box` });
  const colleague = el('select', { id: `${base}-colleague` });
  const text = el('textarea', { id: `${base}-text`, rows: 2, maxLength: 1000 });
  const submit = word('button', 'consult.send', { type: 'submit' });
  const log = el('ol', { class: 'consult-log', 'aria-live': 'polite', 'aria-label': t('consult.thread'), dataset: { i18nAttr: 'aria-label:consult.thread' } });
  const result = el('p', { class: 'consult-result', role: 'status' });
  const form = el('form', { class: 'consult-form', noValidate: true, 'aria-label': t('consult.formLabel'), dataset: { i18nAttr: 'aria-label:consult.formLabel' } },
    word('label', 'consult.colleague', { for: colleague.id }), colleague,
    word('label', 'consult.message', { for: text.id }), text,
    el('div', { class: 'buttons' }, submit),
  );
  const box = el('section', { class: 'consult', id: `${base}-box`, hidden: true, 'aria-labelledby': `${base}-heading` },
    word('h4', 'consult.heading', { id: `${base}-heading` }),
    log, form, result,
  );
  c.consult = { box, log, colleague, text, result, pending: false };
  toggle.addEventListener('click', async () => {
    const open = box.hidden;
    box.hidden = !open;
    toggle.setAttribute('aria-expanded', String(open));
    if (!open) return;
    await refreshConsultColleagues(c);
    colleague.focus();
  });
  const sendIt = () => {
    const body = text.value.trim();
    if (!body || !colleague.value) return;
    if (!ctx.send({ type: 'consult', contact_id: c.id, counsellor_id: colleague.value, text: body })) return;
    c.consult.pending = true;
    result.textContent = '';
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    sendIt();
  });
  onEnter(text, sendIt);
  return toggle;
}

/** Fills the consult's colleague picker: every colleague signed in, the one already talked with first. */
async function refreshConsultColleagues(c) {
  const list = await loadColleagues(c.id);
  const keep = c.consultWith?.id || c.consult.colleague.value;
  if (c.consultWith && !list.some((x) => x.counsellor_id === c.consultWith.id)) list.unshift({ counsellor_id: c.consultWith.id, name: c.consultWith.name });
  fillColleagues(c.consult.colleague, list, 'consult.noColleague');
  if (keep) c.consult.colleague.value = keep;
}

function consultLine(m) {
  const mine = m.from_counsellor_id === ctx.me()?.user_id;
  const who = mine ? t('consult.you') : m.from;
  return el('li', { class: mine ? 'mine' : 'theirs' }, el('strong', { text: `${who}: ` }), el('span', { class: 'text', text: m.text }));
}

/** A `handover` frame: about a conversation of hers (`c`, if still shown) or one she is asked to take. */
export function onHandover(c, f) {
  const mine = ctx.me()?.user_id;
  if (f.from_counsellor_id !== mine) {
    onAskedHandover(f);
    return;
  }
  if (!c?.transfer) return;
  const x = c.transfer;
  x.submit.disabled = false;
  x.result.dataset.state = f.state;
  x.result.textContent = t(`transfer.state.${f.state}`, { name: f.from || '' });
  x.takeBack.hidden = f.state !== 'pending';
  x.takeBack.disabled = false;
  if (f.state === 'pending') {
    x.show(false);
    c.consult.box.hidden = false;
    refreshConsultColleagues(c);
  }
  if (f.state === 'done') x.show(false);
}

/** An error about conversation `c` while a transfer or consult was on its way: shown under the control. True if taken. */
export function onTransferError(c, f) {
  if (c?.consult?.pending) {
    c.consult.pending = false;
    c.consult.result.dataset.state = 'error';
    c.consult.result.textContent = t('consult.refused', { message: f.message || '' });
    return true;
  }
  const card = asks.get(f.ref);
  if (card?.waiting) {
    card.waiting = false;
    card.result.textContent = t('consult.refused', { message: f.message || '' });
    return true;
  }
  if (!c?.transfer || !c.transfer.submit.disabled) return false;
  c.transfer.submit.disabled = false;
  c.transfer.result.dataset.state = 'error';
  c.transfer.result.textContent = t('transfer.refused', { message: f.message || '' });
  return true;
}

/** A `consult` frame: into the conversation's thread (hers) or the card of the colleague asking. */
export function onConsult(c, f) {
  if (c?.consult && c.transfer && !c.ended) {
    c.consult.pending = false;
    c.consult.box.hidden = false;
    c.consult.log.append(consultLine(f));
    const other = f.from_counsellor_id === ctx.me()?.user_id ? { id: f.to_counsellor_id } : { id: f.from_counsellor_id, name: f.from };
    if (!c.consultWith) c.consultWith = { id: other.id, name: other.name || '' };
    if (f.from_counsellor_id === ctx.me()?.user_id) c.consult.text.value = '';
    if (![...c.consult.colleague.options].some((o) => o.value === other.id)) refreshConsultColleagues(c);
    return;
  }
  const holder = f.from_counsellor_id === ctx.me()?.user_id ? { id: f.to_counsellor_id, name: null } : { id: f.from_counsellor_id, name: f.from };
  const card = askCard(f.contact_id, holder);
  card.waiting = false;
  card.log.append(consultLine(f));
  if (f.from_counsellor_id === ctx.me()?.user_id) card.text.value = '';
  else announceAsk(t('consult.announce', { name: f.from }));
}

function announceAsk(text) {
  const a = $('alert');
  if (a) a.textContent = text;
}

/** The card of the Colleagues asking you panel for contact `id` (made on first use). */
function askCard(id, holder) {
  let card = asks.get(id);
  if (card) {
    if (holder.name) card.holder = holder;
    return card;
  }
  const base = `ask-${id}`;
  const heading = el('h3', { id: `${base}-heading`, class: 'ask-title' });
  const note = el('p', { class: 'ask-note' });
  const log = el('ol', { class: 'consult-log', 'aria-label': t('consult.thread'), dataset: { i18nAttr: 'aria-label:consult.thread' } });
  const text = el('textarea', { id: `${base}-text`, rows: 2, maxLength: 1000 });
  const reply = word('button', 'consult.reply', { type: 'submit' });
  const accept = word('button', 'transfer.accept', { type: 'button', class: 'accept', hidden: true });
  const decline = word('button', 'transfer.decline', { type: 'button', class: 'secondary', hidden: true });
  const dismiss = word('button', 'consult.dismiss', { type: 'button', class: 'secondary' });
  const result = el('p', { class: 'ask-result', role: 'status' });
  const form = el('form', { class: 'consult-form', noValidate: true },
    word('label', 'consult.reply', { for: text.id }), text, el('div', { class: 'buttons' }, reply),
  );
  const box = el('article', { class: 'ask', 'aria-labelledby': heading.id, dataset: { contactId: id } },
    heading, note, log, form, el('div', { class: 'buttons' }, accept, decline, dismiss), result,
  );
  card = { id, holder, box, heading, note, log, text, accept, decline, result, waiting: false, pending: false };
  const sendReply = () => {
    const body = text.value.trim();
    if (!body || !card.holder.id) return;
    if (ctx.send({ type: 'consult', contact_id: id, counsellor_id: card.holder.id, text: body })) card.waiting = true;
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    sendReply();
  });
  onEnter(text, sendReply);
  accept.addEventListener('click', () => {
    if (ctx.send({ type: 'transfer_accept', contact_id: id })) accept.disabled = decline.disabled = true;
  });
  decline.addEventListener('click', () => {
    if (ctx.send({ type: 'transfer_decline', contact_id: id })) accept.disabled = decline.disabled = true;
  });
  dismiss.addEventListener('click', () => removeAsk(id));
  asks.set(id, card);
  drawAsk(card);
  $('ask-list')?.append(box);
  refreshAsks();
  return card;
}

function drawAsk(card) {
  const name = card.holder.name || '';
  card.heading.textContent = card.pending ? t('transfer.askTitle', { name }) : t('consult.askTitle', { name });
}

function removeAsk(id) {
  const card = asks.get(id);
  if (!card) return;
  card.box.remove();
  asks.delete(id);
  refreshAsks();
}

function refreshAsks() {
  const section = $('asks-section');
  if (section) section.hidden = asks.size === 0;
}

/** A `handover` frame addressed to her as the colleague briefed or handed the conversation. */
function onAskedHandover(f) {
  if (f.state === 'done') {
    // It is hers now (`assigned` opens it, with the thread in its handover note).
    removeAsk(f.contact_id);
    return;
  }
  if (!f.warm && !asks.has(f.contact_id)) return;
  const card = askCard(f.contact_id, { id: f.from_counsellor_id, name: f.from });
  card.pending = f.state === 'pending';
  card.accept.hidden = card.decline.hidden = !card.pending;
  card.accept.disabled = card.decline.disabled = false;
  drawAsk(card);
  if (card.pending) {
    card.note.textContent = f.reason ? t('transfer.why', { reason: f.reason }) : '';
    announceAsk(t('transfer.askAnnounce', { name: f.from }));
  } else {
    card.result.textContent = t(`transfer.asked.${f.state}`, { name: f.from });
  }
}

/** After a change of language: the cards' own words again. */
export function redrawTransfer() {
  for (const card of asks.values()) drawAsk(card);
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
