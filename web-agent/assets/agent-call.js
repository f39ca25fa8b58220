// Phone calls in the counsellor console: a repeat caller's earlier contacts on the offer card, and
// Hold / Resume / Hang up on a call conversation (sent as `call_hold`, `call_resume`, `call_hangup`;
// the server answers `call_control` once the command to the telephone exchange is stored).
// agent.js calls these hooks; every text goes in with textContent, never as HTML.
import { el } from './common.js';
import { t, formatDateTime } from './staff-i18n.js';

/** "Fri 20 Nov, 18:02" for an RFC 3339 time (in the page's language). */
function when(at) {
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return '';
  return formatDateTime(d);
}

/** Adds a repeat caller's earlier contacts (from the offer's `earlier`: a call's number, or a chat
 * caller's return code) to the offer card. */
export function showEarlier(card, offer) {
  if (!Array.isArray(offer.earlier) || !offer.earlier.length) return;
  const headingId = `earlier-h-${offer.contact_id}`;
  const list = el('ol', { class: 'earlier-list' });
  for (const e of offer.earlier) {
    const facts = [
      (e.categories || []).join(', ') || t('console.call.noCategory'),
      e.risk ? t('console.call.risk', { risk: t(`risk.${e.risk}`) }) : '',
      e.outcome ? t('console.call.outcome', { outcome: e.outcome.replaceAll('_', ' ') }) : '',
    ].filter(Boolean).join(' · ');
    list.append(
      el('li', {},
        el('span', { class: 'earlier-when', text: when(e.at) }),
        el('span', { class: 'earlier-facts', text: ` — ${facts}` }),
        e.summary ? el('p', { class: 'earlier-summary', text: e.summary, translate: false }) : '',
      ),
    );
  }
  const section = el('section', { class: 'earlier', 'aria-labelledby': headingId },
    el('h4', { id: headingId, text: t('console.call.earlier'), dataset: { i18n: 'console.call.earlier' } }),
    list,
  );
  const buttons = card.querySelector('.buttons');
  card.insertBefore(section, buttons);
}

/** Gives a call conversation its Hold / Resume / Hang up buttons (once). */
export function callControls(c, channel, send) {
  if (channel) c.channel = channel;
  if (c.channel !== 'call' || c.call) return;
  const hold = el('button', { type: 'button', class: 'secondary call-hold', text: t('console.call.hold'), dataset: { i18n: 'console.call.hold' } });
  const resume = el('button', { type: 'button', class: 'secondary call-resume', text: t('console.call.resume'), dataset: { i18n: 'console.call.resume' }, hidden: true });
  const hangup = el('button', { type: 'button', class: 'danger call-hangup', text: t('console.call.hangup'), dataset: { i18n: 'console.call.hangup' } });
  const status = el('p', { class: 'call-status', role: 'status' });
  c.call = { held: false, hangingUp: false, hold, resume, hangup, status };
  const act = (type) => {
    if (!c.ended && !c.call.hangingUp) send({ type, contact_id: c.id });
  };
  hold.addEventListener('click', () => act('call_hold'));
  resume.addEventListener('click', () => act('call_resume'));
  hangup.addEventListener('click', () => act('call_hangup'));
  const bar = el('div', { class: 'call-controls', role: 'group', 'aria-label': t('console.call.group'), dataset: { i18nAttr: 'aria-label:console.call.group' } }, hold, resume, hangup, status);
  c.pane.querySelector('.pane-head').append(bar);
  renderCallControls(c);
}

/** Shows the call's state (on hold, hanging up, ended) on its buttons. */
export function renderCallControls(c) {
  const k = c.call;
  if (!k) return;
  const over = c.ended || k.hangingUp;
  k.hold.hidden = k.held;
  k.resume.hidden = !k.held;
  for (const b of [k.hold, k.resume, k.hangup]) b.disabled = over;
  k.status.textContent = c.ended ? t('console.call.ended') : k.hangingUp ? t('console.call.hangingUp') : k.held ? t('console.call.onHold') : '';
}

/** `call_control`: the exchange was told to hold, resume or hang up. */
export function onCallControl(f, convs) {
  const c = convs.get(f.contact_id);
  if (!c || !c.call) return;
  if (f.action === 'hold') c.call.held = true;
  if (f.action === 'resume') c.call.held = false;
  if (f.action === 'hangup') c.call.hangingUp = true;
  renderCallControls(c);
}
