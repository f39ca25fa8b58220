// The console's night-shift tools (agent.js calls them): the ring that repeats while an offer waits,
// desktop notifications, the End chat dialog, canned responses (`/` or Ctrl+K in a reply box) and the
// Flag form. Words are in agent-text.js; every text goes in with textContent, never as HTML.
import { $, el } from './common.js';
import { apiCall } from './staff.js';
import { TEXT, setText } from './agent-text.js';

// ----- the ring -----------------------------------------------------------------

/** How often the ring repeats while an offer is unanswered. */
export const RING_EVERY_MS = 2500;

let audio = null;
let ringTimer = null;

/** Makes or resumes the audio context: only from a user gesture (the sign-in click, a status change). */
export function unlockAudio() {
  try {
    if (!audio) audio = new AudioContext();
    if (audio.state === 'suspended') audio.resume();
  } catch {
    audio = null;
  }
}

/** Two short tones. */
function tones() {
  if (!audio) return;
  try {
    const t0 = audio.currentTime;
    for (const [start, freq] of [[0, 880], [0.22, 1175]]) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = 'sine';
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, t0 + start);
      gain.gain.exponentialRampToValueAtTime(0.25, t0 + start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + start + 0.18);
      osc.connect(gain).connect(audio.destination);
      osc.start(t0 + start);
      osc.stop(t0 + start + 0.2);
    }
  } catch {
    /* no sound; the bar and the notification remain */
  }
}

/** Rings now and every RING_EVERY_MS while `ringing()` says an offer waits; stops by itself after. */
export function ring(ringing) {
  if (ringTimer) return;
  tones();
  ringTimer = setInterval(() => {
    if (ringing()) tones();
    else stopRing();
  }, RING_EVERY_MS);
}

export function stopRing() {
  clearInterval(ringTimer);
  ringTimer = null;
}

// ----- desktop notifications -----------------------------------------------------

const notices = new Map();

function supported() {
  return typeof Notification !== 'undefined';
}

/** Shows whether notifications are on, with the button to turn them on while the browser has not been asked. */
export function renderNotifyState() {
  const button = $('notify-on');
  const line = $('notify-state');
  if (!supported()) {
    line.textContent = TEXT.notifyUnsupported;
    button.hidden = true;
    return;
  }
  const p = Notification.permission;
  line.textContent = p === 'granted' ? TEXT.notifyOn : p === 'denied' ? TEXT.notifyDenied : TEXT.notifyOff;
  button.hidden = p !== 'default';
}

/** Asks for permission once (from a user gesture: the sign-in click or the button). */
export function askNotify() {
  if (!supported() || Notification.permission !== 'default') return;
  try {
    Notification.requestPermission().then(renderNotifyState, renderNotifyState);
  } catch {
    /* an old browser: the button stays */
  }
}

/** A notification for an offer while the page is not looked at; clicking it brings the page forward. */
export function notifyOffer(id, title, body, onClick) {
  if (!supported() || Notification.permission !== 'granted') return;
  if (!document.hidden && document.hasFocus()) return;
  try {
    const n = new Notification(title, { body, tag: `offer-${id}`, requireInteraction: true });
    n.onclick = () => {
      window.focus();
      n.close();
      onClick();
    };
    notices.set(id, n);
  } catch {
    /* the bar and the ring remain */
  }
}

export function closeNotice(id) {
  notices.get(id)?.close();
  notices.delete(id);
}

// ----- End chat, confirmed ----------------------------------------------------------

let ending = null;

/**
 * Asks in a modal dialog before ending `c`; `end()` runs only on Yes. Focus returns where it was.
 * `text()` gives the question's words (again after a change of language: `redrawEnd`).
 */
export function confirmEnd(c, text, end) {
  const dialog = $('end-dialog');
  const words = typeof text === 'function' ? text : () => text;
  ending = { end, back: document.activeElement, text: words };
  $('end-dialog-text').textContent = words();
  dialog.showModal();
  $('end-cancel').focus();
}

/** The open End dialog's question in the page's language now. */
export function redrawEnd() {
  if (ending) $('end-dialog-text').textContent = ending.text();
}

