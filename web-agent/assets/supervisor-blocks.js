// Blocked callers on the supervisors' dashboard: the blocks in force in the supervisor's helplines
// (GET /api/v1/blocks: who flagged the contact and why, who blocked it and why, since and until when, how
// many contacts it refused), on sign-in and every minute; and Lift block (DELETE /api/v1/blocks/{id}),
// after which the caller reaches the helpline again. See docs/security.md (abuse) and docs/web-agent.md.
//
// Text is put into the page with textContent only.

import { $, el } from './common.js';
import { apiCall, dateTime } from './staff.js';
import { t } from './staff-i18n.js';

const EVERY_MS = 60000;

let ctx = null;
let timer = null;
/** The last list, drawn again after a change of language. */
let last = [];

/** `context`: `token()`, `helplineName(name, fallback)`, `notice(text, error)`. */
export function initBlocks(context) {
  ctx = context;
}

/** Signed in: the blocks now, and again every minute. */
export function blocksOnline() {
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, EVERY_MS);
}

export function blocksSignedOut() {
  clearInterval(timer);
  timer = null;
  last = [];
  draw();
}

/** After a change of language. */
export function blocksRedraw() {
  draw();
}

async function refresh() {
  const res = await apiCall(ctx.token(), '/api/v1/blocks');
  if (res.status !== 200 || !Array.isArray(res.body?.blocks)) return;
  last = res.body.blocks.filter((b) => b.active);
  draw();
}

function draw() {
  const focused = document.activeElement?.closest?.('.block')?.dataset.blockId;
  $('block-list').replaceChildren(...last.map(blockItem));
  $('no-blocks').hidden = last.length > 0;
  if (focused) $('block-list').querySelector(`.block[data-block-id="${CSS.escape(focused)}"] button`)?.focus();
}

function blockItem(b) {
  const helpline = ctx.helplineName(b.helpline, b.helpline_name);
  const contact = b.contact_id.slice(-6);
  const who = b.identifier === 'caller number' ? t('block.who.number') : t('block.who.address');
  const lift = el('button', {
    type: 'button',
    class: 'secondary lift control',
    text: t('block.lift'),
    'aria-label': t('block.liftLabel', { id: contact, helpline }),
  });
  lift.addEventListener('click', () => liftBlock(b, lift));
  const lines = [
    el('p', {}, el('strong', { text: who }), ` · ${helpline} · ${t('block.contact', { id: contact })} · `, el('span', { class: 'mode', text: t(`block.mode.${b.mode === 'senior' ? 'senior' : 'block'}`) })),
  ];
  if (b.flag) {
    lines.push(
      el('p', {
        class: 'flagged',
        text: t('block.flagged', { name: b.flag.flagged_by_name || t('block.unknownPerson'), when: dateTime(b.flag.at), reason: b.flag.reason }),
      }),
    );
  }
  lines.push(
    el('p', { class: 'blocked', text: t('block.blocked', { name: b.reviewer_name || t('block.unknownPerson'), reason: b.reason }) }),
    el('p', { class: 'muted' }, el('span', { class: 'period', text: t('block.period', { from: dateTime(b.created_at), until: dateTime(b.expires_at) }) }), b.attempts ? ` · ${t('block.attempts', { n: b.attempts })}` : ''),
    lift,
  );
  return el('li', { class: 'block', dataset: { blockId: b.block_id, contactId: b.contact_id, mode: b.mode } }, ...lines);
}

async function liftBlock(b, button) {
  // Asked before the button is disabled (a disabled button loses the focus).
  const hadFocus = document.activeElement === button;
  button.disabled = true;
  ctx.notice(t('block.lifting'));
  const res = await apiCall(ctx.token(), `/api/v1/blocks/${encodeURIComponent(b.block_id)}`, { method: 'DELETE' });
  // Already lifted by someone else (409) is lifted too: the list is fetched again either way.
  if (res.status !== 200 && res.status !== 409) {
    button.disabled = false;
    ctx.notice(t('block.notLifted', { why: res.body?.message || (res.status ? `HTTP ${res.status}` : t('esc.unreachable')) }), true);
    return;
  }
  last = last.filter((x) => x.block_id !== b.block_id);
  draw();
  ctx.notice(t('block.lifted'));
  if (hadFocus) $('blocks-heading').focus();
  refresh();
}
