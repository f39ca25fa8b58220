// Phone calls in the counsellor console: a repeat caller's earlier contacts on the offer card, and
// Hold / Resume / Hang up on a call conversation (sent as `call_hold`, `call_resume`, `call_hangup`;
// the server answers `call_control` once the command to the telephone exchange is stored).
// agent.js calls these hooks; every text goes in with textContent, never as HTML.
import { el } from './common.js';

/** "20 Nov, 18:02" for an RFC 3339 time. */
function when(at) {
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleString('en-GB', { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
}

/** Adds a repeat caller's earlier contacts (from the offer's `earlier`) to the offer card. */
export function showEarlier(card, offer) {
  if (offer.channel !== 'call' || !Array.isArray(offer.earlier) || !offer.earlier.length) return;
  const headingId = `earlier-h-${offer.contact_id}`;
  const list = el('ol', { class: 'earlier-list' });
  for (const e of offer.earlier) {
    const facts = [
      (e.categories || []).join(', ') || 'no category',
      e.risk ? `risk ${e.risk}` : '',
      e.outcome ? `outcome ${e.outcome.replaceAll('_', ' ')}` : '',
    ].filter(Boolean).join(' · ');
    list.append(
      el('li', {},
        el('span', { class: 'earlier-when', text: when(e.at) }),
        el('span', { class: 'earlier-facts', text: ` — ${facts}` }),
        e.summary ? el('p', { class: 'earlier-summary', text: e.summary }) : '',
      ),
    );
  }
  const section = el('section', { class: 'earlier', 'aria-labelledby': headingId },
    el('h4', { id: headingId, text: 'Earlier contacts on this helpline' }),
    list,
  );
  const buttons = card.querySelector('.buttons');
  card.insertBefore(section, buttons);
}

/** Gives a call conversation its Hold / Resume / Hang up buttons (once). */
export function callControls(c, channel, send) {
  if (channel) c.channel = channel;
  if (c.channel !== 'call' || c.call) return;
  const hold = el('button', { type: 'button', class: 'secondary call-hold', text: 'Hold' });
  const resume = el('button', { type: 'button', class: 'secondary call-resume', text: 'Resume', hidden: true });
  const hangup = el('button', { type: 'button', class: 'danger call-hangup', text: 'Hang up' });
  const status = el('p', { class: 'call-status', role: 'status' });
  c.call = { held: false, hangingUp: false, hold, resume, hangup, status };
  const act = (type) => {
    if (!c.ended && !c.call.hangingUp) send({ type, contact_id: c.id });
  };
  hold.addEventListener('click', () => act('call_hold'));
  resume.addEventListener('click', () => act('call_resume'));
  hangup.addEventListener('click', () => act('call_hangup'));
  const bar = el('div', { class: 'call-controls', role: 'group', 'aria-label': 'Phone call' }, hold, resume, hangup, status);
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
  k.status.textContent = c.ended ? 'Call ended.' : k.hangingUp ? 'Hanging up…' : k.held ? 'The caller is on hold.' : '';
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
