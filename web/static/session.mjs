// session.mjs: one person in one room, over the relay's WebSocket, with no
// DOM (docs/protocol.md §1–§4, §11). It owns the connection and everything
// about it: joining (the server frame, the room keys, the join), resuming
// after a drop, the catch-up, the typed messages and what became of each
// (sent, then what the group's acknowledgements say: delivered, waiting,
// reached nobody), resending what a drop or a server restart lost, the
// group's commits and GroupInfo to and from the relay, keeping to the
// relay's rate, and the order in which frames leave. The room's keys and
// rules are group.mjs's; what it shows is app.mjs's. Tests drive it with a
// fake socket and clock (web/jstest/session.test.mjs).

import { toBase64 } from './bytes.mjs';
import { normRoom } from './roomkey.mjs';
import { prepareName } from './names.mjs';
import { MAX_TEXT_CHARS } from './group.mjs';
import { maxBucketFor } from './envelope.mjs';
import { Transfers } from './files.mjs';

export const PROTOCOL = 2;              // the relay frames' version (the envelopes' is 3)
// Liveness: the page pings when it has sent or heard nothing for one of
// the relay's ping intervals (limits.ping, 20 s by default), which keeps
// Tor circuits busy and brings a pong back; nothing received for
// DEAD_AFTER intervals means the link is dead (a Tor circuit can die
// without a close), and the page reconnects.
export const DEAD_AFTER = 2.5;
export const MIN_HEARTBEAT_MS = 1000;
export const CONNECT_TIMEOUT_MS = 15000; // a new connection whose server frame has not come by then is given up (at least 2.5 pings)
export const SWEEP_MS = 1000;           // how often the group's timers run
export const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];
export const FIRST_ATTEMPTS = 4;        // a first join gives up after this many failed connections (about 15 s)
export const CLOSE_RECONNECTING = 4001; // "I will be back": the relay keeps the session away, not gone
export const MAX_BULK = 64;             // acknowledgements waiting; beyond, the oldest goes (the next one says it all)
export const MAX_ORDERED = 256;         // ordered frames waiting (commits, GroupInfo, messages)
export const MAX_OUTBOX = 200;          // typed messages waiting to be encrypted
export const MAX_RESEND = 500;          // sent frames kept until the relay confirms them
export const BULK_FRAME_RESERVE = 2;    // frame tokens a file's chunks leave for chat and acknowledgements
export const BULK_BYTE_RESERVE = 8192;  // bytes likewise
export const BULK_BUFFERED_RETRY_MS = 100; // a chunk waits this long while the browser has not sent the last ones

// The join's errors that end the attempt, and the field they concern.
const JOIN_ERRORS = {
  name_taken: 'name', bad_name: 'name', name_confusable: 'name',
  bad_room: 'room', room_full: 'room', too_many_rooms: 'room', join_rate: 'room',
};

export class Session {
  // connect(url) returns a WebSocket (or a test's stand-in); derive(pass,
  // serverId, room) the room keys (roomkey.deriveRoom); makeGroup(opts) a
  // Group; onEvent receives everything the page shows.
  constructor({ url, connect, derive, makeGroup, signing, now, setTimer, clearTimer, setRepeat, clearRepeat, random, onEvent }) {
    this.url = url;
    this.connect = connect;
    this.derive = derive;
    this.makeGroup = makeGroup;
    this.signing = signing;
    this.now = now || (() => Date.now());
    this.setTimer = setTimer || ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = clearTimer || ((t) => clearTimeout(t));
    this.setRepeat = setRepeat || ((fn, ms) => setInterval(fn, ms));
    this.clearRepeat = clearRepeat || ((t) => clearInterval(t));
    this.random = random || Math.random;
    this.onEvent = onEvent || (() => {});
    this.reset();
  }

