// The console's words for the shift features (offer bar, conversation list, wrap-up, away reasons, End
// chat, canned responses, Flag), in one place so they can move into the staff translation catalogue.
// Functions take the variable parts; everything goes into the page with textContent.

export const TEXT = {
  callerAlias: (code) => `Caller ${code}`,
  channel: { chat: 'Chat', call: 'Phone call', message: 'Message left', callback: 'Callback request' },
  waited: (d) => `waited ${d}`,
  you: 'You: ',
  noMessages: 'No messages yet',
  unread: (n) => `${n} unread`,
  ended: 'ended',
  wrapUpMark: 'wrap-up',
  callerOffline: 'caller offline',
  callerOnlineOffer: 'Caller connected',
  callerOfflineOffer: 'Caller’s connection dropped: she may not answer at once',
  ringing: (n) => `${n} ringing`,
  notifyTitle: (kind) => `Incoming ${kind}`,
  notifyOn: 'Desktop notifications are on: an incoming chat shows even when this tab is in the background.',
  notifyOff: 'Desktop notifications are off.',
  notifyDenied: 'Desktop notifications are blocked in this browser’s site settings.',
  notifyUnsupported: 'This browser cannot show desktop notifications.',
  // Away reasons: the helplines' own get their code with the underscores as spaces.
  awayReasons: { break: 'Break', training: 'Training', supervision: 'Supervision', admin: 'Admin', lunch: 'Lunch', debrief: 'Debrief' },
  awayNoReason: 'No reason given',
  awayAs: (reason) => `Away: ${reason}`,
  missedOffers: 'missed chats',
  // Wrap-up.
  wrapUp: (left) => `Wrap-up: new chats wait for this slot for ${left} more, or until you press Ready.`,
  wrapUpEndedReady: 'Wrap-up finished: you take new chats on this slot again.',
  wrapUpEndedLimit: 'The wrap-up time ran out: you take new chats on this slot again.',
  ready: 'Ready for the next chat',
  // End chat.
  endAsk: (alias) => `${alias} will see that the chat has ended. This cannot be undone.`,
  endAskCall: (alias) => `The call with ${alias} ends for both of you. This cannot be undone.`,
  quickExit: 'The caller left with quick exit (the panic button): someone may have come in. Do not try to reach her; let her come back.',
  // Canned responses.
  cannedHeading: 'Canned responses',
  cannedSearch: 'Search canned responses',
  cannedNone: 'No canned response matches.',
  cannedNoneAtAll: 'No canned responses for this helpline and language yet (supervisors add them).',
  cannedHint: 'Arrow keys choose, Enter inserts, Escape closes.',
  cannedButton: 'Canned responses',
  cannedInserted: (title) => `Inserted “${title}”. Edit it or press Enter to send.`,
  // Flag.
  flagButton: 'Flag as abusive…',
  flagReason: 'Why flag this contact? (the supervisors read it)',
  flagSend: 'Send flag',
  flagCancel: 'Cancel',
  flagDone: 'Flagged: the helpline’s supervisors are alerted and may block the caller.',
  flagFailed: (why) => `Not flagged: ${why}`,
  flagEmpty: 'Write a reason first.',
};

/** The alias of a contact: "Caller" and the last four hex digits of its id (the random end of a UUIDv7). */
export function aliasOf(contactId) {
  const hex = String(contactId || '').replaceAll('-', '');
  return TEXT.callerAlias((hex.slice(-4) || '????').toUpperCase());
}

/** A away reason's label. */
export function awayLabel(reason) {
  return TEXT.awayReasons[reason] || String(reason || '').replaceAll('_', ' ');
}
