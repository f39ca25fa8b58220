// The counsellor console: sign in, set a status, answer offers, hold several conversations at once.
//
// The access token is kept in memory and in this tab's sessionStorage (see staff.js: so a reload does not
// sign the counsellor out; it is gone when the tab closes or on Sign out). Never cookies or localStorage.
// When the socket drops, a banner says so and the console reconnects by itself with a fresh ticket;
// the server's hello + assigned{history} rebuild every pane, while drafts in the reply boxes stay.
//
// Caller and counsellor text is always put into the page with textContent, never as HTML.
//
// Built for a night shift (docs/web-agent.md): an offer rings again and again in a bar fixed at the top
// of the window (and as a desktop notification) until it is answered, declined or gone; conversations
// are a list (an alias per contact, channel, wait, last message, unread) beside the open one, whose
// contact form sits next to it; wrap-up with Ready, away reasons, End chat confirmed, canned responses
// and Flag (agent-shift.js). The new words are in agent-text.js.
//
// Supervisors may whisper (shown here only, never to the caller) and join a conversation; messages a
// supervisor writes carry a client_id starting with SUPERVISOR_PREFIX (see supervisor.js), so they are
// labelled "Supervisor" rather than taken for this counsellor's own.

import { $, el, newClientId, setBanner, bannerBackOnline, placeInLog, highestSeq, onEnter } from './common.js';
import { languageName, mountLogin, submitLogin, showLogin, saveToken, savedToken, forgetToken, revokeToken, setConn, staffSocket } from './staff.js';
import { showEarlier, callControls, renderCallControls, onCallControl } from './agent-call.js';
// Casework (contact form, escalation, wrap-ups, my cases): see agent-casework.js.
import { initCasework, caseworkRedraw, caseworkOnline, caseworkSignedOut, mountCasework, unmountCasework, caseworkFrame, caseworkError, caseworkEnded, mayClose } from './agent-casework.js';
import { unlockAudio, ring, stopRing, renderNotifyState, askNotify, notifyOffer, closeNotice, confirmEnd, redrawEnd, initEndDialog, loadCanned, forgetCanned, mountCanned, mountFlag, onFlagged, onFlagError } from './agent-shift.js';
import { TEXT, aliasOf, awayLabel, helplineWords, setText, durationWords } from './agent-text.js';
// Every word through the staff catalogue (docs/web-agent.md "Translating a staff page").
import { t, translatePage, onLocaleChange, formatTime } from './staff-i18n.js';
import { initLocale, localeSignedIn } from './staff.js';
import { initTransfer, mountTransfer, onHandover, onConsult, onTransferError, redrawTransfer, showHandover } from './agent-transfer.js';

const TOKEN_KEY = 'helpline.console.token';
const PING_EVERY_MS = 15000;
const SILENT_LIMIT_MS = 35000;
const TYPING_REPEAT_MS = 3000;
const TYPING_IDLE_MS = 4000;
const SUPERVISOR_PREFIX = 'sup-';

const state = {
  token: null,
  me: null,
  status: null,
  signingOut: false,
  /** helpline name -> display name */
  helplines: new Map(),
  /** contact_id -> { offer, el, deadline } in arrival order */
  offers: new Map(),
  /** contact_id -> conversation (see conversation()) */
  convs: new Map(),
  active: null,
  /** The away reasons this counsellor may give (from `hello`). */
  awayReasons: [],
  awayReason: null,
};

// ----- small helpers ----------------------------------------------------------

function helplineName(name) {
  return helplineWords(name, state.helplines.get(name));
}

function duration(ms) {
  return durationWords(ms);
}

/** A time of day in the page's language. */
function timeOf(at) {
  return formatTime(at);
}

function announce(text) {
  // Re-set so the same text is read again.
  $('alert').textContent = '';
  setTimeout(() => {
    $('alert').textContent = text;
  }, 50);
}

function updateTitle() {
  const offers = state.offers.size;
  let unread = 0;
  for (const c of state.convs.values()) unread += c.unread;
  const n = offers + unread;
  document.title = n ? t('console.titleCount', { n }) : t('console.title');
}

// ----- sign in and out ----------------------------------------------------------

function onLogin(event) {
  unlockAudio();
  askNotify();
  return submitLogin(event, (body) => signedIn(body.access_token, body.user));
}

function signedIn(token, user) {
  state.token = token;
  // The account's language (or, when it has none yet, the one chosen on the sign-in screen, kept with it).
  if (user) localeSignedIn(token, user);
  else accountLocale(token);
  state.signingOut = false;
  saveToken(TOKEN_KEY, token);
  $('login-screen').hidden = true;
  $('console').hidden = false;
  $('me').hidden = false;
  loadHelplines();
  socket.connect();
}

function signOut(message) {
  // A chosen sign-out (no message) also voids the token on the server; a forced one (expired, disabled) has nothing left to void.
  if (!message) revokeToken(state.token);
  state.signingOut = true;
  socket.close(1000);
  state.token = null;
  forgetToken(TOKEN_KEY);
  for (const id of [...state.offers.keys()]) removeOffer(id);
  for (const c of state.convs.values()) {
    unmountCasework(c);
    c.item.remove();
    c.pane.remove();
  }
  state.convs.clear();
  forgetCanned();
  caseworkSignedOut();
  state.active = null;
  refreshEmpty();
  setBanner('');
  $('console').hidden = true;
  $('me').hidden = true;
  showLogin(message);
  updateTitle();
}