  reset() {
    this.room = '';
    this.name = '';
    this.pass = null;        // the passphrase, only from start until the keys exist
    this.keys = null;        // {roomId, frameKey, checkCode}
    this.serverId = null;
    this.group = null;
    this.ws = null;
    this.joined = false;     // joined on the current connection
    this.everJoined = false;
    this.stopped = true;
    this.sid = '';
    this.resume = '';
    this.since = 0;          // the highest room seq received in this relay session
    this.catchupLeft = 0;
    this.attempt = 0;
    this.retryTimer = 0;
    this.lastFrame = 0;
    this.lastSent = 0;
    this.heartbeat = 0;
    this.sweeper = 0;
    this.limits = { rate: 10, burst: 40, frame: 65536, window: 180000, ping: 20000, bytes: 192 << 10, file: 10 << 20 };
    this.tokens = 0;
    this.tokenAt = 0;
    this.byteTokens = 0;
    this.byteAt = 0;
    this.files = null;       // Transfers, with the group
    this.ordered = [];       // group frames {type, body, kind, tag?, ...}: in the order made
    this.bulk = [];          // the group's acknowledgements (bulk frames, never kept)
    this.outbox = [];        // typed messages not yet encrypted
    this.lastLane = '';
    this.flushing = false;
    this.flushTimer = 0;
    this.nextId = 1;
    this.unsent = new Map();    // frame id -> entry: room messages sent, no `sent` yet
    this.undelivered = new Map(); // frame id -> entry: `sent` came, the group has not said delivered yet
    this.commits = new Map();   // frame id -> the group's token of a commit sent, no answer yet
    this.localId = 1;
    this.requeuing = false;
    this.work = new Set();
    this.sendWaiters = [];   // offers waiting for the group to be able to send
  }

  // ---------------------------------------------------------------- public

  // start joins room as name with passphrase; it returns what is wrong for
  // the form ({field, what}: view.mjs words it), or null if it started.
  start({ room, name, passphrase }) {
    const r = normRoom(room || '');
    const n = prepareName(name || '');
    if (!r) return { field: 'room', what: 'no-room' };
    if (n.error) return { field: 'name', what: 'name', why: n.error };
    if (!passphrase) return { field: 'passphrase', what: 'no-passphrase' };
    this.stop();
    this.reset();
    this.room = r;
    this.name = n.name;
    this.pass = passphrase;
    this.stopped = false;
    this.open();
    return null;
  }

  // send queues typed text; it returns the item whose state changes are
  // reported as {type: "outgoing", item}, or null with a notice.
  send(text) {
    if (!text.trim()) return null;
    if (text.length > MAX_TEXT_CHARS) {
      this.note('too-long', { max: MAX_TEXT_CHARS });
      return null;
    }
    if (this.outbox.length >= MAX_OUTBOX) {
      this.note('outbox-full');
      return null;
    }
    const item = { localId: this.localId++, text, state: 'queued', time: this.now() };
    this.outbox.push(item);
    this.flush();
    return item;
  }

  // sendFile offers a file {name, type, bytes} to the room; it resolves to
  // the transfer (reported as {type: "outgoing-file"}) or rejects with why.
  sendFile(file) {
    return this.track((async () => {
      if (!this.files) throw new Error('not in a room yet');
      // An offer, like a typed message, waits until the group may send.
      for (let i = 0; !(this.group && this.group.canSend()); i++) {
        if (this.stopped || !this.files) throw new Error('not in a room');
        await new Promise((r) => { this.sendWaiters.push(r); });
      }
      const t = await this.files.offer(file);
      this.flush();
      return t;
    })());
  }

  cancelFile(t) {
    if (this.files) this.track(this.files.cancel(t)).then(() => this.flush());
  }

  // leave ends the session: the relay hears it (close 1000) and the keys
  // are forgotten.
  leave() {
    this.stop();
    this.reset();
    this.emit({ type: 'status', state: 'left' });
  }

  // stats is what tests and the page's debugging read.
  stats() {
    return { ordered: this.ordered.length, bulk: this.bulk.length, outbox: this.outbox.length, unsent: this.unsent.size, undelivered: this.undelivered.size };
  }

  // ---------------------------------------------------------------- connection

