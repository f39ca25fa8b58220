// Sign-in lockouts on the supervisors' dashboard: the (account, address) pairs locked out now after
// failed logins (GET /api/v1/lockouts), on sign-in and every minute. An admin lifts them (POST
// /api/v1/users/{username}/unlock or `helpline user unlock NAME`); see docs/security.md.
//
// Text is put into the page with textContent only.

import { $, el } from './common.js';
import { apiCall, dateTime } from './staff.js';
import { t } from './staff-i18n.js';

const EVERY_MS = 60000;
let timer = null;
/** The last list, drawn again after a change of language. */
let last = [];

/** Signed in: the lockouts now, and again every minute. */
export function lockoutsOnline(token) {
  refresh(token);
  clearInterval(timer);
  timer = setInterval(() => refresh(token()), EVERY_MS);
}

export function lockoutsSignedOut() {
  clearInterval(timer);
  timer = null;
  last = [];
  $('lockout-list').replaceChildren();
  $('no-lockouts').hidden = false;
}

/** After a change of language. */
export function lockoutsRedraw() {
  draw(last);
}

async function refresh(token) {
  const res = await apiCall(typeof token === 'function' ? token() : token, '/api/v1/lockouts');
  if (res.status !== 200 || !Array.isArray(res.body)) return;
  last = res.body;
  draw(last);
}

function draw(list) {
  $('lockout-list').replaceChildren(
    ...list.map((l) =>
      el(
        'li',
        { class: 'lockout', dataset: { username: l.username || '' } },
        el('strong', { text: l.username || t('lockout.unknown') }),
        `${t('lockout.line', { address: l.address, when: dateTime(l.locked_until) })}${l.strikes > 1 ? t('lockout.strikes', { n: l.strikes }) : ''}`,
      ),
    ),
  );
  $('no-lockouts').hidden = list.length > 0;
}
