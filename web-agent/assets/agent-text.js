// The console's words for the shift features (offer bar, conversation list, wrap-up, away reasons, End
// chat, canned responses, Flag): each a key of the staff catalogue (staff-i18n.js, `console.*`), read in
// the page's language every time it is used (so a change of language shows at the next drawing).
// Functions take the variable parts; everything goes into the page with textContent.

import { t, has } from './staff-i18n.js';
import { HELPLINE_NAMES } from './chat-i18n.js';
import { locale } from './staff-i18n.js';

export const TEXT = {
  callerAlias: (code) => t('console.alias', { code }),
  channel: {
    get chat() { return t('console.channel.chat'); },
    get call() { return t('console.channel.call'); },
    get message() { return t('console.channel.message'); },
    get callback() { return t('console.channel.callback'); },
    get sms() { return t('console.channel.sms'); },
  },
  waited: (d) => t('console.waited', { d }),
  get you() { return t('console.you'); },
  get noMessages() { return t('console.noMessages'); },
  unread: (n) => t('console.unread', { n }),
  get ended() { return t('console.endedMark'); },
  get wrapUpMark() { return t('console.wrapUpMark'); },
  get callerOffline() { return t('console.callerOffline'); },
  get callerOnlineOffer() { return t('console.callerOnlineOffer'); },
  get callerOfflineOffer() { return t('console.callerOfflineOffer'); },
  ringing: (n) => t('console.ringing', { n }),
  notifyTitle: (kind) => t(kind === 'call' ? 'console.incomingCall' : 'console.incomingChat'),
  get notifyOn() { return t('console.notifyOn'); },
  get notifyOff() { return t('console.notifyOff'); },
  get notifyDenied() { return t('console.notifyDenied'); },
  get notifyUnsupported() { return t('console.notifyUnsupported'); },
  get awayNoReason() { return t('console.awayNoReason'); },
  awayAs: (reason) => t('console.awayAs', { reason }),
  get missedOffers() { return t('console.missedOffers'); },
  // Wrap-up.
  wrapUp: (left) => t('console.wrapUp', { left }),
  get wrapUpEndedReady() { return t('console.wrapUpEndedReady'); },
  get wrapUpEndedLimit() { return t('console.wrapUpEndedLimit'); },
  get ready() { return t('console.ready'); },
  // End chat.
  endAsk: (alias) => t('console.endAsk', { alias }),
  endAskCall: (alias) => t('console.endAskCall', { alias }),
  get quickExit() { return t('console.quickExit'); },
  // Canned responses.
  get cannedHeading() { return t('console.cannedHeading'); },
  get cannedSearch() { return t('console.cannedSearch'); },
  get cannedNone() { return t('console.cannedNone'); },
  get cannedNoneAtAll() { return t('console.cannedNoneAtAll'); },
  get cannedHint() { return t('console.cannedHint'); },
  get cannedButton() { return t('console.cannedButton'); },
  cannedInserted: (title) => t('console.cannedInserted', { title }),
  // Flag.
  get flagButton() { return t('console.flagButton'); },
  get flagReason() { return t('console.flagReason'); },
  get flagSend() { return t('console.flagSend'); },
  get flagCancel() { return t('console.flagCancel'); },
  get flagDone() { return t('console.flagDone'); },
  flagFailed: (why) => t('console.flagFailed', { why }),
  get flagEmpty() { return t('console.flagEmpty'); },
};

/** The alias of a contact: "Caller" and the last four hex digits of its id (the random end of a UUIDv7). */
export function aliasOf(contactId) {
  const hex = String(contactId || '').replaceAll('-', '');
  return TEXT.callerAlias((hex.slice(-4) || '????').toUpperCase());
}

/** An away reason's label: the catalogue's words for the usual ones; a helpline's own by its code, underscores as spaces. */
export function awayLabel(reason) {
  return has(`console.away.${reason}`) ? t(`console.away.${reason}`) : String(reason || '').replaceAll('_', ' ');
}

/** A helpline's name in the page's language for the helplines the widget knows, else the server's name. */
export function helplineWords(name, fallback) {
  const own = locale() === 'en' ? null : HELPLINE_NAMES[name]?.[locale()];
  return own || fallback || name || '';
}

/**
 * Sets a node's text to catalogue key `key` with `params`, and keeps both on the node so that
 * translatePage() writes it again in a new language (only for nodes whose text is always set this way).
 */
export function setText(node, key, params) {
  node.dataset.i18n = key;
  if (params && Object.keys(params).length) node.dataset.i18nParams = JSON.stringify(params);
  else delete node.dataset.i18nParams;
  node.textContent = t(key, params || {});
  return node;
}

/** A duration in words: "12 s", "3 min 05 s" (in the page's language). */
export function durationWords(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const m = Math.floor(s / 60);
  return m ? t('console.dur.ms', { m, s: s % 60 }) : t('dur.s', { n: s });
}
