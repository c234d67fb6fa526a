// view.mjs: everything the page draws and says: the views, the message
// list, notices (the protocol modules report typed events; the words for
// each are here, in one place), the member list with safety codes,
// delivery marks, the status line and the title. User-supplied text
// (names, messages) only ever
// reaches the page through textContent, and names are always isolated in a
// <bdi>, so right-to-left text cannot reorder the line around them; the
// server's CSP (Trusted Types) refuses innerHTML anyway.

import { inlineSize } from './strip.mjs';

export const $ = (id) => document.getElementById(id);

const MAX_MESSAGES = 2000; // messages and files kept in the list; the oldest go first
const MAX_NOTICES = 200;   // notices kept; they never push a message out

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

// TEXT is what the page's wiring (app.mjs) says itself.
export const TEXT = {
  status: (state, retryIn) => (state === 'reconnecting' && retryIn ? `Disconnected — reconnecting in ${Math.ceil(retryIn / 1000)} s`
    : { connecting: 'Connecting…', deriving: 'Making the room key…', joining: 'Joining…', ready: 'Connected', reconnecting: 'Reconnecting…', stopped: 'Stopped' }[state] || ''),
  unsupported: {
    'not-secure': 'This page was not opened in a secure context, so the browser hides the Web Crypto API that onionchat ' +
      'encrypts with. Open the chat at its .onion address in Tor Browser, or at its https:// address if the owner runs it in ' +
      'LAN mode. Plain http:// addresses other than .onion and localhost do not work.',
    'no-websocket': 'This browser has no WebSocket support.',
    'no-25519': 'This browser’s Web Crypto lacks Ed25519 and X25519, which the room’s encryption (MLS) needs. Update Tor ' +
      'Browser (version 15 or later), Firefox (130 or later) or Chromium (133 or later).',
  },
  cannotKeep: (why) => `This browser cannot keep a key here: ${why}`,
  joined: (room, name) => `You joined “${room}” as ${name}.`,
  notify: {
    none: 'This browser does not allow notifications here (Tor Browser turns them off); the tab’s title and icon count unread messages.',
    on: 'You will be notified while this tab is hidden.',
    refused: 'The browser did not allow notifications; the tab’s title and icon count unread messages.',
    button: { on: 'Notifications on', off: 'Notify me of new messages' },
    body: (detail, sender, text, room) => (detail ? `${sender}: ${text}` : `New message in ${room}`),
  },
};

// NAME_WHY words why a name cannot be one (names.mjs's codes).
const NAME_WHY = {
  empty: 'Enter your name.',
  'too-long': 'Names have at most 32 characters.',
  invisible: 'Names cannot contain invisible, control or formatting characters.',
  marks: 'Names have at most 3 combining marks in a row.',
  'no-letter': 'Names need at least one letter or digit.',
};

// formError words what is wrong with the join form (Session.start).
export function formError(bad) {
  if (bad.what === 'name') return NAME_WHY[bad.why] || 'That cannot be a name.';
  return { 'no-room': 'Enter a room name.', 'no-passphrase': 'Enter the room passphrase.' }[bad.what] || '';
}

const capital = (s) => (s ? s[0].toUpperCase() + s.slice(1) : s);

// stopWords words why a session stopped (Session.fail's codes): for the
// join form, or as a notice.
export function stopWords(ev) {
  switch (ev.what) {
    case 'unreachable': return 'Could not reach the server. Check the address and your connection, then try again.';
    case 'server-changed': return 'The server’s identity changed, so the room key must be made again. Enter the passphrase once more.';
    case 'no-key': return `Could not make the room key: ${ev.error}`;
    case 'name-taken-now': return `Someone else now uses the name “${ev.name}” in this room. Choose another name.`;
    case 'newer-version': return 'This server runs a newer version of onionchat: reload the page.';
    case 'refused': return REFUSED[ev.code] || (ev.message ? capital(ev.message) + '.' : ev.code.replace(/_/g, ' '));
  }
  return ev.what || '';
}

