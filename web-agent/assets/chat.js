// The caller's chat widget: choose a helpline and language, wait, chat, end; survive network drops; quick exit.
//
// Privacy: nothing is written to cookies. The resume token (and only it, with the contact's helpline
// and language) is kept in sessionStorage so that a reload of this tab resumes the chat; it is gone
// when the tab closes, when the chat ends, and on quick exit. Message texts are never stored in the
// browser: after a reload they are fetched again from the server. localStorage holds at most one
// entry, the caller's return code, and only when she ticks "Keep the code on this device"; quick exit
// deletes it (docs/security.md, "Return codes").
//
// Caller and counsellor text is always put into the page with textContent, never as HTML.
//
// On a phone the conversation takes the screen: one compact bar (title, the one language choice, quick
// exit), a thin status row with End chat (far from Send, and it asks first), the log, the composer.
// A stalled network is noticed within seconds: the widget pings every 2 s and counts the socket as
// lost when nothing came for 6 s (the server tells the counsellor too: docs/protocol.md, caller_presence).

import { STRINGS, HELPLINE_NAMES, LANGUAGE_NAMES, UI_LANGUAGES } from './chat-i18n.js';
import { $, el, timeOf as clockTime, newClientId, setBanner, bannerBackOnline, placeInLog, highestSeq, onEnter, LiveSocket } from './common.js';

/** Where quick exit goes: a neutral site. `location.replace` so Back does not come back here. */
export const EXIT_URL = 'https://weather.com/';
const STORE_KEY = 'helpline.chat.resume';
/** The return code she chose to keep on this device (localStorage; quick exit deletes it). */
const CODE_KEY = 'helpline.chat.returnCode';
const PING_EVERY_MS = 2000;
const SILENT_LIMIT_MS = 6000;
const TYPING_REPEAT_MS = 3000;
const TYPING_IDLE_MS = 4000;

const params = new URLSearchParams(location.search);

let ui = pickUiLanguage();
let helplines = [];

const chat = {
  /** 'start' (choosing), 'connecting', 'waiting', 'active', 'ended' */
  phase: 'start',
  helpline: null,
  language: null,
  token: null,
  contactId: null,
  counsellor: null,
  position: null,
  /** The last `unavailable` frame while waiting (closed, or nobody on shift), shown as a panel. */
  unavailable: null,
  /** After `left`: { kind, routedAt } for the ended screen. */
  left: null,
  endReason: null,
  /** Seqs already in the log: a message is never shown twice. */
  shown: new Set(),
  /** Highest seq such that every seq up to it is shown: what a resume asks from. */
  lastSeq: 0,
  /** Own messages by client_id: { el, text, seq, state }. */
  own: new Map(),
  /** client_ids sent but not acknowledged, in the order written. */
  pending: [],
  exiting: false,
  typingSentAt: 0,
  typingStop: null,
  typingHide: null,
  /** `estimated_wait_s` of the last `queued` / `position` (null: no basis). */
  estimatedWait: null,
  /** Whether a counsellor answered this chat (only such a chat has a survey). */
  wasConnected: false,
  /** The triage answer given ('yes' / 'no'), once. */
  triage: null,
  /** The ended chat's resume token, for its survey only; forgotten with the conversation. */
  surveyToken: null,
  /** Counsellor messages that came while the page was hidden or unfocused: "(n)" in the tab's title. */
  unseen: 0,
  /** The return code given with `start` (as typed), and whether the server knew it. */
  returnCode: null,
  codeKnown: false,
};

// ----- language ---------------------------------------------------------------

function pickUiLanguage() {
  const asked = params.get('lang');
  if (UI_LANGUAGES.includes(asked)) return asked;
  for (const l of navigator.languages || [navigator.language || '']) {
    const base = String(l).slice(0, 2).toLowerCase();
    if (UI_LANGUAGES.includes(base)) return base;
  }
  return 'ro';
}

function t(key, vars = {}) {
  const s = (STRINGS[ui] && STRINGS[ui][key]) ?? STRINGS.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}

function helplineName(h) {
  return (HELPLINE_NAMES[h.name] && HELPLINE_NAMES[h.name][ui]) || h.display_name || h.name;
}

