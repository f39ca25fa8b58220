// Shared by all three pages (the caller widget, the counsellor console, the supervisors' dashboard):
// DOM helpers, times, the message log's ordering, the connection banner, and a socket that reconnects
// by itself with backoff. Nothing here signs in or holds a token (that is staff.js, for staff pages only),
// so the caller widget loads only what it needs.
//
// Text is always put into the page with textContent, never as HTML.

export const $ = (id) => document.getElementById(id);

/** Makes an element: `class`, `text`, `dataset`, ARIA and a few attributes by name, other props as properties. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('aria-') || k === 'role' || k === 'for' || k === 'tabindex' || k === 'scope') node.setAttribute(k, v);
    else node[k] = v;
  }
  node.append(...children);
  return node;
}

/** The time of day of `at` (now when empty): 14:05, or 14:05:09 with seconds. */
export function timeOf(at, { locale = 'en-GB', seconds = false } = {}) {
  const opts = seconds ? { hour: '2-digit', minute: '2-digit', second: '2-digit' } : { hour: '2-digit', minute: '2-digit' };
  return (at ? new Date(at) : new Date()).toLocaleTimeString(locale, opts);
}

/** A fresh id for a message the server stores once however often it is sent. */
export function newClientId(prefix) {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return `${prefix}${Date.now().toString(36)}-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** Sets the connection banner (a live region; empty when all is well). */
export function setBanner(text, good = false) {
  const b = $('banner');
  b.classList.toggle('good', good);
  b.textContent = text;
}

/** After a drop: says `text` in the banner for a few seconds (only when it said something went wrong). */
export function bannerBackOnline(text) {
  const b = $('banner');
  if (!b.textContent || b.classList.contains('good')) return;
  setBanner(text, true);
  setTimeout(() => {
    if (b.classList.contains('good')) setBanner('');
  }, 4000);
}

/**
 * Puts a node in a message log in seq order: what the server stored (with a seq) in seq order, own
 * messages not yet stored (no seq) at the bottom. So after a drop, what arrived meanwhile is shown where
 * the server stored it. Keeps the log scrolled to the bottom when it was there (or, with `followMine`,
 * when the node is one's own message).
 */
export function placeInLog(log, node, seq, { followMine = true } = {}) {
  const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  let before = null;
  if (seq != null) {
    node.dataset.seq = String(seq);
    for (const child of log.children) {
      if (child === node) continue;
      if (child.dataset.seq === undefined || Number(child.dataset.seq) > seq) {
        before = child;
        break;
      }
    }
  }
  if (before) log.insertBefore(node, before);
  else if (node.parentNode !== log || node.nextSibling) log.append(node);
  if (nearBottom || (followMine && node.classList.contains('mine'))) log.scrollTop = log.scrollHeight;
}

/** The highest seq in a set of shown seqs (0 when none): a note goes just after it. */
export function highestSeq(shown) {
  let highest = 0;
  for (const s of shown) highest = Math.max(highest, s);
  return highest;
}

/** Calls `fn` when Enter (without Shift, not while composing) is pressed in a text box: Shift+Enter adds a line. */
export function onEnter(area, fn) {
  area.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      fn();
    }
  });
}

/** ws: or wss: (as the page) to this host. */
export function socketUrl(path) {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
}

/**
 * A socket to this host that comes back by itself: on a close (or when silent too long) it tries again,
 * sooner at first (0.5 s doubling up to 5 s, with jitter).
 *
 * Options (all but `path` and `active` optional):
 * - `path()`: the socket's path, or a promise of it (e.g. after fetching a ticket); when it rejects,
 *   `onPathError(e)` may take over (return true), otherwise it counts as a drop.
 * - `active()`: whether the page wants a socket now (false once signed out, ended, exiting…).
 * - `onConnecting(retries)`, `onOpen(ws)`, `onFrame(frame)`, `onClose(event)` (return true when handled:
 *   no reconnect), `onLost()` (the page's banner, after a drop while still active).
 * - `silentMs`: how long without any frame before an open socket counts as dead.
 */
export class LiveSocket {
  constructor(options) {
    this.o = options;
    this.ws = null;
    this.retries = 0;
    this.retryTimer = null;
    this.lastHeard = 0;
    this.connecting = false;
  }

  /** Sends a frame if the socket is open; false when it is not. */
  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  /** Whether a socket is open or opening. */
  get up() {
    return Boolean(this.ws && this.ws.readyState <= WebSocket.OPEN);
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.connecting || !this.o.active() || this.up) return;
    this.o.onConnecting?.(this.retries);
    let path;
    try {
      path = this.o.path();
    } catch (e) {
      this.failed(e);
      return;
    }
    if (typeof path === 'string') {
      this.open(path);
      return;
    }
    this.connecting = true;
    path.then(
      (p) => {
        this.connecting = false;
        if (this.o.active()) this.open(p);
      },
      (e) => {
        this.connecting = false;
        this.failed(e);
      },
    );
  }

  failed(e) {
    if (this.o.onPathError?.(e)) return;
    this.lost();
  }

  open(path) {
    const ws = new WebSocket(socketUrl(path));
    this.ws = ws;
    ws.addEventListener('open', () => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      this.o.onOpen?.(ws);
    });
    ws.addEventListener('message', (e) => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      this.o.onFrame(frame);
    });
    ws.addEventListener('close', (e) => {
      if (ws !== this.ws) return;
      if (this.o.onClose?.(e)) return;
      this.lost();
    });
  }

  /** The socket is gone (closed, or silent too long): say so and try again, sooner at first. */
  lost() {
    const old = this.ws;
    this.ws = null;
    if (old) {
      try {
        old.close();
      } catch {
        /* closing already */
      }
    }
    if (!this.o.active()) return;
    this.o.onLost?.();
    const delay = Math.min(5000, 500 * 2 ** this.retries) * (0.75 + Math.random() * 0.5);
    this.retries += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Tries at once (the page is visible again, the network is back), not waiting out the backoff. */
  reconnectNow(keepRetries = 1) {
    if (!this.o.active() || this.up) return;
    this.retries = Math.min(this.retries, keepRetries);
    this.connect();
  }

  /** Closes on purpose (signed out, ended): no reconnect. */
  close(code = 1000) {
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(code);
  }

  /** True (and reconnecting) when the open socket has been silent too long. */
  silent() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    if (Date.now() - this.lastHeard > this.o.silentMs) {
      this.lost();
      return true;
    }
    return false;
  }

  /** A ping (the server answers, so silence means a dead socket), unless the socket is down or dead. */
  heartbeat() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.silent()) return;
    this.send({ type: 'ping' });
  }
}
