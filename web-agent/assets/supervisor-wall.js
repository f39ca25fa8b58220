// Wall mode's lists that do not fit (issue 23): a wall cannot scroll, so a list longer than its card
// shows the entries that fit and then "+N more" (in the page's language), never an entry cut in half or
// a scroll bar no one can use. Fitted again whenever the board changes, the window is resized or the
// language changes; outside wall mode every entry is shown.

import { el } from './common.js';
import { t, onLocaleChange } from './staff-i18n.js';

/** The lists a wall may cut: [selector of the list, selector of its entries inside it]. */
const LISTS = [
  ['.helpline .waiting tbody', ':scope > tr'],
  ['#counsellor-groups', '.person'],
  ['#alert-list', ':scope > li'],
  ['#escalation-list', ':scope > li'],
  ['#cases-overdue', ':scope > li'],
  ['#cases-soon', ':scope > li'],
];

const CUT = 'wall-cut';
const MORE = 'wall-more';

/** The bottom (px) below which an entry of `list` is not wholly seen: its card's inner bottom, or the list's own when it clips. */
function visibleBottom(list) {
  const card = list.closest('.helpline, .panel');
  let bottom = window.innerHeight;
  if (card) {
    const r = card.getBoundingClientRect();
    bottom = Math.min(bottom, r.bottom - parseFloat(getComputedStyle(card).paddingBottom || '0'));
  }
  if (getComputedStyle(list).overflowY !== 'visible' && list.tagName !== 'TBODY') {
    bottom = Math.min(bottom, list.getBoundingClientRect().bottom);
  }
  return bottom;
}

/** A "+N more" line fit for `list` (a table row in a table, an item in a list, else a paragraph). */
function moreLine(list) {
  if (list.tagName === 'TBODY') {
    const cols = list.closest('table')?.querySelectorAll('thead th:not(.control)').length || 1;
    const td = el('td', { colspan: String(cols) });
    return { node: el('tr', { class: MORE }, td), text: td };
  }
  const tag = list.tagName === 'UL' || list.tagName === 'OL' ? 'li' : 'p';
  const node = el(tag, { class: MORE });
  return { node, text: node };
}

/** Shows every entry again and removes the "+N more" lines. */
function unfit() {
  for (const n of document.querySelectorAll(`.${MORE}`)) n.remove();
  for (const n of document.querySelectorAll(`.${CUT}`)) n.classList.remove(CUT);
}

/** Cuts each list of the wall to what its card shows, with "+N more" for the rest. */
function fit() {
  unfit();
  if (!document.body.classList.contains('wall')) return;
  for (const [listSel, itemSel] of LISTS) {
    for (const list of document.querySelectorAll(listSel)) {
      if (!list.checkVisibility()) continue;
      const items = [...list.querySelectorAll(itemSel)].filter((n) => n.checkVisibility());
      const bottom = visibleBottom(list);
      let first = items.findIndex((n) => n.getBoundingClientRect().bottom > bottom + 0.5);
      if (first < 0) continue;
      const more = moreLine(list);
      list.append(more.node);
      // Hide from the first entry that does not fit; then make room for the "+N more" line itself.
      const hide = (from) => {
        items.forEach((n, i) => n.classList.toggle(CUT, i >= from));
        // Counsellors come in groups (available, busy…): the groups after the one cut go too.
        const cutGroup = items[from]?.closest('.group');
        if (cutGroup && list.contains(cutGroup)) {
          let after = false;
          for (const group of list.querySelectorAll(':scope > .group')) {
            group.classList.toggle(CUT, after);
            if (group === cutGroup) after = true;
          }
        }
        more.text.textContent = t('wall.more', { n: items.length - from });
      };
      hide(first);
      while (first > 0 && more.node.getBoundingClientRect().bottom > bottom + 0.5) {
        first -= 1;
        hide(first);
      }
      // Not even "+N more" fits (a very short screen): the list goes; its heading's count still says how many.
      if (more.node.getBoundingClientRect().bottom > bottom + 0.5) more.node.remove();
    }
  }
}

let observer = null;
let scheduled = false;

/** Fits the wall once in the next frame (changes made meanwhile are taken together). */
function schedule() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    observer?.disconnect();
    try {
      fit();
    } finally {
      // Our own changes are not changes of the board.
      observer?.takeRecords();
      observer?.observe(document.getElementById('board'), { childList: true, subtree: true, characterData: true });
      observer?.observe(document.body, { attributes: true, attributeFilter: ['class'] });
    }
  });
}

/** Starts fitting the wall's lists (once, at start). */
export function initWallFit() {
  observer = new MutationObserver(schedule);
  observer.observe(document.getElementById('board'), { childList: true, subtree: true, characterData: true });
  observer.observe(document.body, { attributes: true, attributeFilter: ['class'] });
  window.addEventListener('resize', schedule);
  onLocaleChange(schedule);
  schedule();
}