  open() {
    this.clearTimer(this.retryTimer);
    this.retryTimer = 0;
    this.status(this.everJoined ? 'reconnecting' : 'connecting');
    let ws;
    try {
      ws = this.connect(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.joined = false;
    this.heard = false;
    // A link that hangs before the relay says anything (a silent network,
    // a Tor circuit that never completes) is given up too.
    this.clearTimer(this.connectTimer);
    this.connectTimer = this.setTimer(() => {
      if (this.ws === ws && !this.heard) {
        ws.onclose = null;
        try { ws.close(CLOSE_RECONNECTING); } catch { /* */ }
        this.onClose(ws, { code: 1006 });
      }
    }, Math.max(CONNECT_TIMEOUT_MS, DEAD_AFTER * this.limits.ping));
    ws.onopen = () => { this.lastFrame = this.now(); this.startHeartbeat(); };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastFrame = this.now();
      let f;
      try { f = JSON.parse(ev.data); } catch { return; }
      this.onFrame(f);
    };
    ws.onclose = (ev) => this.onClose(ws, ev);
  }

  raw(f) {
    const ws = this.ws;
    if (ws && ws.readyState === 1) {
      const data = JSON.stringify(f);
      ws.send(data);
      this.lastSent = this.now();
      this.haveBytes(0);
      this.byteTokens -= data.length;
      return true;
    }
    return false;
  }

  stop() {
    this.stopped = true;
    if (this.sendWaiters) for (const r of this.sendWaiters.splice(0)) r();
    this.clearTimer(this.retryTimer);
    this.clearTimer(this.flushTimer);
    this.clearTimer(this.connectTimer);
    this.clearRepeat(this.heartbeat);
    this.clearRepeat(this.sweeper);
    this.heartbeat = this.sweeper = 0;
    const ws = this.ws;
    this.ws = null;
    if (ws) { ws.onclose = null; try { ws.close(1000); } catch { /* closed already */ } }
    if (this.files) this.files.destroy();
    this.files = null;
    if (this.group) this.group.destroy();
    this.group = null;
    this.keys = null;
    this.pass = null;
  }

  onClose(ws, ev) {
    if (this.ws !== ws) return;
    this.ws = null;
    this.joined = false;
    this.clearRepeat(this.heartbeat);
    this.heartbeat = 0;
    if (this.stopped) return;
    if (ev && ev.code === 4000) return; // replaced: the error frame said so
    if (!this.everJoined && this.attempt >= FIRST_ATTEMPTS) {
      this.fail('unreachable');
      return;
    }
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    const delay = Math.round(base * (0.8 + this.random() * 0.4));
    this.attempt++;
    this.emit({ type: 'status', state: 'reconnecting', retryIn: delay });
    this.retryTimer = this.setTimer(() => this.open(), delay);
  }

  reconnectNow() {
    if (this.stopped || this.ws) return;
    this.open();
  }

  startHeartbeat() {
    this.clearRepeat(this.heartbeat);
    const every = this.limits.ping;
    this.heartbeat = this.setRepeat(() => {
      if (this.now() - this.lastFrame > DEAD_AFTER * every) {
        // Tor circuits can die without a close; don't wait for TCP to notice.
        const ws = this.ws;
        if (ws) { ws.onclose = null; try { ws.close(CLOSE_RECONNECTING); } catch { /* */ } this.onClose(ws, { code: 1006 }); }
        return;
      }
      // Ping when we have heard nothing for an interval (a page sending a
      // file hears nothing else, and browsers hide the relay's own pings),
      // or sent nothing (to keep a Tor circuit busy).
      const quiet = this.now() - this.lastFrame >= every || this.now() - this.lastSent >= every;
      if (this.joined && quiet && this.now() - (this.pingAt || 0) >= every && this.takeToken()) {
        this.pingAt = this.now();
        this.raw({ v: PROTOCOL, type: 'ping' });
      }
    }, Math.max(MIN_HEARTBEAT_MS, every / 2));
  }

  // ---------------------------------------------------------------- frames from the relay

  // track keeps an asynchronous step in work, so that tests can wait for
  // the session to be idle.
  track(p) {
    this.work.add(p);
    p.finally(() => this.work.delete(p));
    return p;
  }

  onFrame(f) {
    switch (f.type) {
      case 'server': return this.track(this.onServer(f));
      case 'welcome': return this.track(this.onWelcome(f));
      case 'msg': return this.onMsg(f);
      case 'join': case 'away': case 'back': case 'leave': return this.onPresence(f);
      case 'sent': return this.onSent(f);
      case 'info': if (this.joined && this.group) this.group.onInfo(f.body); return undefined;
      case 'error': return this.onError(f);
      case 'pong': return undefined;
    }
    return undefined;
  }

  setLimits(l) {
    if (!l) return;
    this.limits = {
      rate: Number(l.rate) > 0 ? Number(l.rate) : 10,
      burst: Number(l.burst) > 0 ? Number(l.burst) : 40,
      frame: Number(l.frame) > 0 ? Number(l.frame) : 65536,
      window: Number(l.window) > 0 ? Number(l.window) : 180000,
      ping: Math.max(MIN_HEARTBEAT_MS, Number(l.ping) > 0 ? Number(l.ping) : 20000),
      bytes: Number(l.bytes) > 0 ? Number(l.bytes) : 192 << 10,
      file: Number(l.file) > 0 ? Number(l.file) : 10 << 20,
    };
    if (this.files) this.files.setLimits(this.limits);
  }

  async onServer(f) {
    const ws = this.ws;
    this.heard = true;
    this.setLimits(f.limits);
    this.startHeartbeat(); // at the relay's ping interval
    this.tokens = Math.max(0, this.limits.burst - 1); // keep one for a ping
    this.tokenAt = this.now();
    this.byteTokens = this.byteBurst();
    this.byteAt = this.now();
    if (!this.keys || this.serverId !== f.server) {
      if (this.pass === null) {
        // The server's identity changed (a new certificate or onion key):
        // the old keys cannot find this room any more.
        this.fail('server-changed', 'passphrase');
        return;
      }
      this.status('deriving');
      try {
        this.keys = await this.derive(this.pass, f.server, this.room);
        this.serverId = f.server;
        if (!this.group) {
          this.group = await this.makeGroup({ keys: this.keys, signing: this.signing, maxBucket: maxBucketFor(this.limits.frame) });
          this.group.onFrame = (fr) => this.onGroupFrame(fr);
          this.group.onEvent = (ev) => this.onGroupEvent(ev);
          this.files = new Transfers({ group: this.group, now: this.now, onEvent: (ev) => this.emit(ev) });
          this.files.setLimits(this.limits);
          this.sweeper = this.setRepeat(() => {
            if (this.group) this.group.sweep();
            if (this.files) this.files.sweep();
            this.flush();
          }, SWEEP_MS);
        }
      } catch (e) {
        this.fail('no-key', '', '', { error: String(e && e.message) });
        return;
      } finally {
        this.pass = null; // the keys exist, or it failed: either way it goes
      }
      if (this.ws !== ws || this.stopped) return; // dropped meanwhile: the next server frame goes on
    }
    const join = { v: PROTOCOL, type: 'join', room: this.keys.roomId, name: this.name };
    if (this.resume) { join.resume = this.resume; join.since = this.since; }
    this.status('joining');
    this.takeToken();
    this.raw(join);
  }

  async onWelcome(f) {
    const resumed = f.resumed === true && f.sid === this.sid;
    if (!resumed) this.since = 0; // a new relay session: its seqs start anew
    this.joined = true;
    this.attempt = 0;
    this.resume = f.resume || '';
    this.sid = f.sid;
    this.name = f.you;
    this.setLimits(f.limits);
    this.group.setLimits({ maxBucket: maxBucketFor(this.limits.frame) });
    const first = !this.everJoined;
    this.everJoined = true;
    this.catchupLeft = Math.max(0, Number(f.catchup) | 0);
    this.requeuing = true; // typed messages wait until what a drop lost is queued again
    // Commits sent on the connection that dropped are the group's to settle
    // (the relay's GroupInfo says whether they were taken); never resent.
    this.commits.clear();
    this.ordered = this.ordered.filter((fr) => fr.type === 'msg');
    const welcomed = this.group.welcome({ you: f.you, sid: f.sid, members: Array.isArray(f.members) ? f.members : [], resumed, info: f.info });
    if (this.catchupLeft === 0) this.group.caughtUp();
    if (Number(f.gap) > 0) {
      this.note('gap', { count: Number(f.gap) });
    }
    if (first) this.emit({ type: 'joined', room: this.room, name: this.name, code: this.group.code, check: this.keys.checkCode });
    else this.emit({ type: 'reconnected' });
    if (!first && !resumed && this.files) this.files.restarted();
    this.status('ready');
    const group = this.group;
    await welcomed; // the group's new hello, if any, is queued first
    if (this.group !== group) return;
    this.requeue(resumed);
    this.requeuing = false;
    this.flush();
  }

  onMsg(f) {
    if (!this.joined || !this.group) return;
    if (Number.isSafeInteger(f.seq) && f.seq > this.since) this.since = f.seq;
    this.group.receive(f);
    if (f.old && this.catchupLeft > 0 && --this.catchupLeft === 0) this.group.caughtUp();
  }

  onPresence(f) {
    if (!this.joined || !this.group) return;
    const ev = { name: f.name, sid: f.sid };
    switch (f.type) {
      case 'join': this.group.join(ev); this.resendUnheard(f.name); break;
      case 'away': this.group.away(ev); break;
      case 'back': this.group.back(ev); break;
      case 'leave': this.group.leave(ev); break;
    }
  }

  // onSent: the relay took a frame of ours. For a commit, that means it won
  // its epoch; for a room message, it is on its way ("sent"), and what
  // became of it the group's acknowledgements say.
  onSent(f) {
    const token = this.commits.get(f.id);
    if (token) {
      this.commits.delete(f.id);
      if (this.group) this.track(this.group.commitResult(token, { ok: true, seq: f.seq }));
      return;
    }
    const e = this.unsent.get(f.id);
    if (!e) return;
    this.unsent.delete(f.id);
    if (e.item && (e.item.state === 'sending' || e.item.state === 'queued')) this.update(e.item, 'sent');
    if (!e.done) this.undelivered.set(f.id, e);
    // Relayed to nobody while the group has others (all away from a
    // restarted relay): the relay kept none of it.
    if (f.to === 0 && this.group && this.group.others().length > 0) e.unheard = true;
  }

  onError(f) {
    const code = f.code;
    if (!this.joined && JOIN_ERRORS[code]) {
      if (code === 'join_rate' && this.everJoined) {
        // Rejoining too fast after a drop: try again shortly.
        const ws = this.ws;
        this.ws = null;
        if (ws) { ws.onclose = null; try { ws.close(CLOSE_RECONNECTING); } catch { /* */ } }
        this.scheduleReconnect();
        return;
      }
      this.fail(code === 'name_taken' && this.everJoined ? 'name-taken-now' : 'refused', JOIN_ERRORS[code], code,
        { name: this.name, message: f.message || '' });
      return;
    }
    switch (code) {
      case 'bad_version':
        this.fail('newer-version');
        return;
      case 'rate_limited':
        this.note('rate-limited');
        return;
      case 'replaced':
        this.stopped = true;
        this.note('replaced');
        this.status('stopped');
        return;
      case 'shutting_down':
        this.note('restarting');
        return;
      case 'evicted':
      case 'server_full':
      case 'too_many_conns':
        // Before a first join, trying again would be refused again: stop
        // and say why (the page words it by code).
        if (!this.everJoined) { this.fail('refused', '', code, { message: f.message || '' }); return; }
        this.note('busy', { code });
        return;
      case 'commit_conflict': {
        const token = this.commits.get(f.ref);
        if (token) {
          this.commits.delete(f.ref);
          if (this.group) this.track(this.group.commitResult(token, { ok: false }).then(() => this.flush()));
        }
        return;
      }
      default: {
        const e = f.ref && this.unsent.get(f.ref);
        if (e && e.item) { this.unsent.delete(f.ref); this.update(e.item, 'failed'); }
        if (!e) this.note('server-error', { code, message: f.message || '' });
      }
    }
  }

  // fail stops, saying why (what: a code view.mjs words, with the
  // relay's code and words if it refused something) for the join form: the
  // keys and the passphrase are forgotten, and the person starts again.
  fail(what, field, code, extra = {}) {
    const first = !this.everJoined;
    this.stop();
    this.emit({ type: 'stopped', what, field: field || '', code: code || '', first, ...extra });
    this.reset();
  }

  // ---------------------------------------------------------------- from the group

  onGroupFrame(fr) {
    const f = { type: fr.type, kind: fr.kind, tag: fr.tag, token: fr.token, epoch: fr.epoch, over: fr.over };
    if (fr.body) f.body = toBase64(fr.body);
    if (fr.info) f.info = toBase64(fr.info);
    if (fr.bulk) {
      this.bulk.push(f);
      if (this.bulk.length > MAX_BULK) this.bulk.shift();
    } else {
      this.ordered.push(f);
      if (this.ordered.length > MAX_ORDERED) {
        // Only a relay that never takes our frames gets here: say so.
        const lost = this.ordered.shift();
        if (lost.tag) this.update(lost.tag, 'failed');
      }
    }
    this.flush();
  }

  onGroupEvent(ev) {
    switch (ev.type) {
      case 'members':
        if (this.group) this.emit({ type: 'members', list: this.group.memberList(), alone: this.group.alone() });
        return;
      case 'delivery': return this.onDelivery(ev);
      case 'resend': return this.resend(ev.tags);
      case 'file-offer': if (this.files) this.track(this.files.onOffer(ev)); return;
      case 'chunk': if (this.files) this.track(this.files.onChunk(ev)); return;
      case 'file-cancel': if (this.files) this.files.onCancel(ev); return;
      case 'file-decline': if (this.files) this.files.onDecline(ev); return;
      case 'file-received': if (this.files) this.files.onReceived(ev); return;
    }
    this.emit(ev);
  }

  // onDelivery: the group says what became of a room message of ours.
  onDelivery(ev) {
    const item = ev.tag && !ev.tag.file ? ev.tag : null;
    if (ev.state !== 'waiting') {
      for (const [id, e] of this.undelivered) if (e.item === ev.tag) this.undelivered.delete(id);
      for (const e of this.unsent.values()) if (e.item === ev.tag) e.done = true;
    }
    if (!item) return;
    item.to = ev.to;
    item.missed = ev.missed;
    if (ev.state === 'waiting' && item.state !== 'sent') return;
    this.update(item, ev.state);
  }

  // ---------------------------------------------------------------- sending

  refillTokens() {
    const now = this.now();
    const { rate, burst } = this.limits;
    this.tokens = Math.min(burst, this.tokens + ((now - this.tokenAt) / 1000) * rate);
    this.tokenAt = now;
  }

  takeToken() {
    this.refillTokens();
    if (this.tokens >= 1) { this.tokens--; return true; }
    return false;
  }

  byteBurst() { return 4 * this.limits.frame; }

  // haveBytes refills the byte bucket and says whether n bytes may go.
  haveBytes(n) {
    const now = this.now();
    this.byteTokens = Math.min(this.byteBurst(), this.byteTokens + ((now - this.byteAt) / 1000) * this.limits.bytes);
    this.byteAt = now;
    return this.byteTokens >= n;
  }

  canSend() { return this.joined && this.group && this.ws && this.ws.readyState === 1; }

  // flush sends what is waiting, in this order: the group's ordered frames
  // (commits, GroupInfo, room messages, in the order it made them), then
  // its acknowledgements; a typed message is encrypted only when neither
  // waits and the group may send (it is in the room, caught up, nobody
  // gone waits to be removed), so that it goes under the newest keys; a
  // file's chunks go only when nothing else waits, leaving chat a few
  // frames and bytes of the relay's allowance.
  flush() { return this.track(this.flushNow()); }

  async flushNow() {
    if (this.flushing) return;
    this.flushing = true;
    this.clearTimer(this.flushTimer);
    this.flushTimer = 0;
    try {
      while (this.canSend()) {
        this.group.wantsToSend = this.outbox.length > 0;
        const hasO = this.ordered.length > 0;
        const hasA = this.bulk.length > 0;
        const hasT = this.outbox.length > 0 && !this.requeuing && this.group.canSend();
        if (!hasO && !hasA && !hasT && !!this.files && this.files.hasChunk()) {
          const need = 4 * Math.ceil(this.group.maxBucket / 3) + 128 + BULK_BYTE_RESERVE;
          this.refillTokens();
          // Nor while the browser still holds earlier ones (tor is slow
          // or stalled): chat typed meanwhile would queue behind them.
          if ((this.ws.bufferedAmount || 0) > need) {
            this.flushTimer = this.setTimer(() => this.flush(), BULK_BUFFERED_RETRY_MS);
            break;
          }
          if (this.tokens < 1 + BULK_FRAME_RESERVE || !this.haveBytes(need)) {
            const waitFrames = (1 + BULK_FRAME_RESERVE - this.tokens) / this.limits.rate;
            const waitBytes = (need - this.byteTokens) / this.limits.bytes;
            this.flushTimer = this.setTimer(() => this.flush(), Math.max(10, Math.ceil(1000 * Math.max(waitFrames, waitBytes))));
            break;
          }
          const body = await this.files.nextChunk();
          if (!body) continue;
          if (!this.takeToken()) continue;
          if (!this.raw({ v: PROTOCOL, type: 'msg', body: toBase64(body), bulk: true })) break;
          continue;
        }
        if (!hasO && !hasA && !hasT) break;
        if (!hasO && !hasA) {
          const item = this.outbox.shift();
          try {
            await this.group.seal(item.text, item); // comes back through onGroupFrame
          } catch (e) {
            if (!this.group || !this.group.canSend()) { this.outbox.unshift(item); break; } // the group changed meanwhile: later
            this.update(item, 'failed');
            this.note('send-failed', { error: String(e && e.message) });
          }
          continue;
        }
        if (!this.takeToken()) {
          this.flushTimer = this.setTimer(() => this.flush(), Math.ceil(1000 / this.limits.rate));
          break;
        }
        if (!hasO) {
          const fr = this.bulk.shift();
          if (!this.raw({ v: PROTOCOL, type: 'msg', body: fr.body, bulk: true })) break;
          continue;
        }
        const fr = this.ordered[0];
        const id = this.nextId++;
        let f;
        if (fr.type === 'commit') {
          f = { v: PROTOCOL, type: 'commit', epoch: fr.epoch, body: fr.body, info: fr.info, id };
          if (fr.over !== undefined) f.over = fr.over;
        } else if (fr.type === 'info') {
          f = { v: PROTOCOL, type: 'info' };
          if (fr.body) f.body = fr.body;
        } else {
          f = { v: PROTOCOL, type: 'msg', body: fr.body, id };
        }
        if (!this.raw(f)) break;
        this.ordered.shift();
        if (fr.type === 'commit') {
          this.commits.set(id, fr.token);
        } else if (fr.type === 'msg') {
          this.unsent.set(id, { id, body: fr.body, kind: fr.kind, item: fr.tag });
          if (fr.tag && fr.tag.state === 'queued') this.update(fr.tag, 'sending');
          this.boundResend();
        }
      }
    } finally {
      this.flushing = false;
      if (this.sendWaiters.length && (this.stopped || (this.group && this.group.canSend()))) for (const r of this.sendWaiters.splice(0)) r();
    }
  }

  // requeue, after a welcome, sends again the room messages that may not
  // have reached everyone: those with no `sent` (the connection died under
  // them) and, after a new session (the relay forgot its frames), those the
  // group has not said were delivered. A "here" of an old session is not
  // sent again: the group says where it is anew. Receivers drop copies.
  requeue(resumed) {
    const again = [...this.unsent.values()];
    if (!resumed) again.push(...this.undelivered.values());
    this.unsent.clear();
    if (!resumed) this.undelivered.clear();
    again.sort((a, b) => a.id - b.id);
    const frames = again.filter((e) => e.kind !== 'here' && !e.done).map((e) => ({ type: 'msg', body: e.body, kind: e.kind, tag: e.item }));
    this.ordered.push(...frames);
  }

  // resend sends again the room messages of tags that were sent but that a
  // member who is back in a new relay session has not acknowledged.
  resend(tags) {
    const want = new Set(tags);
    const queued = new Set(this.ordered.map((fr) => fr.tag));
    for (const e of [...this.unsent.values(), ...this.undelivered.values()].sort((a, b) => a.id - b.id)) {
      if (e.item && want.has(e.item) && !queued.has(e.item) && !e.done) {
        queued.add(e.item);
        this.ordered.push({ type: 'msg', body: e.body, kind: e.kind, tag: e.item });
      }
    }
    this.flush();
  }

  // resendUnheard sends again, when a member of the group joins the relay
  // in a new session (back after a server restart, say), the room
  // messages of ours, our "here" included, that the relay relayed to
  // nobody: it keeps none of those, as nobody could ask for them then.
  // Members drop copies.
  resendUnheard(name) {
    if (!this.group || !this.group.others().some((l) => l.name === name)) return;
    const again = [...this.undelivered.values()].filter((e) => e.unheard);
    if (!again.length) return;
    for (const e of again) this.undelivered.delete(e.id);
    this.ordered.push(...again.map((e) => ({ type: 'msg', body: e.body, kind: e.kind, tag: e.item })));
    this.flush();
  }

  boundResend() {
    while (this.unsent.size + this.undelivered.size > MAX_RESEND) {
      const m = this.undelivered.size ? this.undelivered : this.unsent;
      const k = m.keys().next().value;
      const e = m.get(k);
      m.delete(k);
      if (e.item && (e.item.state === 'sending' || e.item.state === 'sent' || e.item.state === 'waiting')) this.update(e.item, 'unknown');
    }
  }

  update(item, state) {
    item.state = state;
    this.emit({ type: 'outgoing', item, state });
  }

  status(state) { this.emit({ type: 'status', state }); }

  // note reports something of the connection's as a typed event, which
  // view.mjs puts into words.
  note(what, extra = {}) { this.emit({ type: 'note', what, ...extra }); }

  emit(ev) { this.onEvent(ev); }
}