function applyLanguage() {
  document.documentElement.lang = ui;
  $('ui-lang').value = ui;
  for (const node of document.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll('[data-tel]')) withTel(node, node.dataset.tel, '112');
  renderTitle();
  renderTriage();
  for (const node of document.querySelectorAll('[data-state]')) node.textContent = stateLabel(node.dataset.state, node.dataset.at);
  renderHelplineChoice();
  renderStatusLine();
  renderUnavailable();
  if (chat.phase === 'ended') renderEnded();
}

/** Puts the words of `key` in `node`, their `{number}` as a tappable `tel:` link. */
function withTel(node, key, number) {
  const [before, after = ''] = t(key, { number: '{number}' }).split('{number}');
  node.replaceChildren(before, el('a', { href: `tel:${number}`, text: number }), after);
}

/** The tab's title, with "(n)" while counsellor messages are unseen. */
function renderTitle() {
  if (chat.exiting) return;
  document.title = chat.unseen ? `(${chat.unseen}) ${t('title')}` : t('title');
}

function pageUnseen() {
  return document.visibilityState === 'hidden' || !document.hasFocus();
}

function seen() {
  if (!chat.unseen || pageUnseen()) return;
  chat.unseen = 0;
  renderTitle();
}

/** "about 2 minutes" (or "less than a minute") for an estimated wait in seconds, in the page's language. */
export function waitWords(seconds, lang = ui) {
  const strings = STRINGS[lang] || STRINGS.en;
  if (seconds < 45) return strings.waitUnderMinute;
  const n = Math.max(1, Math.round(seconds / 60));
  const forms = strings.minutes;
  const form = forms[new Intl.PluralRules(lang).select(n)] || forms.other;
  return strings.waitAbout.replace('{t}', form.replace('{n}', String(n)));
}

// ----- start screen -----------------------------------------------------------