// notSentWords words why a file of ours was not offered (files.mjs's
// NotSent; anything else is said as it is).
export function notSentWords(e) {
  switch (e && e.why) {
    case 'busy': return `${e.args.max} files are on their way already; wait for them`;
    case 'too-large': return `files can have at most ${size(e.args.max)} here`;
    case 'frames-too-small': return 'this server’s frame limit is too small for files';
    case 'not-cleaned': return `this picture could not be cleaned of its location and camera data (${e.args.detail}), so it was not sent`;
  }
  return String((e && e.message) || e);
}

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
  // Notices are bounded on their own, so that however many a sender's
  // frames cause, they never push a message out of the list.
  const kind = li.classList.contains('notice') ? '.notice' : '.msg';
  const all = ol.querySelectorAll(`:scope > ${kind}`);
  for (let i = 0; i < all.length - (kind === '.notice' ? MAX_NOTICES : MAX_MESSAGES); i++) { revoke(all[i]); all[i].remove(); }
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
  const bar = li.querySelector('progress');
  if (bar) bar.value = progress;
  li.dataset.transfer = t.state;
  const done = t.state === 'done' || t.state === 'sent';
  if (!done && t.state !== 'receiving' && t.state !== 'sending' && t.state !== 'offering') {
    li.querySelector('progress')?.remove();
    li.querySelector('button.cancel')?.remove();
    li.querySelector('.why').textContent = t.incoming ? `Not received: ${fileWhy(t)}.` : 'Cancelled.';
    return;
  }
  if (!t.incoming && t.delivery) {
    let d = li.querySelector('.delivery');
    if (!d) { d = el('div', 'delivery'); li.append(d); }
    d.textContent = fileDelivery(t);
    li.dataset.delivery = t.delivery;
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
  joining: 'joining…',
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
    if (m.status === 'reconnecting') {
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

// ---------------------------------------------------------------- words

const count = (n, one, many) => (n === 1 ? `1 ${one}` : `${n} ${many || one + 's'}`);

// PROBLEMS words what a refused frame was; every one is a warning.
const PROBLEMS = {
  version: (e) => `A frame from ${e.name} could not be read: it is of protocol version ${e.version}. Whoever has the older page should reload it.`,
  altered: (e) => `A frame relayed as from ${e.name} could not be opened: it was altered on the way.`,
  direct: (e) => `${e.name} sent something to you alone; it was not shown (everyone in a room sees the same messages).`,
  'wrong-lane': (e) => `A frame from ${e.name} came by the wrong way (a message as part of a file, or the reverse); it was not shown.`,
  'not-ordered': (e) => `A change of the room’s keys from ${e.name} did not come through the server’s ordering; it was ignored.`,
  'unknown-kind': (e) => `A frame from ${e.name} is of an unknown kind; reload the page to update onionchat.`,
  unreadable: (e) => `A frame relayed as from ${e.name} could not be read: it is old, replayed, or not meant for this room’s current keys.`,
  malformed: (e) => `A frame from ${e.name} is malformed; it was ignored.`,
  impersonated: (e) => `A frame signed by ${e.name} came through ${e.session ? `${e.session}’s` : 'another'} connection; it was ignored.`,
  relabelled: (e) => `The server relayed a message signed by ${e.name} as if from ${e.session}; it is shown as ${e.name}’s, whose signature it carries.`,
  'bad-commit': (e) => `A change of the room’s keys sent by ${e.name} is invalid and was refused; the room goes on without it.`,
  'commit-flood': (e) => `${e.name} changes the room’s keys unusually often (more than 20 times a minute); each change costs every page some work. If this goes on, ask them why.`,
  'later-epoch': (e) => `Frames from ${e.name} need a change of the room’s keys that never arrived; they could not be read.`,
  'bad-info': () => 'The room’s key information the server keeps could not be read; joining again.',
  missing: (e) => `${count(e.count, 'message')} from ${e.name} did not reach you.`,
  more: (e) => `${count(e.count, 'more frame')} from ${e.name} were refused.`,
  split: (e) => ({
    twice: `${e.name} sent two different messages under one number: one of you was shown something the others were not.`,
    index: `${e.name}’s messages came out of their order: someone was shown another history of this room.`,
    chain: `${e.name}’s messages do not follow each other as they did for you: someone was shown another history of this room.`,
    yours: `${e.name} received messages under your name that you did not send, or not as you sent them.`,
    theirs: `${e.name} and you were shown different messages from ${e.of}: someone was shown another history of this room.`,
  })[e.how] || `Someone was shown another history of this room (${e.name}).`,
};

// NOTES words what the connection reports.
const NOTES = {
  'too-long': (e) => ['error', `Messages have at most ${e.max} characters.`],
  'outbox-full': () => ['error', 'Too many messages are waiting to be sent; wait a moment.'],
  gap: (e) => ['error', `${count(e.count, 'room frame')} sent while you were away ${e.count === 1 ? 'is' : 'are'} no longer kept by the server: some messages may not reach you.`],
  'rate-limited': () => ['error', 'The server says we are sending too fast; some frames were dropped.'],
  replaced: () => ['error', 'This chat continues in another tab or connection; this one has stopped.'],
  restarting: () => ['info', 'The server is restarting; reconnecting when it is back.'],
  busy: () => ['error', 'The server is busy; trying again shortly.'],
  'server-error': (e) => ['error', `Server: ${e.message || e.code}`],
  'send-failed': (e) => ['error', `Could not send: ${e.error}`],
};

// FILE_WHY words why a file did not arrive here (files.mjs's codes).
const FILE_WHY = {
  'you-cancelled': () => 'you cancelled it',
  'sender-cancelled': (t) => `${t.sender} cancelled it`,
  'too-large': (t) => `it is larger than the ${size(t.whyArgs.max)} this server allows`,
  'too-small': () => 'its pieces are too small (a page of onionchat never sends such)',
  'bad-chunks': () => 'its pieces do not fit this server',
  busy: () => 'too many files are on their way at once; ask them to send it again later',
  altered: () => 'it was altered on the way: it is not the file that was offered',
  'old-keys': () => 'a piece came under keys this page no longer holds',
  left: (t) => `${t.sender} left before all of it arrived (${t.got} of ${t.chunks} pieces)`,
  stalled: (t) => `some of it never arrived (${t.got} of ${t.chunks} pieces); ask them to send it again`,
  restart: (t) => `the server restarted while it was on its way (${t.got} of ${t.chunks} pieces); ${t.sender} can send it again`,
  'too-slow': (t) => `it came too slowly to keep its place (${t.got} of ${t.chunks} pieces); ask them to send it again`,
};

function fileWhy(t) { return FILE_WHY[t.why] ? FILE_WHY[t.why](t) : String(t.why || 'it did not arrive'); }

// DECLINED_WHY words why a receiver did not take a file of ours.
const DECLINED_WHY = { cancelled: 'cancelled it', busy: 'had too many files on their way', 'too-large': 'found it too large', 'too-small': 'refused its pieces', failed: 'did not get it whole', left: 'left' };

function fileDelivery(t) {
  if (t.delivery === 'delivered') return 'delivered';
  if (t.delivery === 'nobody' && !t.required.size) return 'reached nobody: you are alone in this room';
  const who = t.missed.map((m) => `${m.name} ${DECLINED_WHY[m.why] || 'did not get it'}`).join('; ');
  return t.delivery === 'nobody' ? `reached nobody (${who})` : `did not reach everyone (${who})`;
}

// words returns [level, text] for an event of the session or the group
// that people should read, or null.
export function words(ev) {
  switch (ev.type) {
    case 'problem': return ['error', '⚠ ' + (PROBLEMS[ev.what] ? PROBLEMS[ev.what](ev) : `A frame from ${ev.name} was refused.`)];
    case 'note': return NOTES[ev.what] ? NOTES[ev.what](ev) : null;
    case 'reconnected': return ['info', 'Reconnected.'];
    case 'member-joined':
      if (ev.changedFrom) return ['error', `⚠ ${ev.name}’s safety code changed (was ${ev.changedFrom}, now ${ev.code}): this is another device or browser. If ${ev.name} did not say so, someone else may be using the name.`];
      return ['info', ev.again ? `${ev.name} is back, with the same safety code.` : `${ev.name} joined.`];
    case 'member-left': return ev.by ? ['error', `⚠ ${ev.by} removed ${ev.name} from the room’s keys while ${ev.name} was still here; if ${ev.name} is, their page joins again.`] : ['info', `${ev.name} left.`];
    case 'removed-you': return ['error', `${ev.by || 'Someone'} removed you from the room’s keys; joining again.`];
    case 'rejoining': return ['info', ev.why === 'behind' ? 'The room’s keys changed while you were away; joining again.' : 'Joining the room again.'];
    case 'waiting-old-self': return ['info', 'Your previous page is still in this room’s keys; it is removed once the others notice it left (a few seconds).'];
    case 'in-group': return ev.again ? ['info', 'You are in the room’s keys again.'] : null;
    case 'earlier': return ['info', `Up to ${count(ev.count, 'earlier message')} ${ev.count === 1 ? 'was' : 'were'} sent before you joined; ${ev.count === 1 ? 'it' : 'they'} cannot be read here (by design: you get the room’s keys from when you join).`];
    case 'internal': return ['error', `⚠ Internal error: ${ev.error}`];
    case 'file-declined': return ['info', ev.why === 'cancelled' ? `${ev.by} declined “${ev.transfer.name}”.` : `${ev.by} ${DECLINED_WHY[ev.why] || 'did not get'} “${ev.transfer.name}”.`];
    case 'file-unknown': return ['error', `⚠ ${ev.sender} is sending a file that started before you joined or while you were away; it will not reach you.`];
  }
  return null;
}
