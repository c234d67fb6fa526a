// view.mjs: everything the page draws: the views, the message list,
// notices, the member list with safety codes, delivery marks, the status
// line and the title. User-supplied text (names, messages) only ever
// reaches the page through textContent, and names are always isolated in a
// <bdi>, so right-to-left text cannot reorder the line around them; the
// server's CSP (Trusted Types) refuses innerHTML anyway.

import { inlineSize } from './strip.mjs';

export const $ = (id) => document.getElementById(id);

const MAX_ITEMS = 2000;

export function setState(s) { document.documentElement.dataset.state = s; }

export function show(id) {
  for (const v of ['unsupported', 'join-view', 'chat-view']) $(v).hidden = v !== id;
}

export function status(text) { $('status').textContent = text; }

// REFUSED says why the server refused this page's connection before it
// joined, and what to do, by the relay's error code.
const REFUSED = {
  too_many_conns: 'The server refused this tab: too many onionchat tabs or windows are open from your address ' +
    '(in Tor Browser: from this browser). Close one of them, then press Join again.',
  server_full: 'The server is full: it already holds as many people as its owner allows. Try again in a few minutes.',
  evicted: 'The server was full and gave this place to someone else. Try again in a few minutes.',
};

export function refusal(code) { return REFUSED[code] || ''; }

export function title(room, unread) {
  const base = room ? `${room} — onionchat` : 'onionchat';
  document.title = unread ? `(${unread}) ${base}` : base;
}

// Every blob: URL the page made for a picture or a download; revoked when
// its message goes.
const blobURLs = new WeakMap(); // li -> [url]

export function clearMessages() {
  for (const li of $('messages').children) revoke(li);
  $('messages').replaceChildren();
  follow = true;
  $('new-below').hidden = true;
}

function revoke(li) {
  if (sizes) sizes.unobserve(li);
  for (const u of blobURLs.get(li) || []) URL.revokeObjectURL(u);
  blobURLs.delete(li);
}

function blobURL(li, bytes, type) {
  const u = URL.createObjectURL(new Blob([bytes], { type }));
  blobURLs.set(li, [...(blobURLs.get(li) || []), u]);
  return u;
}

// el makes an element of tag with class className and text as its text:
// user data always goes in as text, never as markup.
function el(tag, className, text = '') {
  const e = document.createElement(tag);
  e.className = className;
  e.textContent = text;
  return e;
}

// name is a person's name, isolated from the text around it.
function name(text, className = 'name') { return el('bdi', className, text); }

const DELIVERY = {
  queued: 'sending…',
  sending: 'sending…',
  sent: 'sent',
  waiting: 'waiting for members who are reconnecting',
  delivered: 'delivered',
  partly: 'did not reach everyone',
  nobody: 'reached nobody',
  failed: 'not sent',
  unknown: 'delivery unknown',
};

// addMessage shows a message: {sender, text, time, own, code, changed,
// old}. The sender's safety code shows when the sender is clicked; a
// sender whose code changed during this page session is marked.
export function addMessage(m) {
  const li = el('li', 'msg');
  if (m.own) li.classList.add('own');
  if (m.old) li.classList.add('history');
  const head = el('div', 'head');
  const sender = el('button', 'sender');
  sender.type = 'button';
  sender.append(name(m.sender, ''));
  const when = document.createElement('time');
  const d = new Date(m.time);
  when.dateTime = isNaN(d) ? '' : d.toISOString();
  when.textContent = isNaN(d) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  head.append(sender, ' ', when);
  if (m.changed) head.append(el('span', 'tag warn', ' code changed'));
  if (m.old) head.append(el('span', 'tag', ' sent while you were away'));
  const code = el('span', 'msgcode', (m.own ? 'your safety code ' : 'safety code ') + (m.code || ''));
  code.hidden = true;
  sender.addEventListener('click', () => { code.hidden = !code.hidden; });
  sender.title = 'Show the safety code this message was signed with';
  li.append(head, code, el('div', 'text', m.text));
  if (m.own) li.append(el('div', 'delivery', DELIVERY.queued));
  append(li, { mine: m.own && !m.old });
  return li;
}

// delivery marks an own message with what became of it.
export function delivery(li, item) {
  const d = li.querySelector('.delivery');
  if (!d) return;
  let text = DELIVERY[item.state] || item.state;
  if (item.state === 'partly') text = `did not reach ${item.missed} of ${item.to} (they left before it arrived)`;
  if (item.state === 'nobody') text = item.to ? 'reached nobody: they left before it arrived' : 'reached nobody: you are alone in this room';
  d.textContent = text;
  li.dataset.delivery = item.state;
}