async function loadHelplines() {
  $('loading').hidden = false;
  $('retry').hidden = true;
  $('start-error').textContent = '';
  try {
    const res = await fetch('/api/v1/helplines', { cache: 'no-store', credentials: 'omit' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    helplines = await res.json();
  } catch {
    $('loading').hidden = true;
    $('start-error').textContent = t('unreachable');
    $('retry').hidden = false;
    return;
  }
  $('loading').hidden = true;
  const fixed = helplines.find((h) => h.name === params.get('helpline'));
  chat.helpline = fixed ? fixed.name : chat.helpline;
  $('start-form').hidden = false;
  renderHelplineChoice();
  renderTriage();
}

function fixedHelpline() {
  return helplines.find((h) => h.name === params.get('helpline')) || null;
}

function renderHelplineChoice() {
  if (!helplines.length) return;
  const fixed = fixedHelpline();
  $('helpline-choice').hidden = Boolean(fixed);
  $('helpline-fixed').hidden = !fixed;
  if (fixed) {
    $('helpline-fixed').textContent = helplineName(fixed);
  } else {
    const list = $('helpline-list');
    list.replaceChildren();
    for (const h of helplines) {
      const label = document.createElement('label');
      label.className = 'choice';
      const input = document.createElement('input');
      input.type = 'radio';
      input.name = 'helpline';
      input.value = h.name;
      input.checked = chat.helpline === h.name;
      input.addEventListener('change', () => {
        chat.helpline = h.name;
        renderLanguageChoice();
      });
      const span = document.createElement('span');
      span.textContent = helplineName(h);
      label.append(input, span);
      list.append(label);
    }
  }
  renderLanguageChoice();
}

/**
 * The chat's language follows the page's (the one language choice): the page's when the helpline
 * answers in it, else the helpline's first. Said on the start screen.
 */
function chatLanguage() {
  const h = helplines.find((x) => x.name === (fixedHelpline()?.name || chat.helpline));
  if (!h) return null;
  return h.languages.includes(ui) ? ui : h.languages[0] || null;
}

function renderLanguageChoice() {
  const lang = chatLanguage();
  $('chat-in').textContent = lang ? t('chatIn', { lang: LANGUAGE_NAMES[lang] || lang }) : '';
}

function onStart(event) {
  event.preventDefault();
  const fixed = fixedHelpline();
  const helpline = fixed ? fixed.name : chat.helpline;
  if (!helpline) {
    $('start-error').textContent = t('pickHelpline');
    const first = document.querySelector('#helpline-list input');
    if (first) first.focus();
    return;
  }
  $('start-error').textContent = '';
  resetConversation();
  chat.returnCode = $('return-code').value.trim() || null;
  chat.helpline = helpline;
  chat.language = chatLanguage();
  chat.phase = 'connecting';
  showScreen('chat');
  renderStatusLine();
  $('text').focus();
  socket.connect();
}

// ----- screens ----------------------------------------------------------------

function showScreen(name) {
  for (const s of ['start', 'chat', 'ended']) $(`screen-${s}`).hidden = s !== name;
}

function renderStatusLine() {
  const line = $('status-line');
  let text = '';
  if (chat.phase === 'connecting') text = t('connecting');
  else if (chat.phase === 'waiting') {
    text = chat.position ? `${t('waiting')} ${t('position', { n: chat.position })}` : t('waiting');
    if (chat.estimatedWait != null) text += ` ${waitWords(chat.estimatedWait)}`;
  } else if (chat.phase === 'active') text = t('talkingWith', { name: chat.counsellor || t('counsellor') });
  if (line.textContent !== text) line.textContent = text;
}

function renderEnded() {
  if (chat.endReason === 'left' && chat.left) {
    const when = whenText(chat.left.routedAt, 'atOnce');
    $('ended-reason').textContent = t(chat.left.kind === 'callback' ? 'leftCallback' : 'leftMessage', { when });
    return;
  }
  const key = { caller_ended: 'endedByYou', counsellor_ended: 'endedByCounsellor', caller_lost: 'endedLost', unavailable: 'unavailable' }[
    chat.endReason
  ];
  $('ended-reason').textContent = key ? t(key) : '';
}

/** When a time to come is, in words: a date and time in the page's language, or `fallback` when it is now. */
function whenText(at, fallback) {
  const d = at ? new Date(at) : null;
  if (!d || Number.isNaN(d.getTime()) || d.getTime() <= Date.now() + 60000) return t(fallback);
  return d.toLocaleString(ui, { weekday: 'long', day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit' });
}

// ----- closed, or nobody on shift ---------------------------------------------

/** The panel shown after `unavailable`: why, the choices, the other lines. Hidden once connected. */
function renderUnavailable() {
  const f = chat.unavailable;
  const panel = $('unavailable');
  panel.hidden = !f || chat.phase !== 'waiting';
  if (panel.hidden) return;
  $('unavailable-heading').textContent =
    f.reason === 'closed' ? (f.opens_at ? t('closedNow', { when: whenText(f.opens_at, 'whenOpen') }) : t('closedNowNoTime')) : t('nobodyOnShift');
  const kinds = new Set((f.options || []).map((o) => o.option));
  $('ua-message').hidden = !kinds.has('leave_message');
  $('ua-callback').hidden = !kinds.has('callback');
  const lines = (f.options || []).filter((o) => o.option === 'other_line' && o.number);
  $('ua-lines').replaceChildren(
    ...lines.map((o) => {
      const name = o.helpline ? helplineName({ name: o.helpline, display_name: o.name }) : t('emergencyLine');
      return el('li', {}, el('a', { href: `tel:${o.number}`, text: o.number }), ` — ${name}`);
    }),
  );
}

function showUnavailableForm(which) {
  $('ua-message-form').hidden = which !== 'message';
  $('ua-callback-form').hidden = which !== 'callback';
  $('ua-error').textContent = '';
  (which === 'message' ? $('ua-text') : $('ua-phone')).focus();
}

function onKeepWaiting() {
  chat.unavailable = null;
  renderUnavailable();
  $('text').focus();
}

function onLeaveMessage(e) {
  e.preventDefault();
  const text = $('ua-text').value.trim();
  if (!text) {
    $('ua-error').textContent = t('emptyMessage');
    return;
  }
  send({ type: 'leave_message', text });
}

function onCallback(e) {
  e.preventDefault();
  const phone = $('ua-phone').value.trim();
  const digits = phone.replace(/[^0-9]/g, '');
  if (digits.length < 6 || digits.length > 15) {
    $('ua-error').textContent = t('badPhone');
    return;
  }
  const note = $('ua-note').value.trim();
  send(note ? { type: 'callback', phone, text: note } : { type: 'callback', phone });
}

function resetConversation() {
  chat.token = null;
  chat.contactId = null;
  chat.counsellor = null;
  chat.position = null;
  chat.unavailable = null;
  chat.left = null;
  chat.endReason = null;
  chat.estimatedWait = null;
  chat.wasConnected = false;
  chat.triage = null;
  chat.surveyToken = null;
  chat.unseen = 0;
  chat.returnCode = null;
  chat.codeKnown = false;
  $('code-shown').hidden = true;
  $('code-get').hidden = false;
  $('code-error').textContent = '';
  $('code-keep').checked = false;
  renderTitle();
  $('survey').reset();
  $('survey-error').textContent = '';
  $('survey-done').hidden = true;
  $('triage-done').hidden = true;
  chat.shown.clear();
  $('ua-text').value = '';
  $('ua-phone').value = '';
  $('ua-note').value = '';
  $('ua-message-form').hidden = true;
  $('ua-callback-form').hidden = true;
  chat.lastSeq = 0;
  chat.own.clear();
  chat.pending = [];
  $('messages').replaceChildren();
  $('typing').textContent = '';
  $('text').value = '';
}

// ----- the socket -------------------------------------------------------------

/** The socket: resumes (or starts) on every connect; when it drops, a banner, and it comes back by itself. */
const socket = new LiveSocket({
  path: () => '/ws/caller',
  active: () => chat.phase !== 'ended' && !chat.exiting,
  silentMs: SILENT_LIMIT_MS,
  onOpen: (ws) => {
    if (chat.token) {
      ws.send(JSON.stringify({ type: 'resume', resume_token: chat.token, last_seq: chat.lastSeq }));
    } else {
      const start = { type: 'start', helpline: chat.helpline };
      if (chat.language) start.language = chat.language;
      if (chat.returnCode) start.return_code = chat.returnCode;
      ws.send(JSON.stringify(start));
    }
    // At once, not at the next beat: the server watches a socket for stalls from its first ping.
    ws.send(JSON.stringify({ type: 'ping' }));
  },
  onFrame: (f) => handle(f),
  onLost: () => setBanner(t('reconnecting')),
});

function send(frame) {
  return socket.send(frame);
}

function reconnectNow() {
  if (chat.phase === 'start') return;
  socket.reconnectNow(0);
}

function backOnline() {
  socket.retries = 0;
  bannerBackOnline(t('reconnected'));
}

function remember() {
  try {
    sessionStorage.setItem(
      STORE_KEY,
      JSON.stringify({ token: chat.token, helpline: chat.helpline, language: chat.language }),
    );
  } catch {
    /* storage disabled: a reload then starts over */
  }
}

function forget() {
  try {
    sessionStorage.removeItem(STORE_KEY);
  } catch {
    /* nothing stored */
  }
}

function handle(f) {
  switch (f.type) {
    case 'return_code':
      chat.codeKnown = !!f.known;
      addNote(t(f.known ? 'codeKnown' : 'codeUnknown'));
      break;
    case 'queued':
      chat.token = f.resume_token;
      chat.contactId = f.contact_id;
      chat.position = f.position;
      chat.estimatedWait = f.estimated_wait_s ?? null;
      chat.phase = 'waiting';
      renderTriage();
      remember();
      backOnline();
      renderStatusLine();
      if (!$('messages').querySelector('.note.waiting-hint')) addNote(t('waitingHint'), 'waiting-hint');
      flushPending();
      break;
    case 'position':
      chat.position = f.position;
      chat.estimatedWait = f.estimated_wait_s ?? null;
      renderStatusLine();
      break;
    case 'unavailable':
      chat.unavailable = f;
      renderUnavailable();
      $('unavailable-heading').focus();
      break;
    case 'left':
      chat.left = { kind: f.kind, routedAt: f.routed_at };
      ended('left');
      break;
    case 'connected':
      chat.unavailable = null;
      renderUnavailable();
      chat.phase = 'active';
      chat.wasConnected = true;
      chat.counsellor = f.counsellor;
      renderTriage();
      renderStatusLine();
      addNote(t('talkingWith', { name: f.counsellor }));
      for (const m of chat.own.values()) if (m.state === 'sent') setState(m, 'delivered');
      break;
    case 'resumed':
      chat.contactId = f.contact_id;
      if (f.state === 'active') {
        chat.phase = 'active';
        chat.wasConnected = true;
        chat.counsellor = f.counsellor || chat.counsellor;
      } else {
        chat.phase = 'waiting';
        if (f.position) chat.position = f.position;
      }
      if ($('screen-chat').hidden) showScreen('chat');
      renderTriage();
      backOnline();
      renderStatusLine();
      flushPending();
      break;
    case 'message':
      onMessage(f);
      break;
    case 'ack':
      onAck(f);
      break;
    case 'typing':
      if (f.from === 'counsellor') showTyping(f.active);
      break;
    case 'contact_ended':
      ended(f.reason);
      break;
    case 'closed':
      // The chat cannot be taken now: said calmly, with the emergency number (never as an error).
      ended('unavailable');
      break;
    case 'reconnect':
      // The server is restarting: it closes the socket; the close handler resumes.
      break;
    case 'error':
      onError(f);
      break;
    default:
      break;
  }
}

// ----- messages ---------------------------------------------------------------

function timeOf(at) {
  return clockTime(at, { locale: ui });
}

function stateLabel(state, at) {
  const key = { sending: 'sending', waiting: 'waitingResend', sent: 'sent', delivered: 'delivered', failed: 'failed', received: '' }[state];
  const time = at ? timeOf(at) : '';
  return key ? `${time} · ${t(key)}` : time;
}

function messageElement(mine, text, at) {
  const who = el('span', { class: 'who', dataset: { i18n: mine ? 'you' : 'counsellor' } });
  who.textContent = t(who.dataset.i18n);
  const meta = el('span', { class: 'meta', dataset: { at: at || new Date().toISOString() } });
  return el('div', { class: mine ? 'msg mine' : 'msg theirs' }, who, el('p', { class: 'text', text }), meta);
}

function setState(m, state) {
  m.state = state;
  const meta = m.el.querySelector('.meta');
  meta.dataset.state = state;
  meta.textContent = stateLabel(state, meta.dataset.at);
  m.el.classList.toggle('failed', state === 'failed');
}

/**
 * Puts a node in the log in seq order (see placeInLog): so after a drop, what the counsellor wrote
 * meanwhile comes before what the caller wrote offline, as the server stored them.
 */
function place(node, seq) {
  placeInLog($('messages'), node, seq);
}

function addNote(text, extraClass) {
  place(el('p', { class: extraClass ? `note ${extraClass}` : 'note', text }), highestSeq(chat.shown) + 0.5);
}

function markShown(seq) {
  chat.shown.add(seq);
  while (chat.shown.has(chat.lastSeq + 1)) chat.lastSeq += 1;
}

function onMessage(f) {
  if (f.contact_id && chat.contactId && f.contact_id !== chat.contactId) return;
  if (chat.shown.has(f.seq)) return;
  if (f.from === 'caller') {
    const mine = chat.own.get(f.client_id);
    if (mine) {
      // Our own message, stored before the drop: its ack was lost, the resume brought it back.
      acknowledged(mine, f.client_id, f.seq);
      return;
    }
    // Written before a reload of this tab: shown from the server's copy.
    const node = messageElement(true, f.text, f.at);
    const m = { el: node, text: f.text, seq: f.seq, state: 'sent' };
    chat.own.set(f.client_id, m);
    setState(m, chat.phase === 'active' ? 'delivered' : 'sent');
    place(node, f.seq);
    markShown(f.seq);
    return;
  }
  if (f.from === 'system') {
    // A notice from the server (e.g. a supervisor joined): a line of its own, not a counsellor's message.
    // A supervisor joined (`notice`): said in the page's language; another notice as the server wrote it.
    const text = f.notice?.kind === 'joined' ? t('supervisorJoined', { name: f.notice.name }) : f.text;
    place(el('p', { class: 'note', text }), f.seq);
    markShown(f.seq);
    return;
  }
  showTyping(false);
  if (pageUnseen()) {
    chat.unseen += 1;
    renderTitle();
  }
  const node = messageElement(false, f.text, f.at);
  const meta = node.querySelector('.meta');
  meta.dataset.state = 'received';
  meta.textContent = stateLabel('received', f.at);
  place(node, f.seq);
  markShown(f.seq);
}

function acknowledged(m, clientId, seq) {
  m.seq = seq;
  clearTimeout(m.resendTimer);
  m.resendTimer = null;
  chat.pending = chat.pending.filter((id) => id !== clientId);
  // Stored on the server; with a counsellor in the conversation it is on their screen at once
  // (or comes with the conversation's history when they reconnect).
  setState(m, chat.phase === 'active' ? 'delivered' : 'sent');
  place(m.el, seq);
  markShown(seq);
}

function onAck(f) {
  const m = chat.own.get(f.client_id);
  if (!m) return;
  if (m.seq == null) acknowledged(m, f.client_id, f.seq);
}

function sendText(text) {
  const clientId = newClientId('w');
  const node = messageElement(true, text);
  const m = { el: node, text, seq: null, state: 'sending' };
  chat.own.set(clientId, m);
  chat.pending.push(clientId);
  setState(m, 'sending');
  place(node, null);
  if (chat.contactId) send({ type: 'message', client_id: clientId, text });
}

/** Sends again every message not yet acknowledged, with its own client_id: the server stores each once. */
function flushPending() {
  for (const id of chat.pending) {
    const m = chat.own.get(id);
    if (m && m.state !== 'failed') send({ type: 'message', client_id: id, text: m.text });
  }
}

/**
 * The server read the message but could not take it in time (`overloaded`): it is shown as waiting
 * and sent again, with the same client_id, after retry_after_ms and up to half again at random (so
 * that everyone refused at once does not come back at once). A copy stored after all is
 * acknowledged, never stored twice.
 */
function resendLater(id, m, retryAfterMs) {
  if (m.resendTimer) return;
  setState(m, 'waiting');
  const base = Math.max(100, Number(retryAfterMs) || 1000);
  m.resendTimer = setTimeout(() => {
    m.resendTimer = null;
    if (m.seq != null || m.state === 'failed') return;
    setState(m, 'sending');
    if (chat.contactId) send({ type: 'message', client_id: id, text: m.text });
  }, base + Math.random() * base * 0.5);
}

function onError(f) {
  const m = f.ref ? chat.own.get(f.ref) : null;
  if (m && m.seq == null) {
    if (f.code === 'overloaded' || (f.code === 'rate_limited' && f.retry_after_ms)) {
      resendLater(f.ref, m, f.retry_after_ms);
    } else if (f.code === 'too_large' || f.code === 'bad_field') {
      chat.pending = chat.pending.filter((id) => id !== f.ref);
      setState(m, 'failed');
    } else if (f.code === 'unavailable' || f.code === 'rate_limited') {
      setTimeout(flushPending, 2000);
    }
    return;
  }
  if (f.code === 'bad_token') {
    // The chat ended while we were away.
    ended(null);
  } else if (f.code === 'unknown_helpline') {
    chat.phase = 'start';
    socket.close(1000);
    showScreen('start');
    $('start-error').textContent = t('unknownHelpline');
  }
}

function onSubmit(event) {
  event.preventDefault();
  const box = $('text');
  const text = box.value;
  if (!text.trim() || chat.phase === 'ended') return;
  if ([...text].length > 4000) {
    $('banner').textContent = t('tooLong');
    return;
  }
  box.value = '';
  stopTyping();
  sendText(text);
  box.focus();
}

// ----- typing -----------------------------------------------------------------

function onInput() {
  if (!chat.contactId) return;
  const now = Date.now();
  if (now - chat.typingSentAt > TYPING_REPEAT_MS) {
    chat.typingSentAt = now;
    send({ type: 'typing', active: true });
  }
  clearTimeout(chat.typingStop);
  chat.typingStop = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(chat.typingStop);
  if (chat.typingSentAt) {
    chat.typingSentAt = 0;
    send({ type: 'typing', active: false });
  }
}

function showTyping(active) {
  clearTimeout(chat.typingHide);
  $('typing').textContent = active ? t('typing') : '';
  if (active) chat.typingHide = setTimeout(() => showTyping(false), 10000);
}

// ----- ending -----------------------------------------------------------------

function ended(reason) {
  chat.phase = 'ended';
  chat.endReason = reason;
  chat.surveyToken = chat.wasConnected && reason !== 'left' ? chat.token : null;
  forget();
  socket.close(1000);
  $('banner').textContent = '';
  showTyping(false);
  renderStatusLine();
  renderEnded();
  $('survey').hidden = !chat.surveyToken;
  renderCodeOffer();
  showScreen('ended');
  $('ended-heading').focus();
}

/** End chat asks first (a modal dialog; "keep chatting" has the focus, Esc keeps chatting too). */
function onEnd() {
  const dialog = $('end-dialog');
  if (dialog.open) return;
  dialog.showModal();
  $('end-cancel').focus();
}

function onEndConfirmed() {
  $('end-dialog').close();
  if (chat.phase === 'ended') return;
  if (!send({ type: 'end' })) ended('caller_ended');
}

// ----- the survey -------------------------------------------------------------

/** The optional survey after a chat with a counsellor: anonymous counts only (POST /api/v1/caller/survey). */
async function onSurvey(e) {
  e.preventDefault();
  const form = $('survey');
  const helped = form.elements.helped.value || null;
  const again = form.elements.again.value || null;
  if (!helped && !again) {
    $('survey-error').textContent = t('surveyPick');
    return;
  }
  $('survey-error').textContent = '';
  $('survey-send').disabled = true;
  let ok = false;
  try {
    const res = await fetch('/api/v1/caller/survey', {
      method: 'POST',
      credentials: 'omit',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ resume_token: chat.surveyToken, helped, again }),
    });
    // 409: answered already (e.g. twice from this page): thanked all the same.
    ok = res.status === 204 || res.status === 409;
  } catch {
    ok = false;
  }
  $('survey-send').disabled = false;
  if (!ok) {
    $('survey-error').textContent = t('surveyFailed');
    return;
  }
  chat.surveyToken = null;
  form.hidden = true;
  $('survey-done').textContent = t('surveyThanks');
  $('survey-done').hidden = false;
  $('survey-done').focus();
}

// ----- the return code ----------------------------------------------------------

function savedCode() {
  try {
    return localStorage.getItem(CODE_KEY);
  } catch {
    return null;
  }
}

function keepCode(code) {
  try {
    if (code) localStorage.setItem(CODE_KEY, code);
    else localStorage.removeItem(CODE_KEY);
  } catch {
    /* not kept */
  }
  renderSavedCode();
}

/** The start screen: a code kept on this device fills the field, with a way to forget it. */
function renderSavedCode() {
  const code = savedCode();
  $('code-saved').hidden = !code;
  if (code && !$('return-code').value) $('return-code').value = code;
}

/** The ended screen's offer of a return code: after a chat a counsellor answered. A chat started with a
 * known code keeps it (shown again); otherwise she may ask for one (POST /api/v1/caller/return-code). */
function renderCodeOffer() {
  const offer = $('code-offer');
  offer.hidden = !chat.surveyToken;
  if (offer.hidden) return;
  if (chat.codeKnown && chat.returnCode) {
    showCode(chat.returnCode.toUpperCase(), 'codeSame');
    $('code-keep').checked = savedCode() === chat.returnCode;
  }
}

function showCode(code, label) {
  $('code-get').hidden = true;
  $('code-value').textContent = code;
  const yours = $('code-shown').querySelector('[data-i18n]');
  yours.dataset.i18n = label;
  yours.textContent = t(label);
  $('code-shown').hidden = false;
}

async function onGetCode() {
  $('code-error').textContent = '';
  $('code-get').disabled = true;
  let code = null;
  try {
    const res = await fetch('/api/v1/caller/return-code', {
      method: 'POST',
      credentials: 'omit',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ resume_token: chat.surveyToken }),
    });
    if (res.ok) code = (await res.json()).code;
  } catch {
    code = null;
  }
  $('code-get').disabled = false;
  if (!code) {
    $('code-error').textContent = t('codeFailed');
    return;
  }
  showCode(code, 'codeYours');
  $('code-value').focus();
}

