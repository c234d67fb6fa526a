// app.mjs: the onionchat page. It joins a room over the hub's WebSocket,
// derives the room key from the passphrase (crypto.mjs), encrypts what the
// user sends and decrypts what arrives. User-supplied text only ever
// reaches the page through textContent; the server's CSP (Trusted Types)
// would refuse innerHTML anyway.

import { deriveRoomKey, Sender, Receiver, DecryptError, toBase64, fromBase64, toHex, MAX_TEXT_CHARS } from './crypto.mjs';

const $ = (id) => document.getElementById(id);

const HEARTBEAT_MS = 20000;     // app-level ping: keeps Tor circuits busy, detects dead links
const DEAD_AFTER_MS = 50000;    // no frame for this long: the connection is dead, reconnect
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];
const PROTOCOL = 1;

const state = {
  room: '',            // normalised room name
  name: '',            // our name, as the hub canonicalised it
  serverId: null,      // the server id the key was derived for
  key: null,           // room key (non-extractable); kept in memory to rejoin after drops
  sender: null,
  receiver: null,
  pass: null,          // the passphrase, only from submit until the key exists
  resume: '',          // token from the hub's welcome, to take over a lingering session
  ws: null,
  joined: false,       // joined on the current connection
  everJoined: false,   // joined at least once since the form was submitted
  stopped: true,       // no reconnecting (left, replaced, or never started)
  attempt: 0,
  retryTimer: 0,
  lastFrame: 0,
  heartbeat: 0,
  limits: { rate: 10, burst: 40 },
  tokens: 0,
  tokenAt: 0,
  outbox: [],          // {text, li} typed but not yet handed to the hub
  flushTimer: 0,
  inbox: [],           // frames waiting for the key
  chain: Promise.resolve(), // keeps decryption and display in arrival order
  nextId: 1,
  unread: 0,
  members: [],
};

function setState(s) { document.documentElement.dataset.state = s; }

// ---------------------------------------------------------------- start

function unsupportedReason() {
  if (!window.isSecureContext || !window.crypto || !window.crypto.subtle) {
    return 'This page was not opened in a secure context, so the browser hides ' +
      'the Web Crypto API that onionchat encrypts with. Open the chat at its ' +
      '.onion address in Tor Browser, or at its https:// address if the owner ' +
      'runs it in LAN mode. Plain http:// addresses other than .onion and ' +
      'localhost do not work.';
  }
  if (!('WebSocket' in window)) return 'This browser has no WebSocket support.';
  return '';
}

function init() {
  const why = unsupportedReason();
  if (why) {
    $('unsupported-why').textContent = why;
    show('unsupported');
    setState('unsupported');
    return;
  }
  $('join-form').addEventListener('submit', onJoinSubmit);
  $('send-form').addEventListener('submit', (e) => { e.preventDefault(); sendComposer(); });
  $('composer').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendComposer(); }
  });
  $('leave').addEventListener('click', leave);
  $('share').addEventListener('focus', (e) => e.target.select());
  document.addEventListener('visibilitychange', () => { if (!document.hidden) { state.unread = 0; updateTitle(); } });
  window.addEventListener('hashchange', fillRoomFromHash);
  window.addEventListener('online', () => { if (!state.stopped && !state.ws) reconnectNow(); });
  fillRoomFromHash();
  show('join-view');
  setState('join');
  ($('room').value ? $('name') : $('room')).focus();
}

function show(id) {
  for (const v of ['unsupported', 'join-view', 'chat-view']) $(v).hidden = v !== id;
}

// A room link carries the room in the fragment (#room=NAME), which browsers
// never send to the server. A passphrase is never read from a link.
function fillRoomFromHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const room = p.get('room');
  if (room && !state.joined) $('room').value = room;
}

function normRoom(s) { return s.trim().normalize('NFC').toLowerCase(); }

// ---------------------------------------------------------------- joining

function onJoinSubmit(e) {
  e.preventDefault();
  const room = normRoom($('room').value);
  const name = $('name').value.trim().normalize('NFC');
  const pass = $('passphrase').value;
  const err = $('join-error');
  err.textContent = '';
  if (!room) return fail('Enter a room name.', 'room');
  if (!name) return fail('Enter your name.', 'name');
  if ([...name].length > 32) return fail('Names have at most 32 characters.', 'name');
  if (!pass) return fail('Enter the room passphrase.', 'passphrase');
  if (room !== state.room) forgetKey();
  state.room = room;
  state.name = name;
  state.pass = pass;
  state.stopped = false;
  state.everJoined = false;
  state.resume = '';
  state.attempt = 0;
  $('join').disabled = true;
  connect();

  function fail(msg, field) {
    err.textContent = msg;
    $(field).focus();
  }
}