/** A resumed session (a reload): the account's language from `GET /api/v1/me`. */
async function accountLocale(token) {
  try {
    const res = await fetch('/api/v1/me', { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' });
    if (res.ok) localeSignedIn(token, await res.json());
  } catch {
    /* the language stays as it is */
  }
}

async function loadHelplines() {
  try {
    const res = await fetch('/api/v1/helplines', { cache: 'no-store' });
    if (!res.ok) return;
    for (const h of await res.json()) state.helplines.set(h.name, h.display_name);
    for (const c of state.convs.values()) renderInfo(c);
    for (const o of state.offers.values()) renderOffer(o);
  } catch {
    /* names stay as codes */
  }
}

// ----- the socket -------------------------------------------------------------

/** The socket: a fresh ticket each time; when it drops, a banner, and it comes back by itself. */
const socket = staffSocket({
  path: '/ws/agent',
  state,
  signOut,
  get onlineLabel() {
    return t('console.connected');
  },
  silentMs: SILENT_LIMIT_MS,
  onFrame: (f) => handle(f),
  onLost: () => {
    setBanner(t('console.lost'));
    for (const id of [...state.offers.keys()]) removeOffer(id);
  },
});

function send(frame) {
  return socket.send(frame);
}

function handle(f) {
  switch (f.type) {
    case 'hello':
      onHello(f);
      break;
    case 'status':
      setStatus(f.status, f.reason);
      if (f.reason === 'missed_offers') {
        setBanner(t('console.setAway'));
        announce(t('console.setAwayAnnounce'));
      }
      break;
    case 'offer':
      onOffer(f);
      break;
    case 'offer_revoked':
      if (state.offers.has(f.contact_id)) {
        removeOffer(f.contact_id);
        const why = ['expired', 'contact_gone', 'unavailable'].includes(f.reason) ? t(`console.withdrawn.${f.reason}`) : '';
        announce(why ? t('console.withdrawnWhy', { why }) : t('console.withdrawn'));
      }
      break;
    case 'assigned':
      onAssigned(f);
      break;
    case 'message':
      onMessage(f);
      break;
    case 'ack':
      onAck(f);
      break;
    case 'typing':
      if (f.from === 'caller') showTyping(state.convs.get(f.contact_id), f.active);
      break;
    case 'caller_presence':
      onPresence(f.contact_id, f.online);
      break;
    case 'contact_ended':
      onEnded(f.contact_id, f.reason);
      break;
    case 'whisper':
      onWhisper(f);
      break;
    case 'delivery':
      onDelivery(f);
      break;
    case 'channel_info':
      onChannelInfo(f);
      break;
    case 'call_control':
      onCallControl(f, state.convs);
      break;
    case 'escalated':
      caseworkFrame(f);
      break;
    case 'wrap_up':
      onWrapUp(f);
      break;
    case 'wrap_up_ended':
      onWrapUpEnded(f);
      break;
    case 'handover':
      onHandover(state.convs.get(f.contact_id), f);
      break;
    case 'consult':
      onConsult(state.convs.get(f.contact_id), f);
      break;
    case 'flagged':
      onFlagged(state.convs.get(f.contact_id), f);
      break;
    case 'error':
      onError(f);
      break;
    default:
      break;
  }
}

function onHello(f) {
  socket.retries = 0;
  state.me = f;
  $('me-name').textContent = f.display_name;
  setConn('online', t('console.connected'));
  bannerBackOnline(t('console.backAgain'));
  setAwayReasons(f.away_reasons || []);
  setStatus(f.status, f.status === 'away' ? state.awayReason : null);
  loadCanned(state.token);
  for (const id of [...state.offers.keys()]) removeOffer(id);
  const open = new Set(f.conversations.map((c) => c.contact_id));
  for (const c of state.convs.values()) {
    if (!open.has(c.id) && !c.ended) markEnded(c, null);
  }
  for (const s of f.conversations) {
    const c = conversation(s.contact_id, s);
    callControls(c, s.channel, send);
    c.callerOnline = s.caller_online;
    c.syncing = true;
    renderInfo(c);
  }
  caseworkOnline();
}

function setStatus(status, reason) {
  state.status = status;
  state.awayReason = status === 'away' ? reason || null : null;
  for (const r of document.querySelectorAll('input[name="status"]')) r.checked = r.value === status;
  const select = $('away-reason');
  if (status === 'away' && reason && [...select.options].some((o) => o.value === reason)) select.value = reason;
  const why = !state.awayReason ? '' : state.awayReason === 'missed_offers' ? TEXT.missedOffers : awayLabel(state.awayReason);
  $('status-note').textContent = why ? TEXT.awayAs(why) : '';
}

/** The Away reason list: "no reason" and the reasons of the helplines this counsellor serves. */
function setAwayReasons(reasons) {
  state.awayReasons = reasons;
  const select = $('away-reason');
  const keep = select.value;
  select.replaceChildren(
    el('option', { value: '', text: TEXT.awayNoReason }),
    ...reasons.map((r) => el('option', { value: r, text: awayLabel(r) })),
  );
  if (reasons.includes(keep)) select.value = keep;
}

/** Sends a status; Away carries the chosen reason. */
function sendStatus(status) {
  const reason = $('away-reason').value;
  const frame = status === 'away' && reason ? { type: 'status', status, reason } : { type: 'status', status };
  return send(frame);
}

// ----- offers -----------------------------------------------------------------

function onOffer(f) {
  removeOffer(f.contact_id);
  const o = { offer: f, deadline: Date.now() + f.expires_in_ms, el: null };
  const accept = el('button', { type: 'button', class: 'accept' }, el('span', { dataset: { i18n: 'console.accept' }, text: t('console.accept') }), ' ', el('kbd', { text: 'Alt+A', translate: false }));
  const decline = el('button', { type: 'button', class: 'secondary decline' }, el('span', { dataset: { i18n: 'console.decline' }, text: t('console.decline') }), ' ', el('kbd', { text: 'Alt+D', translate: false }));
  accept.addEventListener('click', () => acceptOffer(f.contact_id));
  decline.addEventListener('click', () => declineOffer(f.contact_id));
  const headingId = `offer-h-${f.contact_id}`;
  // A phone call rings on the counsellor's phone (extension) once accepted; the console only routes it.
  const kind = f.channel === 'call' ? 'call' : 'chat';
  o.el = el(
    'article',
    { class: 'offer', 'aria-labelledby': headingId, dataset: { contactId: f.contact_id } },
    el('h3', { id: headingId, dataset: { i18n: `console.incoming${kind === 'call' ? 'Call' : 'Chat'}${f.backup ? 'Backup' : ''}` } }),
    el('p', { class: 'what' }),
    el('p', { class: 'presence', dataset: { online: String(f.caller_online !== false), i18n: f.caller_online === false ? 'console.callerOfflineOffer' : 'console.callerOnlineOffer' } }),
    el('p', { class: 'countdown' }),
    el('div', { class: 'buttons' }, accept, decline),
  );
  translatePage(o.el);
  state.offers.set(f.contact_id, o);
  $('offer-list').append(o.el);
  renderOffer(o);
  showEarlier(o.el, f);
  refreshEmpty();
  updateTitle();
  ring(ringing);
  notifyOffer(f.contact_id, TEXT.notifyTitle(kind), `${helplineName(f.helpline)} · ${languageName(f.language)}`, () => {
    o.el.querySelector('button.accept')?.focus();
  });
  announce(t('console.announceOffer', { what: TEXT.notifyTitle(kind), helpline: helplineName(f.helpline), language: languageName(f.language) }));
}

/** An offer still waits for an answer (the ring goes on). */
function ringing() {
  for (const o of state.offers.values()) if (!o.accepting) return true;
  return false;
}

function renderOffer(o) {
  const f = o.offer;
  const call = f.channel === 'call'
    ? ` · ${t('console.phoneEnd', { digits: f.caller_last2 || '??' })}${f.repeat && f.repeat.contacts ? ` · ${t('console.repeat', { n: f.repeat.contacts, days: f.repeat.days })}` : ''}`
    : '';
  o.el.querySelector('.what').textContent =
    `${helplineName(f.helpline)} · ${languageName(f.language)} · ${TEXT.waited(duration(f.waited_ms))}${call}`;
  if (o.accepting) return;
  const left = o.deadline - Date.now();
  o.el.querySelector('.countdown').textContent = left > 0 ? t('console.expiresIn', { n: Math.ceil(left / 1000) }) : t('console.expiring');
}

function tickOffers() {
  for (const o of state.offers.values()) renderOffer(o);
}

function removeOffer(id) {
  const o = state.offers.get(id);
  if (!o) return;
  const hadFocus = o.el.contains(document.activeElement);
  o.el.remove();
  state.offers.delete(id);
  closeNotice(id);
  if (!ringing()) stopRing();
  refreshEmpty();
  updateTitle();
  if (hadFocus) {
    const next = $('offer-list').querySelector('button.accept');
    if (next) next.focus();
  }
}

function acceptOffer(id) {
  const o = state.offers.get(id);
  if (!o || !send({ type: 'accept', contact_id: id })) return;
  o.accepting = true;
  closeNotice(id);
  if (!ringing()) stopRing();
  o.el.classList.add('busy');
  for (const b of o.el.querySelectorAll('button')) b.disabled = true;
  o.el.querySelector('.countdown').textContent = t('console.accepting');
}

function declineOffer(id) {
  if (!state.offers.has(id)) return;
  send({ type: 'decline', contact_id: id });
  removeOffer(id);
  announce(t('console.declined'));
}

function oldestOffer() {
  for (const [id, o] of state.offers) if (!o.accepting) return id;
  return null;
}

// ----- conversations ----------------------------------------------------------

/** The conversation for a contact, with its list entry and pane (made on first use). */
function conversation(id, info = {}) {
  let c = state.convs.get(id);
  if (c) {
    Object.assign(c.info, info);
    return c;
  }
  c = {
    id,
    alias: aliasOf(id),
    info: { ...info },
    unread: 0,
    callerOnline: info.caller_online ?? true,
    ended: false,
    syncing: false,
    shown: new Set(),
    /** client_id -> { el, text, seq, state } of own messages */
    own: new Map(),
    pending: [],
    typingSentAt: 0,
    typingStop: null,
    typingHide: null,
    /** { deadline } while its slot is in wrap-up */
    wrapUp: null,
  };
  const itemId = `conv-${id}`;
  const paneId = `pane-${id}`;
  // The list entry: a button (c.tab, as the casework hooks call it) that opens the conversation.
  c.tab = el(
    'button',
    { type: 'button', class: 'conv-item', id: itemId, 'aria-controls': paneId, 'aria-current': 'false', dataset: { contactId: id } },
    el('span', { class: 'conv-top' },
      el('strong', { class: 'alias', text: c.alias }),
      el('span', { class: 'unread', hidden: true }, el('span', { class: 'count' }), ' ', el('span', { class: 'visually-hidden', dataset: { i18n: 'console.unreadWord' }, text: t('console.unreadWord') })),
    ),
    el('span', { class: 'label' }),
    el('span', { class: 'waited' }),
    el('span', { class: 'preview' }),
    el('span', { class: 'marks' },
      el('span', { class: 'offline' }),
      el('span', { class: 'ended-mark' }),
      el('span', { class: 'wrapup-mark' }),
    ),
  );
  c.item = el('li', { dataset: { contactId: id } }, c.tab);
  c.tab.addEventListener('click', () => select(id, false));
  c.tab.addEventListener('keydown', onListKey);

  const textId = `text-${id}`;
  const logId = `log-${id}`;
  c.log = el('div', { class: 'log', role: 'log', id: logId, 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': t('console.messages'), dataset: { i18nAttr: 'aria-label:console.messages' }, tabindex: '0' });
  c.typing = el('p', { class: 'typing' });
  c.text = el('textarea', { id: textId, rows: 3, maxLength: 4000, autocomplete: 'off', 'aria-keyshortcuts': 'Control+K' });
  c.sendButton = el('button', { type: 'submit', dataset: { i18n: 'console.send' }, text: t('console.send') });
  c.cannedNote = el('p', { class: 'muted canned-note', role: 'status' });
  const picker = mountCanned(c);
  c.form = el(
    'form',
    { class: 'composer', noValidate: true },
    el('div', { class: 'composer-head' }, el('label', { for: textId, dataset: { i18n: 'console.reply' }, text: t('console.reply') }), picker.button),
    picker.panel,
    el('div', { class: 'row' }, c.text, c.sendButton),
    c.cannedNote,
  );
  c.endButton = el('button', { type: 'button', class: 'danger end', dataset: { i18n: 'console.end' }, text: t('console.end') });
  c.closeButton = el('button', { type: 'button', class: 'secondary close', dataset: { i18n: 'console.close' }, text: t('console.close') });
  c.endedText = el('p');
  c.wrapText = el('p', { class: 'wrapup-text' });
  c.readyButton = el('button', { type: 'button', class: 'ready', dataset: { i18n: 'console.ready' }, text: TEXT.ready });
  c.wrapNote = el('div', { class: 'wrapup-note', hidden: true }, c.wrapText, c.readyButton);
  c.endedNote = el('div', { class: 'ended-note', role: 'status', hidden: true }, c.endedText, c.wrapNote, c.closeButton);
  c.infoList = el('dl', { class: 'info' });
  c.heading = el('h3', { class: 'pane-title' });
  const flag = mountFlag(c, send);
  const transfer = mountTransfer(c);
  c.chat = el(
    'div',
    { class: 'chat-col' },
    el('div', { class: 'pane-head' }, el('div', {}, c.heading, c.infoList), el('div', { class: 'pane-actions' }, c.endButton)),
    c.log,
    c.typing,
    c.endedNote,
    c.form,
    flag,
  );
  // Transfer and consult (agent-transfer.js), then the contact form and escalation (agent-casework.js),
  // go in the second column, which scrolls with the page (the first stays in the window).
  c.work = el('div', { class: 'work-col' }, transfer);
  c.pane = el(
    'section',
    { class: 'pane', id: paneId, 'aria-labelledby': `${paneId}-title`, hidden: true, dataset: { contactId: id } },
    c.chat,
    c.work,
  );
  c.heading.id = `${paneId}-title`;
  c.form.addEventListener('submit', (e) => {
    e.preventDefault();
    sendReply(c);
  });
  onEnter(c.text, () => sendReply(c));
  c.text.addEventListener('input', () => onTyping(c));
  c.endButton.addEventListener('click', () => {
    if (c.ended) return;
    const text = () => (c.channel === 'call' ? TEXT.endAskCall(aliasOf(c.id)) : TEXT.endAsk(aliasOf(c.id)));
    confirmEnd(c, text, () => {
      if (!c.ended) send({ type: 'end', contact_id: c.id });
    });
  });
  c.readyButton.addEventListener('click', () => {
    if (c.wrapUp) send({ type: 'ready', contact_id: c.id });
  });
  c.closeButton.addEventListener('click', () => {
    if (mayClose(c)) closeConversation(c);
  });
  state.convs.set(id, c);
  $('conv-list').append(c.item);
  $('panes').append(c.pane);
  mountCasework(c);
  renderInfo(c);
  refreshEmpty();
  if (!state.active) select(id, false);
  return c;
}

/** The newest message shown in a conversation, as "You: …" or the caller's words. */
function preview(c) {
  const all = c.log.querySelectorAll('.msg');
  const last = all[all.length - 1];
  if (!last) return TEXT.noMessages;
  const text = last.querySelector('.text')?.textContent || '';
  const short = [...text].length > 70 ? `${[...text].slice(0, 70).join('')}…` : text;
  return last.classList.contains('mine') ? `${TEXT.you}${short}` : short;
}

function renderInfo(c) {
  const i = c.info;
  const channel = TEXT.channel[c.channel || 'chat'] || c.channel;
  c.tab.querySelector('.label').textContent = `${channel} · ${helplineName(i.helpline || '')} · ${(i.language || '').toUpperCase()}`;
  const waitedMs = i.queued_at && i.answered_at ? Date.parse(i.answered_at) - Date.parse(i.queued_at) : null;
  c.tab.querySelector('.waited').textContent = waitedMs != null && !Number.isNaN(waitedMs) ? TEXT.waited(duration(waitedMs)) : '';
  const shown = c.tab.querySelector('.preview');
  shown.textContent = preview(c);
  // A message is shown as written; only "No messages yet" is the console's own words.
  shown.translate = !c.log.querySelector('.msg');
  c.tab.querySelector('.offline').textContent = c.ended || c.callerOnline ? '' : TEXT.callerOffline;
  c.tab.querySelector('.ended-mark').textContent = c.ended ? TEXT.ended : '';
  c.tab.querySelector('.wrapup-mark').textContent = c.wrapUp ? TEXT.wrapUpMark : '';
  const unread = c.tab.querySelector('.unread');
  unread.hidden = !c.unread;
  unread.querySelector('.count').textContent = c.unread ? `${c.unread}` : '';
  c.tab.classList.toggle('ended', c.ended);
  c.tab.classList.toggle('has-unread', c.unread > 0);
  c.alias = aliasOf(c.id);
  c.tab.querySelector('.alias').textContent = c.alias;
  c.heading.textContent = t('console.paneTitle', { alias: c.alias, helpline: helplineName(i.helpline || '') });
  const waited = waitedMs != null && !Number.isNaN(waitedMs) ? duration(waitedMs) : '–';
  const presence = el('dd', { class: 'presence', text: t(c.ended ? 'console.presenceEnded' : c.callerOnline ? 'console.presenceOn' : 'console.presenceOff') });
  presence.dataset.online = String(c.callerOnline || c.ended);
  c.infoList.replaceChildren(
    el('dt', { text: t('console.info.channel') }), el('dd', { text: channel }),
    el('dt', { text: t('console.info.language') }), el('dd', { text: languageName(i.language || '') }),
    el('dt', { text: t('console.info.waited') }), el('dd', { text: waited }),
    el('dt', { text: t('console.info.started') }), el('dd', { text: i.answered_at ? timeOf(i.answered_at) : '–' }),
    el('dt', { text: t('console.info.caller') }), presence,
  );
  if (c.repeat) {
    c.infoList.append(
      el('dt', { text: t('console.info.repeat') }),
      el('dd', { class: 'repeat', text: t('console.repeatValue', { n: c.repeat.contacts, days: c.repeat.days }) }),
    );
  }
  renderCallControls(c);
}

function refreshEmpty() {
  $('no-offers').hidden = state.offers.size > 0;
  // While an offer rings, its bar is fixed at the top of the window, wherever the page is scrolled.
  $('offers').classList.toggle('ringing', state.offers.size > 0);
  $('offers-heading').textContent = state.offers.size ? t('console.incomingCount', { ringing: TEXT.ringing(state.offers.size) }) : t('console.incoming');
  $('no-conversations').hidden = state.convs.size > 0;
  $('convs-count').textContent = state.convs.size ? ` (${state.convs.size})` : '';
}

function select(id, focusText) {
  const c = state.convs.get(id);
  if (!c) return;
  state.active = id;
  for (const other of state.convs.values()) {
    const on = other.id === id;
    other.tab.setAttribute('aria-current', String(on));
    other.pane.hidden = !on;
  }
  c.unread = 0;
  renderInfo(c);
  updateTitle();
  c.log.scrollTop = c.log.scrollHeight;
  if (focusText && !c.ended) c.text.focus();
}

/** Up and Down (and Home, End) move between the conversations of the list. */
function onListKey(e) {
  const ids = [...state.convs.keys()];
  const at = ids.indexOf(e.currentTarget.dataset.contactId);
  let next = null;
  if (e.key === 'ArrowDown') next = ids[(at + 1) % ids.length];
  else if (e.key === 'ArrowUp') next = ids[(at - 1 + ids.length) % ids.length];
  else if (e.key === 'Home') next = ids[0];
  else if (e.key === 'End') next = ids[ids.length - 1];
  if (next) {
    e.preventDefault();
    select(next, false);
    state.convs.get(next).tab.focus();
  }
}

function cycle(step) {
  const ids = [...state.convs.keys()];
  if (!ids.length) return;
  const at = ids.indexOf(state.active);
  const next = ids[(at + step + ids.length) % ids.length];
  select(next, true);
}

function closeConversation(c) {
  const ids = [...state.convs.keys()];
  const at = ids.indexOf(c.id);
  unmountCasework(c);
  clearInterval(c.wrapTimer);
  c.item.remove();
  c.pane.remove();
  state.convs.delete(c.id);
  if (state.active === c.id) {
    state.active = null;
    const rest = [...state.convs.keys()];
    if (rest.length) select(rest[Math.min(at, rest.length - 1)], true);
  }
  refreshEmpty();
  updateTitle();
  if (!state.convs.size) $('offers-heading').focus?.();
}

// ----- wrap-up ----------------------------------------------------------------------

/** `wrap_up`: the ended conversation's slot takes no offer until Ready, the form, or the limit. */
function onWrapUp(f) {
  const c = state.convs.get(f.contact_id);
  if (!c) return;
  c.wrapUp = { deadline: Date.now() + Math.max(0, Number(f.ends_in_ms) || 0) };
  c.wrapNote.hidden = false;
  c.endedNote.hidden = false;
  clearInterval(c.wrapTimer);
  c.wrapTimer = setInterval(() => renderWrapUp(c), 1000);
  renderWrapUp(c);
  renderInfo(c);
}

function renderWrapUp(c) {
  if (!c.wrapUp) return;
  const left = Math.max(0, c.wrapUp.deadline - Date.now());
  setText(c.wrapText, 'console.wrapUp', { left: duration(left) });
}

/** `wrap_up_ended`: the slot takes offers again (Ready, the submitted form, or the limit). */
function onWrapUpEnded(f) {
  const c = state.convs.get(f.contact_id);
  if (!c) return;
  c.wrapUp = null;
  clearInterval(c.wrapTimer);
  c.readyButton.hidden = true;
  setText(c.wrapText, f.reason === 'limit' ? 'console.wrapUpEndedLimit' : 'console.wrapUpEndedReady');
  c.wrapNote.dataset.state = 'ended';
  renderInfo(c);
}

function onAssigned(f) {
  const wasOffered = state.offers.has(f.contact_id);
  const offered = state.offers.get(f.contact_id)?.offer;
  removeOffer(f.contact_id);
  const isNew = !state.convs.has(f.contact_id);
  const c = conversation(f.contact_id, {
    helpline: f.helpline,
    language: f.language,
    queued_at: f.queued_at,
    answered_at: f.answered_at,
  });
  callControls(c, f.channel, send);
  c.callerOnline = f.caller_online;
  c.syncing = false;
  // Rebuild the log from the server's history; own messages not yet stored stay at the end, pending.
  c.log.replaceChildren();
  c.shown.clear();
  for (const m of f.history) renderMessage(c, m);
  for (const id of c.pending) {
    const m = c.own.get(id);
    if (m) place(c, m.el, null);
  }
  flushPending(c);
  renderInfo(c);
  showHandover(c, f.handover);
  keepEarlier(c, offered);
  if (wasOffered || (isNew && !state.active)) {
    select(c.id, wasOffered);
    if (wasOffered) announce(t('console.started', { helpline: helplineName(f.helpline), language: languageName(f.language) }));
  } else if (isNew && state.active !== c.id) {
    c.unread = f.history.filter((m) => m.from === 'caller').length;
    renderInfo(c);
  }
  updateTitle();
}

/** A returning caller's earlier contacts, shown on her offer, stay above the conversation once accepted. */
function keepEarlier(c, offer) {
  if (!offer?.earlier?.length || c.earlierNote) return;
  const box = el('div', { class: 'earlier-note' }, el('div', { class: 'buttons' }));
  showEarlier(box, offer);
  box.querySelector('.buttons').remove();
  c.earlierNote = box;
  c.log.before(box);
}

function messageElement(mine, from, text, at) {
  const who = from === 'caller' ? 'who.caller' : from === 'counsellor' ? (mine ? 'who.you' : 'who.counsellor') : from === 'supervisor' ? 'who.supervisor' : 'who.system';
  const meta = el('span', { class: 'meta', dataset: { at: at || new Date().toISOString() } });
  meta.textContent = timeOf(at);
  return el(
    'div',
    { class: mine ? 'msg mine' : 'msg theirs' },
    el('span', { class: 'who', dataset: { i18n: who }, text: t(who) }),
    el('p', { class: 'text', text, translate: false }),
    meta,
  );
}

function setState(c, m, s) {
  m.state = s;
  const meta = m.el.querySelector('.meta');
  const label = t(`console.msg.${s}`);
  meta.textContent = `${timeOf(meta.dataset.at)} · ${label}`;
  meta.dataset.state = s;
  m.el.classList.toggle('failed', s === 'failed');
}

/**
 * Puts a node in a conversation's log in seq order; own messages not yet stored (no seq) stay at the
 * bottom, so what arrives meanwhile is shown where the server stored it.
 */
function place(c, node, seq) {
  placeInLog(c.log, node, seq);
}

/** A line of the console's own in the log (catalogue key `key`; written again in a new language). */
function addNote(c, key) {
  place(c, setText(el('p', { class: 'note' }), key), highestSeq(c.shown) + 0.5);
}

/** Shows one stored message (from history or live) unless its seq is already shown. */
function renderMessage(c, m) {
  if (c.shown.has(m.seq)) return false;
  c.shown.add(m.seq);
  if (m.from === 'counsellor' && (m.client_id || '').startsWith(SUPERVISOR_PREFIX)) {
    place(c, messageElement(false, 'supervisor', m.text, m.at), m.seq);
    return true;
  }
  if (m.from === 'counsellor') {
    const own = c.own.get(m.client_id);
    if (own) {
      own.seq = m.seq;
      c.pending = c.pending.filter((x) => x !== m.client_id);
      // It is in the log again (the log was rebuilt, or it arrived before the ack).
      place(c, own.el, m.seq);
      setState(c, own, c.callerOnline ? 'delivered' : 'sent');
      return true;
    }
    // Written from another session of this account (or before a reload).
    const node = messageElement(true, 'counsellor', m.text, m.at);
    const entry = { el: node, text: m.text, seq: m.seq, state: 'sent' };
    c.own.set(m.client_id, entry);
    place(c, node, m.seq);
    setState(c, entry, 'sent');
    return true;
  }
  const node = messageElement(false, m.from, m.text, m.at);
  if (m.notice?.kind === 'joined') {
    // A supervisor joined: the console's own words (in its language), not the server's English.
    const line = node.querySelector('.text');
    setText(line, 'console.joined', { name: m.notice.name });
    line.translate = true;
  }
  place(c, node, m.seq);
  return true;
}

/** A supervisor's whisper: for this counsellor only (the caller never gets it). */
function onWhisper(f) {
  const c = state.convs.get(f.contact_id);
  if (!c) return;
  const node = el(
    'div',
    { class: 'note whisper' },
    el('strong', {}, setText(el('span'), 'console.whisperFrom'), ' ', el('span', { text: f.from, translate: false }), ' ', setText(el('span'), 'console.whisperOnlyYou'), ' '),
    el('span', { class: 'text', text: f.text, translate: false }),
  );
  place(c, node, highestSeq(c.shown) + 0.5);
  if (state.active !== c.id || document.hidden) {
    c.unread += 1;
    renderInfo(c);
    updateTitle();
  }
  announce(t('console.whisperAnnounce', { name: f.from, text: f.text }));
}

function onMessage(f) {
  const c = state.convs.get(f.contact_id);
  if (!c || c.syncing) return;
  const fresh = renderMessage(c, f);
  if (fresh && f.from === 'caller') {
    showTyping(c, false);
    if (state.active !== c.id || document.hidden) {
      c.unread += 1;
      updateTitle();
    }
  }
  if (fresh) renderInfo(c);
}

function onAck(f) {
  const c = state.convs.get(f.contact_id);
  if (!c) return;
  const m = c.own.get(f.client_id);
  if (!m || m.seq != null) return;
  m.seq = f.seq;
  clearTimeout(m.resendTimer);
  m.resendTimer = null;
  c.shown.add(f.seq);
  c.pending = c.pending.filter((x) => x !== f.client_id);
  place(c, m.el, f.seq);
  // Stored; the relay pushed it to the caller's socket at once if one is connected. A messaging
  // contact's reply is only stored: the provider's `delivery` frames say what became of it.
  setState(c, m, c.callerOnline && !isMessaging(c) ? 'delivered' : 'sent');
}

function sendReply(c) {
  const text = c.text.value;
  if (!text.trim() || c.ended) return;
  if ([...text].length > 4000) {
    setBanner(t('console.tooLong'));
    return;
  }
  c.text.value = '';
  stopTyping(c);
  const clientId = newClientId('c');
  const node = messageElement(true, 'counsellor', text);
  const m = { el: node, text, seq: null, state: 'sending' };
  c.own.set(clientId, m);
  c.pending.push(clientId);
  place(c, node, null);
  setState(c, m, 'sending');
  c.cannedNote.textContent = '';
  renderInfo(c);
  send({ type: 'message', contact_id: c.id, client_id: clientId, text });
}

/**
 * The server read the message but could not take it in time (`overloaded`): shown as waiting and
 * sent again with the same client_id after retry_after_ms (and up to half again at random); a copy
 * stored after all is acknowledged, never stored twice.
 */
function resendLater(c, id, m, retryAfterMs) {
  if (m.resendTimer) return;
  setState(c, m, 'waiting');
  const base = Math.max(100, Number(retryAfterMs) || 1000);
  m.resendTimer = setTimeout(() => {
    m.resendTimer = null;
    if (m.seq != null || m.state === 'failed' || c.ended) return;
    setState(c, m, 'sending');
    send({ type: 'message', contact_id: c.id, client_id: id, text: m.text });
  }, base + Math.random() * base * 0.5);
}

function flushPending(c) {
  for (const id of c.pending) {
    const m = c.own.get(id);
    if (m && m.state !== 'failed') send({ type: 'message', contact_id: c.id, client_id: id, text: m.text });
  }
}

function onTyping(c) {
  if (c.ended) return;
  const now = Date.now();
  if (now - c.typingSentAt > TYPING_REPEAT_MS) {
    c.typingSentAt = now;
    send({ type: 'typing', contact_id: c.id, active: true });
  }
  clearTimeout(c.typingStop);
  c.typingStop = setTimeout(() => stopTyping(c), TYPING_IDLE_MS);
}

function stopTyping(c) {
  clearTimeout(c.typingStop);
  if (c.typingSentAt) {
    c.typingSentAt = 0;
    send({ type: 'typing', contact_id: c.id, active: false });
  }
}

function showTyping(c, active) {
  if (!c) return;
  clearTimeout(c.typingHide);
  c.typing.textContent = active ? t('console.typing') : '';
  if (active) c.typingHide = setTimeout(() => showTyping(c, false), 10000);
}

/** A contact whose caller writes through a provider (SMS, …) rather than a socket of ours. */
function isMessaging(c) {
  return !!c.channel && !['chat', 'call', 'message', 'callback'].includes(c.channel);
}

/** What became of a reply to a messaging contact at the provider (docs/protocol.md, `delivery`). */
function onDelivery(f) {
  const c = state.convs.get(f.contact_id);
  if (!c) return;
  const m = [...c.own.values()].find((x) => x.seq === f.seq);
  if (!m || !['sent', 'delivered', 'read', 'retrying', 'failed'].includes(f.state)) return;
  setState(c, m, f.state);
}

/** A messaging contact's conversation: a sender who wrote or called before is shown as such. */
function onChannelInfo(f) {
  const c = state.convs.get(f.contact_id);
  if (!c) return;
  c.repeat = f.repeat || null;
  renderInfo(c);
}

function onPresence(id, online) {
  const c = state.convs.get(id);
  if (!c) return;
  c.callerOnline = online;
  if (online) {
    // The caller's widget resumed and was sent everything it missed.
    for (const m of c.own.values()) if (m.state === 'sent') setState(c, m, 'delivered');
  }
  addNote(c, online ? 'console.callerBack' : 'console.callerDropped');
  renderInfo(c);
}

function markEnded(c, reason) {
  c.ended = true;
  const key = {
    caller_ended: 'ended.caller_ended',
    counsellor_ended: 'console.ended.counsellor_ended',
    caller_lost: 'ended.caller_lost',
    transferred: 'console.ended.transferred',
    quick_exit: 'console.quickExit',
  }[reason] || 'ended.other';
  c.endedNote.dataset.reason = reason || '';
  const why = setText(c.endedText, key).textContent;
  c.endedNote.hidden = false;
  c.form.hidden = true;
  c.endButton.hidden = true;
  if ($('end-dialog').open && state.active === c.id) $('end-cancel').click();
  showTyping(c, false);
  renderInfo(c);
  caseworkEnded(c);
  return why;
}

function onEnded(id, reason) {
  const c = state.convs.get(id);
  if (!c) {
    removeOffer(id);
    return;
  }
  const why = markEnded(c, reason);
  if (state.active !== c.id) announce(`${helplineName(c.info.helpline)}: ${why}`);
}

function onError(f) {
  if (f.ref && onFlagError(state.convs.get(f.ref), f)) return;
  if (f.ref && onTransferError(state.convs.get(f.ref), f)) return;
  if (caseworkError(f)) return;
  if (f.code === 'no_such_offer' && f.ref) {
    removeOffer(f.ref);
    announce(t('console.noLongerRinging'));
    return;
  }
  if (f.ref) {
    for (const c of state.convs.values()) {
      const m = c.own.get(f.ref);
      if (m && m.seq == null) {
        if (f.code === 'overloaded' || (f.code === 'rate_limited' && f.retry_after_ms)) resendLater(c, f.ref, m, f.retry_after_ms);
        else if (f.code === 'unavailable' || f.code === 'rate_limited') setTimeout(() => flushPending(c), 2000);
        else {
          c.pending = c.pending.filter((x) => x !== f.ref);
          setState(c, m, 'failed');
        }
        return;
      }
    }
    const o = state.offers.get(f.ref);
    if (o) removeOffer(f.ref);
  }
  setBanner(t('error.refused', { message: f.message }));
}

// ----- casework: an ended contact's wrap-up ---------------------------------------

/** Opens the pane of an ended contact whose form is not submitted (from the wrap-ups list). */
function openWrapup(w) {
  let c = state.convs.get(w.contact_id);
  if (!c) {
    c = conversation(w.contact_id, { helpline: w.helpline, language: w.language });
    markEnded(c, null);
  }
  select(c.id, false);
  c.cf?.heading.focus();
}

// ----- keyboard ---------------------------------------------------------------

function onKey(e) {
  if (!e.altKey || e.ctrlKey || e.metaKey || $('console').hidden) return;
  if (e.code === 'KeyA') {
    const id = oldestOffer();
    if (id) acceptOffer(id);
    e.preventDefault();
  } else if (e.code === 'KeyD') {
    const id = oldestOffer();
    if (id) declineOffer(id);
    e.preventDefault();
  } else if (e.code === 'KeyN') {
    cycle(e.shiftKey ? -1 : 1);
    e.preventDefault();
  }
}

// ----- start up ---------------------------------------------------------------

/** After a change of language: what the script drew is drawn again in the new words. */
function redraw() {
  // What was said in the other language is not said again.
  $('alert').textContent = '';
  if ($('banner').classList.contains('good')) setBanner('');
  if (state.token) setConn($('conn').dataset.state, t('console.connected'));
  else $('conn').textContent = t('conn.connecting');
  setAwayReasons(state.awayReasons);
  setStatus(state.status, state.awayReason);
  for (const o of state.offers.values()) renderOffer(o);
  for (const c of state.convs.values()) {
    renderInfo(c);
    for (const m of c.own.values()) if (m.state) setState(c, m, m.state);
    renderWrapUp(c);
  }
  renderNotifyState();
  redrawEnd();
  refreshEmpty();
  updateTitle();
  caseworkRedraw();
  redrawTransfer();
}

function init() {
  mountLogin();
  initLocale(() => state.token);
  onLocaleChange(redraw);
  initCasework({
    token: () => state.token,
    send,
    announce,
    helplineName,
    openWrapup,
    conversations: () => state.convs,
  });
  initTransfer({ send, token: () => state.token, me: () => state.me });
  $('login-form').addEventListener('submit', onLogin);
  $('signout').addEventListener('click', () => signOut(''));
  for (const r of document.querySelectorAll('input[name="status"]')) {
    r.addEventListener('change', () => {
      unlockAudio();
      if (!sendStatus(r.value)) {
        setStatus(state.status, state.awayReason);
        setBanner(t('console.statusNotSent'));
      }
    });
  }
  $('away-reason').addEventListener('change', () => {
    // A reason chosen while away is sent at once; chosen before, it goes with the Away choice.
    if (state.status === 'away') sendStatus('away');
  });
  $('notify-on').addEventListener('click', askNotify);
  renderNotifyState();
  initEndDialog();
  document.addEventListener('keydown', onKey);
  document.addEventListener('pointerdown', unlockAudio, { once: true });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) {
      const c = state.convs.get(state.active);
      if (c && c.unread) {
        c.unread = 0;
        renderInfo(c);
        updateTitle();
      }
      socket.reconnectNow();
    }
  });
  window.addEventListener('online', () => socket.reconnectNow());
  setInterval(tickOffers, 1000);
  setInterval(() => socket.heartbeat(), PING_EVERY_MS);
  translatePage();
  const saved = savedToken(TOKEN_KEY);
  if (saved) signedIn(saved);
  else $('username').focus();
}

init();
