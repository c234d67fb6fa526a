// app.mjs: the page's wiring. It reads the forms, hands them to a Session
// (session.mjs: the connection, the room's keys and every message's fate)
// and draws what the session reports (view.mjs). No protocol lives here.

import { Session } from './session.mjs';
import { Group } from './group.mjs';
import { deriveRoom } from './roomkey.mjs';
import * as keystore from './keystore.mjs';
import { supported } from './identity.mjs';
import * as view from './view.mjs';
import { NotCleanable } from './strip.mjs';

const $ = view.$;

let session = null;
let room = '';      // the room's name as shown, once in it
let typedRoom = ''; // what the room field held at Join
let unread = 0;
const sent = new Map(); // session item -> its <li>
const transfers = new Map(); // file transfer -> its <li>
let notify = false; // desktop notifications, once the person asked and the browser allowed

// unsupportedReason says what this browser lacks, as a code of view.TEXT.
async function unsupportedReason() {
  if (!window.isSecureContext || !window.crypto || !window.crypto.subtle) return 'not-secure';
  if (!('WebSocket' in window)) return 'no-websocket';
  return (await supported()) ? '' : 'no-25519';
}

async function init() {
  $('loading').hidden = true;
  const why = await unsupportedReason();
  if (why) {
    $('unsupported-why').textContent = view.TEXT.unsupported[why];
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
  $('attach').addEventListener('click', () => $('file').click());
  $('file').addEventListener('change', (e) => { sendFiles(e.target.files); e.target.value = ''; });
  $('composer').addEventListener('paste', (e) => {
    if (e.clipboardData && e.clipboardData.files.length) { e.preventDefault(); sendFiles(e.clipboardData.files); }
  });
  const chat = $('chat-view');
  chat.addEventListener('dragover', (e) => { if (session) { e.preventDefault(); chat.classList.add('dropping'); } });
  chat.addEventListener('dragleave', () => chat.classList.remove('dropping'));
  chat.addEventListener('drop', (e) => {
    chat.classList.remove('dropping');
    if (session && e.dataTransfer && e.dataTransfer.files.length) { e.preventDefault(); sendFiles(e.dataTransfer.files); }
  });
  $('notify').addEventListener('click', askNotifications);
  $('members-toggle').addEventListener('click', () => view.toggleSide());
  $('share').addEventListener('focus', (e) => e.target.select());
  document.addEventListener('visibilitychange', () => { if (!document.hidden) { unread = 0; updateTitle(); } });
  if (!('Notification' in window)) {
    $('notify').disabled = true;
    $('notify-note').textContent = view.TEXT.notify.none;
  }
  window.addEventListener('hashchange', fillRoomFromHash);
  window.addEventListener('online', () => { if (session) session.reconnectNow(); });
  keystore.kept().then((k) => { $('keep-code').checked = !!k; });
  fillRoomFromHash();
  view.show('join-view');
  view.setState('join');
  ($('room').value ? $('name') : $('room')).focus();
}

// A room link carries the room in the fragment (#room=NAME), which browsers
// never send to the server. A passphrase is never read from a link.
function fillRoomFromHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const r = p.get('room');
  if (r && !session) $('room').value = r;
}