function forgetKey() {
  state.key = state.sender = state.receiver = null;
  state.serverId = null;
  state.pass = null;
}

function wsURL() {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
}

function connect() {
  clearTimeout(state.retryTimer);
  state.retryTimer = 0;
  status(state.everJoined ? 'Reconnecting…' : 'Connecting…');
  setState(state.everJoined ? 'reconnecting' : 'connecting');
  let ws;
  try {
    ws = new WebSocket(wsURL());
  } catch (e) {
    scheduleReconnect();
    return;
  }
  state.ws = ws;
  state.joined = false;
  ws.onopen = () => {
    state.lastFrame = Date.now();
    const join = { v: PROTOCOL, type: 'join', room: state.room, name: state.name };
    if (state.resume) join.resume = state.resume;
    send(join);
    startHeartbeat();
  };
  ws.onmessage = (ev) => {
    state.lastFrame = Date.now();
    let f;
    try { f = JSON.parse(ev.data); } catch { return; }
    onFrame(f);
  };
  ws.onclose = (ev) => onClose(ws, ev);
}

function send(f) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify(f));
    return true;
  }
  return false;
}

function onFrame(f) {
  switch (f.type) {
    case 'welcome': return onWelcome(f);
    case 'msg': return onMsg(f);
    case 'join': return onMemberJoin(f);
    case 'leave': return onMemberLeave(f);
    case 'error': return onError(f);
    case 'pong': return;
  }
}

async function onWelcome(f) {
  state.joined = true;
  state.attempt = 0;
  state.resume = f.resume || '';
  state.name = f.you;
  if (f.limits) {
    state.limits = { rate: Number(f.limits.rate) || 10, burst: Number(f.limits.burst) || 40 };
    state.tokens = Math.max(0, state.limits.burst - 2); // the join spent one; keep one for pings
    state.tokenAt = Date.now();
  }
  setMembers(f.members || []);
  if (!state.key || state.serverId !== f.server) {
    if (state.pass === null) {
      // The server's identity changed (a new certificate or onion key):
      // the old key cannot read this room any more.
      stopWith('The server’s identity changed, so the room key must be made again. Enter the passphrase once more.');
      return;
    }
    status('Making the room key…');
    setState('deriving');
    try {
      const key = await deriveRoomKey(state.pass, f.server, state.room);
      state.key = key;
      state.serverId = f.server;
      state.sender = await Sender.create(key, state.room, state.name);
      state.receiver = new Receiver(key, state.room);
    } catch (e) {
      stopWith('Could not make the room key: ' + e.message);
      return;
    } finally {
      state.pass = null;
      $('passphrase').value = '';
    }
  }
  if (state.sender) state.sender.name = state.name;
  const first = !state.everJoined;
  state.everJoined = true;
  $('join').disabled = false;
  if (first) enterChat();
  notice(first ? `You joined “${state.room}” as ${state.name}.` : 'Reconnected.');
  status('Connected');
  setState('ready');
  for (const g of state.inbox.splice(0)) onMsg(g);
  flushOutbox();
}

function enterChat() {
  $('messages').replaceChildren();
  $('room-title').textContent = state.room;
  $('share').value = location.origin + '/#room=' + encodeURIComponent(state.room);
  history.replaceState(null, '', '#room=' + encodeURIComponent(state.room));
  updateTitle();
  show('chat-view');
  $('composer').focus();
}

function onError(f) {
  const code = f.code;
  if (!state.joined && ['name_taken', 'bad_name', 'bad_room', 'room_full', 'too_many_rooms'].includes(code)) {
    const msg = {
      name_taken: state.everJoined
        ? `Someone else now uses the name “${state.name}” in this room. Choose another name.`
        : `Someone in this room already uses the name “${state.name}”.`,
      bad_name: 'Names have 1 to 32 printable characters.',
      bad_room: 'Room names have 1 to 64 printable characters.',
      room_full: 'This room is full.',
      too_many_rooms: 'The server has as many rooms as it allows; join an existing room or try later.',
    }[code];
    stopWith(msg, code === 'name_taken' || code === 'bad_name' ? 'name' : 'room');
    return;
  }
  switch (code) {
    case 'rate_limited':
      notice('The server says we are sending too fast; some frames were dropped.', 'error');
      return;
    case 'replaced':
      state.stopped = true;
      notice('This chat continues in another tab or connection; this one has stopped.', 'error');
      status('Stopped');
      setState('stopped');
      return;
    case 'shutting_down':
      notice('The server is restarting; reconnecting when it is back.');
      return;
    case 'server_full':
    case 'too_many_conns':
      notice('The server is busy (' + code.replace('_', ' ') + '); trying again shortly.', 'error');
      return;
    default: {
      const pending = f.ref && document.querySelector(`[data-ref="${Number(f.ref)}"]`);
      if (pending) pending.classList.add('failed');
      notice('Server: ' + (f.message || code), 'error');
    }
  }
}