function closeEnd(confirmed) {
  const dialog = $('end-dialog');
  const was = ending;
  ending = null;
  if (dialog.open) dialog.close();
  if (!was) return;
  if (confirmed) was.end();
  else was.back?.focus?.();
}

export function initEndDialog() {
  $('end-confirm').addEventListener('click', () => closeEnd(true));
  $('end-cancel').addEventListener('click', () => closeEnd(false));
  // Escape closes a modal dialog by itself: that is a No.
  $('end-dialog').addEventListener('close', () => closeEnd(false));
}

// ----- canned responses -------------------------------------------------------------

let canned = [];

/** Loads the canned responses of the helplines this counsellor serves (once per sign-in or reconnect). */
export async function loadCanned(token) {
  const res = await apiCall(token, '/api/v1/canned-responses');
  if (res.status === 200 && res.body) canned = res.body.canned_responses || [];
}

export function forgetCanned() {
  canned = [];
}

function cannedFor(c, query) {
  const q = query.trim().toLowerCase();
  return canned.filter(
    (r) => r.helpline === c.info.helpline && r.language === c.info.language &&
      (!q || r.title.toLowerCase().includes(q) || r.body.toLowerCase().includes(q)),
  );
}

/**
 * Gives a conversation's reply box its canned responses: `/` as the first character or Ctrl+K opens a
 * searchable list under the box (a combobox: arrow keys choose, Enter inserts, Escape closes).
 */
export function mountCanned(c) {
  const listId = `canned-list-${c.id}`;
  const searchId = `canned-search-${c.id}`;
  const search = el('input', {
    type: 'text', id: searchId, role: 'combobox', autocomplete: 'off', 'aria-autocomplete': 'list',
    'aria-expanded': 'true', 'aria-controls': listId,
  });
  const list = el('ul', { id: listId, class: 'canned-options', role: 'listbox', 'aria-label': TEXT.cannedHeading, dataset: { i18nAttr: 'aria-label:console.cannedHeading' } });
  const none = el('p', { class: 'muted canned-none' });
  const panel = el('div', { class: 'canned-picker', hidden: true },
    el('label', { for: searchId, text: TEXT.cannedSearch, dataset: { i18n: 'console.cannedSearch' } }),
    el('p', { class: 'muted', text: TEXT.cannedHint, dataset: { i18n: 'console.cannedHint' } }),
    search, list, none,
  );
  const button = el('button', { type: 'button', class: 'secondary canned-open', text: TEXT.cannedButton, dataset: { i18n: 'console.cannedButton' }, 'aria-keyshortcuts': 'Control+K' });
  const picker = { panel, search, list, none, button, options: [], at: 0, slash: false };
  c.canned = picker;

  const render = () => {
    picker.options = cannedFor(c, search.value);
    picker.at = Math.min(picker.at, Math.max(0, picker.options.length - 1));
    list.replaceChildren(
      ...picker.options.map((r, i) =>
        el('li', { id: `${listId}-${i}`, role: 'option', class: 'canned-option', 'aria-selected': String(i === picker.at), dataset: { id: r.id } },
          el('strong', { class: 'canned-title', text: r.title, translate: false }),
          el('span', { class: 'canned-body', text: r.body, translate: false }),
        ),
      ),
    );
    none.textContent = picker.options.length ? '' : canned.some((r) => r.helpline === c.info.helpline && r.language === c.info.language) ? TEXT.cannedNone : TEXT.cannedNoneAtAll;
    if (picker.options.length) search.setAttribute('aria-activedescendant', `${listId}-${picker.at}`);
    else search.removeAttribute('aria-activedescendant');
    list.querySelector('[aria-selected="true"]')?.scrollIntoView({ block: 'nearest' });
  };
  const close = (focusText) => {
    panel.hidden = true;
    if (focusText) c.text.focus();
  };
  const insert = (r) => {
    const box = c.text;
    let value = box.value;
    // The `/` that opened the list goes; the response goes where the cursor was.
    if (picker.slash && value.startsWith('/')) value = value.slice(1);
    const at = picker.slash ? 0 : Math.min(box.selectionStart ?? value.length, value.length);
    box.value = value.slice(0, at) + r.body + value.slice(at);
    close(true);
    const end = at + r.body.length;
    box.setSelectionRange(end, end);
    box.dispatchEvent(new Event('input'));
    c.cannedNote.textContent = TEXT.cannedInserted(r.title);
  };
  picker.open = (slash) => {
    picker.slash = slash;
    picker.at = 0;
    search.value = '';
    panel.hidden = false;
    render();
    search.focus();
  };

  search.addEventListener('input', () => {
    picker.at = 0;
    render();
  });
  search.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      if (!picker.options.length) return;
      const step = e.key === 'ArrowDown' ? 1 : -1;
      picker.at = (picker.at + step + picker.options.length) % picker.options.length;
      render();
    } else if (e.key === 'Enter') {
      e.preventDefault();
      const r = picker.options[picker.at];
      if (r) insert(r);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      close(true);
    }
  });
  list.addEventListener('click', (e) => {
    const li = e.target.closest('li[role="option"]');
    const r = li && canned.find((x) => x.id === li.dataset.id);
    if (r) insert(r);
  });
  button.addEventListener('click', () => picker.open(false));
  c.text.addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && (e.key === 'k' || e.key === 'K')) {
      e.preventDefault();
      picker.open(false);
    } else if (e.key === '/' && c.text.value === '' && !e.ctrlKey && !e.altKey && !e.metaKey) {
      // Typed as usual (the slash shows in the box), and the list opens; inserting replaces the slash.
      setTimeout(() => picker.open(true), 0);
    }
  });
  return picker;
}