async function onJoinSubmit(e) {
  e.preventDefault();
  const err = $('join-error');
  err.textContent = '';
  const pass = $('passphrase').value;
  // The passphrase leaves the form at once: only the session holds it,
  // until the room keys exist.
  $('passphrase').value = '';
  let signing;
  if ($('keep-code').checked) {
    try { signing = await keystore.keep(); } catch (x) { err.textContent = view.TEXT.cannotKeep(x.message); return; }
  } else {
    await keystore.forget();
  }
  if (session) session.leave();
  session = new Session({
    url: (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws',
    connect: (url) => new WebSocket(url),
    derive: deriveRoom,
    makeGroup: (opts) => Group.create(opts),
    signing,
    onEvent,
  });
  typedRoom = $('room').value.trim();
  const bad = session.start({ room: $('room').value, name: $('name').value, passphrase: pass });
  if (bad) {
    session = null;
    err.textContent = view.formError(bad);
    $(bad.field).focus();
    return;
  }
  $('join').disabled = true;
}

function onEvent(ev) {
  switch (ev.type) {
    case 'status':
      view.status(view.TEXT.status(ev.state, ev.retryIn));
      view.setState(ev.state);
      return;
    case 'joined': return enterChat(ev);
    case 'stopped': return stopped(ev);
    case 'message':
      view.addMessage(ev);
      if (!ev.old) arrived(ev.sender, ev.text);
      return;
    case 'outgoing-file':
    case 'incoming-file': {
      const t = ev.transfer;
      let li = transfers.get(t);
      if (!li) {
        const own = ev.type === 'outgoing-file';
        li = view.fileItem(t, {
          sender: own ? session.name : t.sender, time: own ? Date.now() : t.time,
          code: own ? (session.group ? session.group.code : '') : t.code, changed: !own && t.changed,
          onCancel: () => { if (session) session.cancelFile(t); },
        });
        transfers.set(t, li);
        if (!own) arrived(t.sender, `a file: ${t.name}`);
      }
      view.updateFile(li, t, ev.progress);
      // Ours stay until every member is accounted for (delivered, or who
      // did not get it); theirs once they end.
      if (!['offering', 'sending', 'receiving'].includes(t.state) && (t.incoming || t.delivery || t.state === 'cancelled')) transfers.delete(t);
      return;
    }
    case 'members':
      view.members(ev.list);
      view.alone(ev.alone);
      return;
    case 'outgoing': {
      const li = sent.get(ev.item);
      if (li) view.delivery(li, ev.item);
      if (['delivered', 'partly', 'nobody', 'failed', 'unknown'].includes(ev.item.state)) sent.delete(ev.item);
      return;
    }
  }
  const w = view.words(ev);
  if (w) view.notice(w[1], w[0] === 'error' ? 'error' : undefined);
}

function enterChat(ev) {
  // The room is shown as typed (its key uses a normalised form, ev.room).
  room = typedRoom || ev.room;
  view.clearMessages();
  view.toggleSide(false);
  $('room-title').textContent = room;
  view.checkCode(ev.check);
  $('share').value = location.origin + '/#room=' + encodeURIComponent(room);
  view.myCode(ev.code);
  history.replaceState(null, '', '#room=' + encodeURIComponent(room));
  updateTitle();
  $('join').disabled = false;
  view.show('chat-view');
  view.notice(view.TEXT.joined(room, ev.name));
  $('composer').focus();
}

// stopped: the session ended on its own (a refused join, a changed server,
// a page of another version). Back to the form, which holds no passphrase.
function stopped(ev) {
  session = null;
  $('join').disabled = false;
  if (ev.first || ev.field) {
    view.show('join-view');
    view.setState('join');
    $('join-error').textContent = view.stopWords(ev);
    $(ev.field || 'passphrase').focus();
    return;
  }
  view.notice(view.stopWords(ev), 'error');
  view.status(view.TEXT.status('stopped'));
}

function leave() {
  if (session) session.leave();
  session = null;
  sent.clear();
  transfers.clear();
  view.members([]);
  view.alone(false);
  view.myCode('');
  view.checkCode('');
  view.clearMessages();
  unread = 0;
  room = '';
  updateTitle();
  view.show('join-view');
  view.setState('join');
  $('join-error').textContent = '';
  $('passphrase').focus();
}

function sendComposer() {
  if (!session) return;
  const box = $('composer');
  const text = box.value;
  const item = session.send(text);
  if (!item) return;
  box.value = '';
  sent.set(item, view.addMessage({ sender: session.name, text, time: item.time, own: true, code: session.group ? session.group.code : '' }));
}

// sendFiles offers each file to the room (pictures are cleaned of their
// location and camera data first, in files.mjs). A photo the page cannot
// clean is not sent unless the sender then chooses to send it as a file.
async function sendFiles(list) {
  for (const f of [...list]) {
    if (!session) return;
    const fail = (e) => view.notice(`“${f.name}” was not sent: ${view.notSentWords(e)}.`, 'error');
    try {
      const file = { name: f.name, type: f.type, bytes: new Uint8Array(await f.arrayBuffer()) };
      await session.sendFile(file).catch((e) => {
        if (!(e instanceof NotCleanable)) throw e;
        view.askSendAsFile(f.name, e.format, () => {
          if (session) session.sendFile({ ...file, asFile: true }).catch(fail);
        });
      });
    } catch (e) {
      fail(e);
    }
  }
}

// arrived counts what came while the page was hidden (title and icon),
// and raises a desktop notification if the person asked for them: "new
// message in ROOM", with who and what only if they ticked the box.
function arrived(sender, text) {
  if (!document.hidden) return;
  unread++;
  updateTitle();
  if (!notify) return;
  const detail = $('notify-detail').checked;
  try {
    new Notification('onionchat', { body: view.TEXT.notify.body(detail, sender, text, room), tag: 'onionchat', silent: false });
  } catch { /* the browser changed its mind */ }
}

async function askNotifications() {
  let p = Notification.permission;
  if (p !== 'granted') p = await Notification.requestPermission();
  notify = p === 'granted';
  $('notify-note').textContent = notify ? view.TEXT.notify.on : view.TEXT.notify.refused;
  $('notify').textContent = notify ? view.TEXT.notify.button.on : view.TEXT.notify.button.off;
}

function updateTitle() { view.title(room, unread); view.badge(unread); }

init();