function stopWith(msg, field) {
  state.stopped = true;
  state.joined = false;
  const ws = state.ws;
  state.ws = null;
  if (ws) ws.close(1000);
  stopHeartbeat();
  $('join').disabled = false;
  show('join-view');
  setState('join');
  $('join-error').textContent = msg;
  if (field) $(field).focus();
}

function onClose(ws, ev) {
  if (state.ws !== ws) return;
  state.ws = null;
  state.joined = false;
  stopHeartbeat();
  if (state.stopped) return;
  if (ev.code === 4000) return; // replaced: handled by the error frame
  if (!state.everJoined && state.attempt >= 2) {
    stopWith('Could not reach the server. Check the address and your connection, then try again.');
    return;
  }
  scheduleReconnect();
}

function scheduleReconnect() {
  const base = BACKOFF_MS[Math.min(state.attempt, BACKOFF_MS.length - 1)];
  const delay = Math.round(base * (0.8 + Math.random() * 0.4));
  state.attempt++;
  status(`Disconnected — reconnecting in ${Math.ceil(delay / 1000)} s`);
  setState('reconnecting');
  state.retryTimer = setTimeout(connect, delay);
}

function reconnectNow() {
  clearTimeout(state.retryTimer);
  connect();
}

function startHeartbeat() {
  stopHeartbeat();
  state.heartbeat = setInterval(() => {
    if (Date.now() - state.lastFrame > DEAD_AFTER_MS) {
      // Tor circuits can die without a close; don't wait for TCP to notice.
      const ws = state.ws;
      if (ws) { ws.onclose = null; ws.close(); onClose(ws, { code: 1006 }); }
      return;
    }
    if (takeToken()) send({ v: PROTOCOL, type: 'ping' });
  }, HEARTBEAT_MS);
}

function stopHeartbeat() {
  clearInterval(state.heartbeat);
  state.heartbeat = 0;
}

function leave() {
  state.stopped = true;
  clearTimeout(state.retryTimer);
  clearTimeout(state.flushTimer);
  stopHeartbeat();
  const ws = state.ws;
  state.ws = null;
  if (ws) ws.close(1000);
  forgetKey();
  state.outbox = [];
  state.inbox = [];
  state.joined = state.everJoined = false;
  state.resume = '';
  setMembers([]);
  $('messages').replaceChildren();
  state.unread = 0;
  updateTitle();
  show('join-view');
  setState('join');
  $('join-error').textContent = '';
  $('passphrase').focus();
}

// ---------------------------------------------------------------- members

function setMembers(names) {
  state.members = names.slice();
  renderMembers();
}

function onMemberJoin(f) {
  if (!state.members.includes(f.name)) state.members.push(f.name);
  renderMembers();
  if (!f.resumed) notice(`${f.name} joined.`);
}

function onMemberLeave(f) {
  state.members = state.members.filter((n) => n !== f.name);
  renderMembers();
  notice(`${f.name} left.`);
}

function renderMembers() {
  const ul = $('members');
  ul.replaceChildren(...state.members.map((n) => {
    const li = document.createElement('li');
    li.textContent = n;
    if (n === state.name) {
      li.classList.add('me');
      const you = document.createElement('span');
      you.className = 'tag';
      you.textContent = ' (you)';
      li.append(you);
    }
    return li;
  }));
  $('member-count').textContent = state.members.length ? `(${state.members.length})` : '';
}

// ---------------------------------------------------------------- messages

function onMsg(f) {
  if (!state.receiver) { state.inbox.push(f); return; }
  state.chain = state.chain.then(() => openAndShow(f));
}