// ----- triage -----------------------------------------------------------------

/** "Are you in danger right now?" while waiting, where the helpline asks it; asked once. */
function renderTriage() {
  const h = helplines.find((x) => x.name === chat.helpline);
  $('triage').hidden = !(h && h.triage && chat.phase === 'waiting' && !chat.triage);
  const done = $('triage-done');
  done.hidden = !chat.triage || chat.phase !== 'waiting';
  if (chat.triage) withTel(done, chat.triage === 'yes' ? 'triageYesDone' : 'triageNoDone', '112');
}

function onTriage(answer) {
  if (!send({ type: 'triage', answer })) return;
  chat.triage = answer;
  renderTriage();
}

function onNewChat() {
  resetConversation();
  $('return-code').value = '';
  renderSavedCode();
  chat.phase = 'start';
  showScreen('start');
  const first = document.querySelector('#start-form input, #start-form select');
  if (first) first.focus();
}

// ----- quick exit -------------------------------------------------------------

/**
 * Ends the contact if the socket is up, forgets the resume token, blanks the page at once, and replaces
 * this history entry with a neutral site (the top page, when the widget is in a frame).
 */
function quickExit() {
  if (chat.exiting) return;
  chat.exiting = true;
  clearTimeout(socket.retryTimer);
  try {
    if (chat.contactId && chat.phase !== 'ended' && socket.send({ type: 'end', quick_exit: true })) socket.ws.close(1000);
  } catch {
    /* going anyway */
  }
  forget();
  try {
    sessionStorage.clear();
    localStorage.removeItem(CODE_KEY);
  } catch {
    /* nothing stored */
  }
  chat.unseen = 0;
  document.title = 'Weather';
  document.body.replaceChildren();
  try {
    window.top.location.replace(EXIT_URL);
  } catch {
    window.location.replace(EXIT_URL);
  }
}

