// app.mjs: the onionchat page's connection and flow. It joins a room over
// the hub's WebSocket, makes the room secret from the passphrase
// (roomkey.mjs), hands every room event to this session's protocol version
// 2 state (group.mjs), sends what that state produces at the rate the hub
// allows, and shows what it reports (view.mjs). Reconnecting keeps the
// session's keys in memory; Leave forgets them.

import { deriveRoomKey } from './roomkey.mjs';
import { toBase64 } from './bytes.mjs';
import { Group, MAX_TEXT_CHARS } from './group.mjs';
import * as view from './view.mjs';

const $ = view.$;

const HEARTBEAT_MS = 20000;     // app-level ping: keeps Tor circuits busy, detects dead links
const DEAD_AFTER_MS = 50000;    // no frame for this long: the connection is dead, reconnect
const SWEEP_MS = 1000;          // how often waiting keys and messages are checked
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];
const PROTOCOL = 1;             // the relay frames' version (the envelope's is 2)
const MAX_CONTROL_REFS = 1000;

const state = {
  room: '',            // normalised room name
  name: '',            // our name, as the hub canonicalised it
  serverId: null,      // the server id the key was derived for
  key: null,           // room secret (non-extractable); kept in memory to rejoin after drops
  group: null,         // this session's version 2 state: our keys, chains, members
  ready: false,        // the group has had its welcome: room events go to it
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
  sweeper: 0,
  limits: { rate: 10, burst: 40 },
  tokens: 0,
  tokenAt: 0,
  outbox: [],          // {text, li}: typed, not yet encrypted
  wire: [],            // {body, to, tag}: encrypted frames in the order they must go out
  flushing: false,
  flushTimer: 0,
  control: new Set(),  // ids of key frames sent: their errors (a member gone) are not news
  inbox: [],           // room frames waiting for the key
  nextId: 1,
  unread: 0,
  members: [],         // the hub's member names, until the group can say more
};

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
    view.show('unsupported');
    view.setState('unsupported');
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
  view.show('join-view');
  view.setState('join');
  ($('room').value ? $('name') : $('room')).focus();
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
  forgetSession(); // a new submit is a new session: new passphrase key, new session keys
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

// forgetSession drops the room secret and this session's keys (the group
// zeroes its chain keys), and everything queued for them.
function forgetSession() {
  if (state.group) state.group.destroy();
  state.group = null;
  state.ready = false;
  state.key = null;
  state.serverId = null;
  state.pass = null;
  state.outbox = [];
  state.wire = [];
  state.inbox = [];
  clearInterval(state.sweeper);
  state.sweeper = 0;
}

function wsURL() {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
}

function connect() {
  clearTimeout(state.retryTimer);
  state.retryTimer = 0;
  view.status(state.everJoined ? 'Reconnecting…' : 'Connecting…');
  view.setState(state.everJoined ? 'reconnecting' : 'connecting');
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
    case 'msg':
    case 'join':
    case 'leave':
      return onRoomFrame(f);
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
  state.members = (f.members || []).slice();
  renderMembers();
  if (!state.group || state.serverId !== f.server) {
    if (state.pass === null) {
      // The server's identity changed (a new certificate or onion key):
      // the old key cannot read this room any more.
      stopWith('The server’s identity changed, so the room key must be made again. Enter the passphrase once more.');
      return;
    }
    if (state.group) forgetSession();
    view.status('Making the room key…');
    view.setState('deriving');
    try {
      const key = await deriveRoomKey(state.pass, f.server, state.room);
      const group = await Group.create({ roomKey: key, room: state.room, name: state.name });
      group.onFrame = onGroupFrame;
      group.onEvent = onGroupEvent;
      state.key = key;
      state.serverId = f.server;
      state.group = group;
      state.sweeper = setInterval(() => { if (state.group) state.group.sweep(); }, SWEEP_MS);
    } catch (e) {
      stopWith('Could not make the room key: ' + e.message);
      return;
    } finally {
      state.pass = null;
      $('passphrase').value = '';
    }
    if (!state.joined) return; // the connection dropped while the key was made: the next welcome goes on
  }
  // The welcome goes to the group before any frame that followed it.
  state.group.welcome({ members: state.members, history: Number(f.history) || 0 });
  state.ready = true;
  for (const g of state.inbox.splice(0)) toGroup(g);
  const first = !state.everJoined;
  state.everJoined = true;
  $('join').disabled = false;
  if (first) enterChat();
  view.notice(first ? `You joined “${state.room}” as ${state.name}.` : 'Reconnected.');
  view.status('Connected');
  view.setState('ready');
  flush();
}