async function openAndShow(f) {
  let env;
  try { env = fromBase64(f.body || ''); } catch { env = new Uint8Array(0); }
  const relayName = f.history ? undefined : f.from;
  try {
    const m = await state.receiver.open(env, relayName);
    addMessage(m.sender, m.text, m.time, { history: !!f.history, own: m.sender === state.name && f.history });
    if (document.hidden && !f.history) { state.unread++; updateTitle(); }
  } catch (e) {
    if (!(e instanceof DecryptError)) throw e;
    const who = f.from || 'someone';
    switch (e.kind) {
      case 'replay': return; // seen already (a backlog replayed after reconnecting)
      case 'key':
        notice(`⚠ A message from ${who} could not be read: ${who} uses a different passphrase, or the message was altered.`, 'error');
        return;
      case 'version':
        notice(`⚠ ${who} uses another version of onionchat (${e.message}). Everyone should reload the page.`, 'error');
        return;
      case 'sender':
        notice(`⚠ A message relayed as from ${who} ${e.message.replace(/^message /, '')}; it was not shown.`, 'error');
        return;
      default:
        notice(`⚠ A message from ${who} could not be read (${e.message}).`, 'error');
    }
  }
}

function sendComposer() {
  const box = $('composer');
  const text = box.value;
  if (!text.trim()) return;
  if (text.length > MAX_TEXT_CHARS) {
    notice(`Messages have at most ${MAX_TEXT_CHARS} characters.`, 'error');
    return;
  }
  box.value = '';
  const li = addMessage(state.name, text, Date.now(), { own: true, pending: true });
  state.outbox.push({ text, li });
  flushOutbox();
}

// The page keeps to the rate the hub announced, so that the hub never has to
// drop one of its messages; what cannot go now waits in the outbox, also
// across reconnects.
function takeToken() {
  const now = Date.now();
  const { rate, burst } = state.limits;
  state.tokens = Math.min(burst, state.tokens + ((now - state.tokenAt) / 1000) * rate);
  state.tokenAt = now;
  if (state.tokens >= 1) { state.tokens--; return true; }
  return false;
}

async function flushOutbox() {
  clearTimeout(state.flushTimer);
  state.flushTimer = 0;
  while (state.outbox.length && state.joined && state.sender && state.ws && state.ws.readyState === WebSocket.OPEN) {
    if (!takeToken()) {
      state.flushTimer = setTimeout(flushOutbox, Math.ceil(1000 / state.limits.rate));
      return;
    }
    const item = state.outbox.shift();
    const id = state.nextId++;
    try {
      const env = await state.sender.seal(item.text);
      if (!send({ v: PROTOCOL, type: 'msg', body: toBase64(env), id })) {
        state.outbox.unshift(item);
        return;
      }
      // Our own messages may come back in a room's backlog after a
      // reconnect; they are shown already.
      state.receiver.last.set(toHex(state.sender.id), state.sender.counter);
      item.li.classList.remove('pending');
      item.li.dataset.ref = String(id);
    } catch (e) {
      item.li.classList.add('failed');
      notice('Could not send: ' + e.message, 'error');
    }
  }
}

function addMessage(sender, text, time, opts = {}) {
  const li = document.createElement('li');
  li.className = 'msg';
  if (opts.own) li.classList.add('own');
  if (opts.pending) li.classList.add('pending');
  if (opts.history) li.classList.add('history');
  const head = document.createElement('div');
  head.className = 'head';
  const who = document.createElement('span');
  who.className = 'sender';
  who.textContent = sender;
  const when = document.createElement('time');
  const d = new Date(time);
  when.dateTime = isNaN(d) ? '' : d.toISOString();
  when.textContent = isNaN(d) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  head.append(who, ' ', when);
  if (opts.history) {
    const tag = document.createElement('span');
    tag.className = 'tag';
    tag.textContent = ' earlier';
    head.append(tag);
  }
  const body = document.createElement('div');
  body.className = 'text';
  body.textContent = text;
  li.append(head, body);
  append(li);
  return li;
}

function notice(text, kind) {
  const li = document.createElement('li');
  li.className = 'notice' + (kind ? ' ' + kind : '');
  li.textContent = text;
  append(li);
}

function append(li) {
  const ol = $('messages');
  const atEnd = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40;
  ol.append(li);
  while (ol.children.length > 2000) ol.firstElementChild.remove();
  if (atEnd) ol.scrollTop = ol.scrollHeight;
}

function status(text) { $('status').textContent = text; }

function updateTitle() {
  const base = state.everJoined ? `${state.room} — onionchat` : 'onionchat';
  document.title = state.unread ? `(${state.unread}) ${base}` : base;
}

init();