export function notice(text, kind) {
  append(el('li', 'notice' + (kind ? ' ' + kind : ''), text));
}

// The message list follows what arrives while its reader is at the end
// (within FOLLOW_SLACK pixels), whatever it is: when an item is added, and
// when an item or the list changes size later (a picture loads, a phone's
// keyboard opens). A reader who scrolled up stays where they are, and
// "new messages below" says that more came and takes them there. Only the
// reader's own scrolling (wheel, touch, keys, the scroll bar) stops the
// following: the list's own changes move the view too (an item that
// shrinks clamps it), and a picture may load before the scroll event
// that such a change raised is handled.
const FOLLOW_SLACK = 40;
const INTENT_MS = 1000;
let follow = true;
const reader = { at: -Infinity, holding: false }; // the reader's last scrolling input
let sizes = null; // ResizeObserver of the list and its items, once set up

function watchScroll() {
  if (sizes) return;
  const ol = $('messages');
  const intent = () => { reader.at = performance.now(); };
  for (const ev of ['wheel', 'touchstart', 'touchmove', 'keydown']) ol.addEventListener(ev, intent, { passive: true });
  ol.addEventListener('pointerdown', () => { reader.holding = true; intent(); });
  window.addEventListener('pointerup', () => { if (reader.holding) { reader.holding = false; intent(); } });
  ol.addEventListener('scroll', () => {
    if (ol.scrollHeight - ol.scrollTop - ol.clientHeight < FOLLOW_SLACK) {
      follow = true;
      $('new-below').hidden = true;
    } else if (reader.holding || performance.now() - reader.at < INTENT_MS) {
      follow = false;
    }
  }, { passive: true });
  $('new-below').addEventListener('click', () => { follow = true; toEnd(); });
  sizes = new ResizeObserver(keepFollowing);
  sizes.observe(ol);
}

function keepFollowing() { if (follow) toEnd(); }

function toEnd() {
  const ol = $('messages');
  ol.scrollTop = ol.scrollHeight;
  $('new-below').hidden = true;
}

function append(li, { mine = false } = {}) {
  watchScroll();
  const ol = $('messages');
  ol.append(li);
  sizes.observe(li);
  while (ol.children.length > MAX_ITEMS) { revoke(ol.firstElementChild); ol.firstElementChild.remove(); }
  if (mine) follow = true; // what you send, you see
  if (follow) toEnd();
  else if (li.classList.contains('msg') || li.classList.contains('notice')) $('new-below').hidden = false;
}

