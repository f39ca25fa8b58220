// The page that sets a password with a one-time code an admin made (`/reset`, docs/admin.md): the code
// comes typed or in the link's fragment (`/reset#CODE`: a fragment never reaches a server or its logs,
// and is cleared from the address bar at once). `POST /api/v1/auth/reset`; words through staff-i18n.js.

import { $ } from './common.js';
import { initLocale } from './staff.js';
import { t, locale, translatePage, onLocaleChange } from './staff-i18n.js';

async function onSubmit(event) {
  event.preventDefault();
  const error = $('reset-error');
  error.textContent = '';
  const code = $('reset-code').value.trim();
  const password = $('reset-password').value;
  if (!code || !password) {
    error.textContent = t('reset.missing');
    return;
  }
  if (password !== $('reset-again').value) {
    error.textContent = t('reset.mismatch');
    $('reset-again').select();
    return;
  }
  $('reset-submit').disabled = true;
  try {
    const res = await fetch('/api/v1/auth/reset', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ code, password }),
      cache: 'no-store',
    });
    if (res.status === 204) {
      $('reset-form').hidden = true;
      $('reset-done').hidden = false;
      return;
    }
    const answer = await res.json().catch(() => ({}));
    if (answer.code === 'weak_password') error.textContent = (locale() === 'en' && answer.message) || t('reset.weak');
    else if (answer.code === 'invalid_reset_code') error.textContent = t('reset.invalid');
    else if (answer.code === 'rate_limited') error.textContent = t('reset.limited');
    else error.textContent = t('reset.failed');
  } catch {
    error.textContent = t('reset.failed');
  } finally {
    $('reset-submit').disabled = false;
  }
}

function init() {
  initLocale(() => null);
  onLocaleChange(() => translatePage());
  const fragment = decodeURIComponent(location.hash.replace(/^#/, ''));
  if (fragment) {
    $('reset-code').value = fragment;
    history.replaceState(null, '', location.pathname);
  }
  $('reset-form').addEventListener('submit', onSubmit);
  translatePage();
  (fragment ? $('reset-password') : $('reset-code')).focus();
}

init();