function enterChat() {
  view.clearMessages();
  $('room-title').textContent = state.room;
  $('share').value = location.origin + '/#room=' + encodeURIComponent(state.room);
  view.myCode(state.group.code);
  history.replaceState(null, '', '#room=' + encodeURIComponent(state.room));
  renderMembers();
  updateTitle();
  view.show('chat-view');
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
  if (f.ref && state.control.has(Number(f.ref))) return; // keys for someone who has just left
  switch (code) {
    case 'rate_limited':
      view.notice('The server says we are sending too fast; some frames were dropped.', 'error');
      return;
    case 'replaced':
      state.stopped = true;
      view.notice('This chat continues in another tab or connection; this one has stopped.', 'error');
      view.status('Stopped');
      view.setState('stopped');
      return;
    case 'shutting_down':
      view.notice('The server is restarting; reconnecting when it is back.');
      return;
    case 'server_full':
    case 'too_many_conns':
      view.notice('The server is busy (' + code.replace('_', ' ') + '); trying again shortly.', 'error');
      return;
    default: {
      const pending = f.ref && document.querySelector(`[data-ref="${Number(f.ref)}"]`);
      if (pending) pending.classList.add('failed');
      view.notice('Server: ' + (f.message || code), 'error');
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
  view.show('join-view');
  view.setState('join');
  $('join-error').textContent = msg;
  if (field) $(field).focus();
}

function onClose(ws, ev) {
  if (state.ws !== ws) return;
  state.ws = null;
  state.joined = false;
  state.ready = false;
  state.inbox = []; // frames of a connection whose welcome never reached the group: the next welcome says it all
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
  view.status(`Disconnected — reconnecting in ${Math.ceil(delay / 1000)} s`);
  view.setState('reconnecting');
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
  forgetSession();
  state.joined = state.everJoined = false;
  state.resume = '';
  state.members = [];
  renderMembers();
  view.myCode('');
  view.clearMessages();
  state.unread = 0;
  updateTitle();
  view.show('join-view');
  view.setState('join');
  $('join-error').textContent = '';
  $('passphrase').focus();
}

// ---------------------------------------------------------------- room events

function onRoomFrame(f) {
  if (f.type === 'join') {
    if (!state.members.includes(f.name)) state.members.push(f.name);
    if (!f.resumed) view.notice(`${f.name} joined.`);
  } else if (f.type === 'leave') {
    state.members = state.members.filter((n) => n !== f.name);
    view.notice(`${f.name} left.`);
  }
  if (!state.ready) {
    state.inbox.push(f);
    renderMembers();
    return;
  }
  toGroup(f);
}

function toGroup(f) {
  const g = state.group;
  switch (f.type) {
    case 'msg': return g.receive(f);
    case 'join': return g.join(f.name, !!f.resumed);
    case 'leave': return g.leave(f.name);
  }
}

function onGroupEvent(ev) {
  switch (ev.type) {
    case 'message':
      view.addMessage(ev.sender, ev.text, ev.time, { history: ev.history });
      if (document.hidden && !ev.history) { state.unread++; updateTitle(); }
      return;
    case 'notice':
      view.notice(ev.text, ev.level === 'error' ? 'error' : undefined);
      return;
    case 'members':
      renderMembers();
  }
}

function renderMembers() {
  if (state.group && state.ready) {
    view.members(state.group.memberList());
  } else {
    view.members(state.members.map((name) => ({ name, self: name === state.name, code: '', status: name === state.name ? 'ok' : 'waiting', changed: false })));
  }
}

// ---------------------------------------------------------------- sending

function sendComposer() {
  const box = $('composer');
  const text = box.value;
  if (!text.trim()) return;
  if (text.length > MAX_TEXT_CHARS) {
    view.notice(`Messages have at most ${MAX_TEXT_CHARS} characters.`, 'error');
    return;
  }
  box.value = '';
  const li = view.addMessage(state.name, text, Date.now(), { own: true, pending: true });
  state.outbox.push({ text, li });
  flush();
}

// onGroupFrame receives every frame the group makes (hellos, keys and our
// messages) in the order they must reach the others.
function onGroupFrame(fr) {
  state.wire.push({ body: toBase64(fr.body), to: fr.to, tag: fr.tag });
  flush();
}

// The page keeps to the rate the hub announced, so that the hub never has to
// drop one of its frames; what cannot go now waits, also across reconnects.
function takeToken() {
  const now = Date.now();
  const { rate, burst } = state.limits;
  state.tokens = Math.min(burst, state.tokens + ((now - state.tokenAt) / 1000) * rate);
  state.tokenAt = now;
  if (state.tokens >= 1) { state.tokens--; return true; }
  return false;
}

function canSend() {
  return state.joined && state.ready && state.ws && state.ws.readyState === WebSocket.OPEN;
}

// flush sends what the group has made, and encrypts the next typed message
// only when nothing else waits, so that it goes under the newest chain.
async function flush() {
  if (state.flushing) return;
  state.flushing = true;
  clearTimeout(state.flushTimer);
  state.flushTimer = 0;
  try {
    while (canSend()) {
      if (!state.wire.length) {
        if (!state.outbox.length) break;
        const item = state.outbox.shift();
        try {
          await state.group.seal(item.text, item); // comes back through onGroupFrame
        } catch (e) {
          item.li.classList.add('failed');
          view.notice('Could not send: ' + e.message, 'error');
        }
        continue;
      }
      if (!takeToken()) {
        state.flushTimer = setTimeout(flush, Math.ceil(1000 / state.limits.rate));
        break;
      }
      const fr = state.wire[0];
      const id = state.nextId++;
      const f = { v: PROTOCOL, type: 'msg', body: fr.body, id };
      if (fr.to) f.to = fr.to;
      if (!send(f)) break;
      state.wire.shift();
      if (fr.tag) {
        fr.tag.li.classList.remove('pending');
        fr.tag.li.dataset.ref = String(id);
      } else {
        state.control.add(id);
        if (state.control.size > MAX_CONTROL_REFS) state.control.delete(state.control.values().next().value);
      }
    }
  } finally {
    state.flushing = false;
  }
}

function updateTitle() { view.title(state.everJoined ? state.room : '', state.unread); }

init();