/** Shift pressed three times in a row (nothing else between, within 2 s): quick exit. */
function watchShift() {
  let count = 0;
  let first = 0;
  document.addEventListener(
    'keydown',
    (e) => {
      if (e.key !== 'Shift' || e.repeat || e.ctrlKey || e.altKey || e.metaKey) {
        if (e.key !== 'Shift') count = 0;
        return;
      }
      const now = Date.now();
      if (count === 0 || now - first > 2000) {
        count = 0;
        first = now;
      }
      count += 1;
      if (count >= 3) {
        count = 0;
        quickExit();
      }
    },
    true,
  );
}

// ----- start up ---------------------------------------------------------------

function restore() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || 'null');
    if (saved && saved.token) return saved;
  } catch {
    /* nothing usable */
  }
  return null;
}

function init() {
  $('quick-exit').addEventListener('click', quickExit);
  $('dialog-quick-exit').addEventListener('click', quickExit);
  watchShift();
  $('ui-lang').addEventListener('change', (e) => {
    ui = e.target.value;
    applyLanguage();
  });
  $('start-form').addEventListener('submit', onStart);
  $('retry').addEventListener('click', loadHelplines);
  $('composer').addEventListener('submit', onSubmit);
  onEnter($('text'), () => $('composer').requestSubmit());
  $('text').addEventListener('input', onInput);
  $('end').addEventListener('click', onEnd);
  $('end-cancel').addEventListener('click', () => $('end-dialog').close());
  $('end-confirm').addEventListener('click', onEndConfirmed);
  $('survey').addEventListener('submit', onSurvey);
  $('triage-yes').addEventListener('click', () => onTriage('yes'));
  $('triage-no').addEventListener('click', () => onTriage('no'));
  window.addEventListener('focus', seen);
  $('ua-wait').addEventListener('click', onKeepWaiting);
  $('ua-message').addEventListener('click', () => showUnavailableForm('message'));
  $('ua-callback').addEventListener('click', () => showUnavailableForm('callback'));
  $('ua-message-form').addEventListener('submit', onLeaveMessage);
  $('ua-callback-form').addEventListener('submit', onCallback);
  $('new-chat').addEventListener('click', onNewChat);
  $('code-get').addEventListener('click', onGetCode);
  $('code-keep').addEventListener('change', (e) => keepCode(e.target.checked ? $('code-value').textContent : null));
  $('code-forget').addEventListener('click', () => {
    keepCode(null);
    $('return-code').value = '';
    $('return-code').focus();
  });
  window.addEventListener('online', reconnectNow);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') {
      reconnectNow();
      seen();
    }
  });
  setInterval(() => socket.heartbeat(), PING_EVERY_MS);

  applyLanguage();
  renderSavedCode();
  const saved = restore();
  loadHelplines();
  if (saved) {
    // This tab was reloaded during a chat: resume it; the server sends the whole conversation again.
    chat.token = saved.token;
    chat.helpline = saved.helpline;
    chat.language = saved.language;
    chat.phase = 'connecting';
    showScreen('chat');
    renderStatusLine();
    socket.connect();
  }
}

init();