export function size(n) {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${Math.round(n / (1 << 10))} KiB`;
  return `${n} bytes`;
}

// fileItem shows a file on its way, ours (t.incoming false) or someone's,
// with a progress bar and a cancel button; update it with updateFile.
export function fileItem(t, { sender, time, code, changed, onCancel }) {
  const li = el('li', 'msg file');
  if (!t.incoming) li.classList.add('own');
  const head = el('div', 'head');
  const who = el('button', 'sender');
  who.type = 'button';
  who.append(name(sender, ''));
  const when = document.createElement('time');
  const d = new Date(time);
  when.dateTime = isNaN(d) ? '' : d.toISOString();
  when.textContent = isNaN(d) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  head.append(who, ' ', when);
  if (changed) head.append(el('span', 'tag warn', ' code changed'));
  const codeEl = el('span', 'msgcode', (t.incoming ? 'safety code ' : 'your safety code ') + (code || ''));
  codeEl.hidden = true;
  who.addEventListener('click', () => { codeEl.hidden = !codeEl.hidden; });
  const fname = el('div', 'fname', `${t.name} (${size(t.size)})`);
  const note = el('div', 'note', !t.incoming && t.removed && t.removed.length
    ? `Location and camera data removed before sending (${t.removed.join(', ')}).`
    : (t.incoming && t.stripped ? 'Its sender’s page removed location and camera data.' : ''));
  const bar = document.createElement('progress');
  bar.max = 1;
  bar.value = 0;
  const cancel = el('button', 'cancel', 'Cancel');
  cancel.type = 'button';
  cancel.addEventListener('click', onCancel);
  const why = el('div', 'why', '');
  li.append(head, codeEl, fname, note, bar, cancel, why);
  li.dataset.transfer = t.incoming ? 'receiving' : 'sending';
  append(li, { mine: !t.incoming });
  return li;
}

export function updateFile(li, t, progress) {
  li.querySelector('progress').value = progress;
  li.dataset.transfer = t.state;
  const done = t.state === 'done' || t.state === 'sent';
  if (!done && t.state !== 'receiving' && t.state !== 'sending' && t.state !== 'offering') {
    li.querySelector('progress').remove();
    li.querySelector('button.cancel').remove();
    li.querySelector('.why').textContent = t.incoming ? `Not received: ${t.why}.` : 'Cancelled.';
    return;
  }
  if (!done) return;
  li.querySelector('progress')?.remove();
  li.querySelector('button.cancel')?.remove();
  if (t.sha256) li.dataset.sha256 = t.sha256; // what the page checked the bytes against
  if (!t.bytes || (!t.incoming && !t.picture)) return;
  const fit = t.picture ? inlineSize(t.bytes) : null;
  if (fit && fit.ok) {
    const img = document.createElement('img');
    img.alt = t.name;
    img.decoding = 'async';
    img.addEventListener('load', keepFollowing); // its height is known only now
    img.src = blobURL(li, t.bytes, t.type);
    li.append(img);
    return;
  }
  if (fit) {
    li.append(el('div', 'note', fit.width
      ? `Not shown here: at ${fit.width} × ${fit.height} pixels it is too large to draw safely.`
      : 'Not shown here: its size could not be read.'));
  }
  if (!t.incoming) return;
  const a = el('a', 'download', `Save ${t.name}`);
  a.download = t.name;
  a.href = blobURL(li, t.bytes, 'application/octet-stream'); // never rendered by the page or the browser
  li.append(a);
}

// askSendAsFile tells the sender that a photo (name, of format) cannot be
// cleaned and was not sent, and offers to send it as a file anyway:
// onSend runs if they choose to.
export function askSendAsFile(fileName, format, onSend) {
  const li = el('li', 'notice ask', `“${fileName}” is a ${format} photo. This page cannot remove location and camera data from ${format} photos, so it has not been sent. ` +
    'You can save it as JPEG or PNG and send that, or send this one as a file, with everything it carries.');
  const row = el('div', 'actions');
  const yes = el('button', 'anyway', 'Send it as a file anyway');
  const no = el('button', 'keep', 'Don’t send');
  yes.type = no.type = 'button';
  const done = (text) => { row.replaceChildren(el('span', '', text)); };
  yes.addEventListener('click', () => { done('Sending it as a file, as it is.'); onSend(); });
  no.addEventListener('click', () => done('Not sent.'));
  row.append(yes, ' ', no);
  li.append(row);
  append(li, { mine: true });
}

// badge puts the unread count on the tab's icon (an SVG made here), or
// puts the icon back.
let badgeURL = '';
export function badge(unread) {
  const link = $('favicon');
  if (badgeURL) { URL.revokeObjectURL(badgeURL); badgeURL = ''; }
  if (!unread) { link.href = '/favicon.ico'; return; }
  const n = unread > 99 ? '99+' : String(unread);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" r="15" fill="#6b2d8c"/>` +
    `<text x="16" y="21" font-size="${n.length > 2 ? 11 : 15}" font-family="sans-serif" font-weight="bold" fill="#fff" text-anchor="middle">${n}</text></svg>`;
  badgeURL = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
  link.href = badgeURL;
}

const STATUS_TEXT = {
  waiting: 'waiting for keys…',
};

// members draws the member list: each entry is {name, self, code, status,
// changed, away}; code is the member's safety code once their hello
// arrived.
export function members(list) {
  $('members').replaceChildren(...list.map((m) => {
    const li = el('li', 'member');
    li.dataset.status = m.status;
    li.append(name(m.name));
    if (m.self) {
      li.classList.add('me');
      li.append(el('span', 'tag', ' (you)'));
    }
    if (m.away) {
      li.classList.add('away');
      li.append(el('span', 'tag', ' reconnecting…'));
    }
    if (m.changed) {
      li.classList.add('changed');
      li.append(el('span', 'tag warn', ' code changed'));
    }
    li.append(el('span', m.code ? 'code' : 'code none', m.code || STATUS_TEXT[m.status] || ''));
    return li;
  }));
  $('member-count').textContent = list.length ? `(${list.length})` : '';
  $('member-count-short').textContent = list.length ? `(${list.length})` : '';
}

// toggleSide opens or closes the side panel (members, codes, the room
// link, notifications) where it is folded away: on a phone's narrow
// screen. Without an argument it flips it.
export function toggleSide(open) {
  const side = $('side');
  const on = open === undefined ? !side.classList.contains('open') : open;
  side.classList.toggle('open', on);
  side.parentElement.classList.toggle('side-open', on);
  $('members-toggle').setAttribute('aria-expanded', String(on));
}

export function myCode(code) { $('my-code').textContent = code || ''; }

export function checkCode(code) { $('check-code').textContent = code || ''; }

// alone shows or hides the note for someone alone in a room.
export function alone(on) { $('alone').hidden = !on; }