// ----- flag as abusive ----------------------------------------------------------------

/** The Flag button and its form (a reason, then `flag_abusive`); `flagged` or an error shows the result. */
export function mountFlag(c, send) {
  const reasonId = `flag-reason-${c.id}`;
  const reason = el('textarea', { id: reasonId, rows: 2, maxLength: 1000 });
  const toggle = el('button', { type: 'button', class: 'secondary flag-toggle', text: TEXT.flagButton, dataset: { i18n: 'console.flagButton' }, 'aria-expanded': 'false' });
  const sendButton = el('button', { type: 'submit', class: 'danger', text: TEXT.flagSend, dataset: { i18n: 'console.flagSend' } });
  const cancel = el('button', { type: 'button', class: 'secondary', text: TEXT.flagCancel, dataset: { i18n: 'console.flagCancel' } });
  const result = el('p', { class: 'flag-result', role: 'status' });
  const form = el('form', { class: 'flag-form', hidden: true, noValidate: true },
    el('label', { for: reasonId, text: TEXT.flagReason, dataset: { i18n: 'console.flagReason' } }), reason,
    el('div', { class: 'buttons' }, sendButton, cancel),
  );
  const flag = { toggle, form, reason, result, pending: false, done: false };
  c.flag = flag;
  const show = (open) => {
    form.hidden = !open;
    toggle.setAttribute('aria-expanded', String(open));
    if (open) reason.focus();
  };
  toggle.addEventListener('click', () => show(form.hidden));
  cancel.addEventListener('click', () => {
    show(false);
    toggle.focus();
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const why = reason.value.trim();
    if (!why) {
      setText(result, 'console.flagEmpty');
      result.dataset.state = 'error';
      reason.focus();
      return;
    }
    if (!send({ type: 'flag_abusive', contact_id: c.id, reason: why })) return;
    flag.pending = true;
    sendButton.disabled = true;
  });
  return el('div', { class: 'flag' }, toggle, form, result);
}

/** The `flagged` frame: the result under the Flag button. */
export function onFlagged(c, f) {
  if (!c?.flag) return;
  const flag = c.flag;
  flag.pending = false;
  flag.done = true;
  flag.form.hidden = true;
  flag.toggle.disabled = true;
  flag.toggle.setAttribute('aria-expanded', 'false');
  setText(flag.result, 'console.flagDone');
  flag.result.dataset.state = 'flagged';
  flag.result.dataset.flagId = f.flag_id || '';
}

/** An `error` about a contact whose flag is on its way: shown under the Flag button (true when it was). */
export function onFlagError(c, f) {
  if (!c?.flag?.pending) return false;
  c.flag.pending = false;
  c.flag.form.querySelector('button[type="submit"]').disabled = false;
  setText(c.flag.result, 'console.flagFailed', { why: f.message || f.code });
  c.flag.result.dataset.state = 'error';
  return true;
}
