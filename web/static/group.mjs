// group.mjs: protocol version 3's view of one room from one browser
// session (docs/protocol.md §10–§12): who is in it with which keys, this
// session's sender chain, the chains of the others, and the rules that keep
// them current and hold against a hostile member or relay:
//
//   - members are sessions (the relay's sid); a session's keys come from its
//     hello, which is signed and names that sid, so a hello recorded in one
//     session is refused in every other;
//   - what a page knows of another member's keys (their chains, epochs,
//     counters) is kept per key id, so no member can occupy another's chain,
//     and constant in size per member: a chain handoff is accepted only for a
//     higher epoch, or the same epoch at a later counter;
//   - on a new session, broadcast a hello (ANNOUNCE); each member answers a
//     session once, with their hello and their chain, within a budget;
//   - a member who joins is handed this page's chain as it stood when they
//     joined (a snapshot kept until their hello arrives, at most PENDING_MS);
//   - when a member with keys leaves, start a fresh chain (the next epoch)
//     before this page's next message, for everyone left, in one frame;
//   - messages whose keys have not come wait, a few per sender, then are
//     reported; counters that never arrive are reported as missing.
//
// It does no I/O: relay events go in (welcome, join, away, back, leave,
// receive, caughtUp), frames to send come out through onFrame in the order
// they must go, and what people should see comes out through onEvent. The
// session (session.mjs) and the tests (web/jstest) drive it the same way.

import { toHex, fromBase64, toBase64url, fromBase64url, equal } from './bytes.mjs';
import { Identity, Peer, context } from './identity.mjs';
import { SenderChain, ReceiverChain, ChainError, MAX_COUNTER } from './chain.mjs';
import {
  VERSION, T_HELLO, T_DISTRIBUTION, T_MESSAGE, T_CHUNK, F_ANNOUNCE, F_WANT_CHAIN, K_TEXT, K_FILE, K_CANCEL, NO_END,
  FILE_ID_BYTES, EnvelopeError, seal, open, makeHello, parseHello, makeDistribution, parseDistribution, unwrapEntry,
  makeMessage, parseMessage, openMessage, verifySigned, verifyMessage, textContent, maxEntries, maxTextBytes, BUCKETS,
  parseOffer, makeChunk, parseChunk,
} from './envelope.mjs';

export const MAX_TEXT_CHARS = 8000;
export const HELD_PER_SENDER = 50;      // messages waiting for keys, per sender whose hello verified
export const HELD_UNVERIFIED = 5;       // … per sender whose hello has not (yet) verified
export const HELD_MS = 30000;           // how long such a message waits before it is reported
export const PENDING_MS = 30000;        // how long a chain snapshot waits for its member's hello
export const HELLO_WAIT_MS = 20000;     // a member without a hello this long is reported
export const REQUEST_AFTER_MS = 3000;   // a message whose chain has not come this long: ask its sender
export const REQUEST_EVERY_MS = 10000;  // … at most this often per sender
export const HANDOFF_EVERY_MS = 10000;  // hand our chain to one member on request at most this often
export const HANDOFF_BATCH_MS = 150;    // chain requests gathered into one frame
export const ANSWER_RATE = 2;           // answers (hello + chain) to new sessions, per second, all together
export const ANSWER_BURST = 20;
export const GAP_MS = 20000;            // a counter still missing this long is reported
export const NOTICE_EVERY_MS = 5000;    // problems with one sender's frames: one notice per this, the rest counted
export const MAX_PEERS = 1000;          // key sets remembered (epochs and counters, no keys once gone)
export const DEFAULT_WINDOW_MS = 180000; // the relay's resume window, until it says otherwise

// Lanes of outgoing frames (session.mjs schedules them): ORDERED frames go
// in the order made (our hellos to everyone, rekeys, messages); BACKGROUND
// frames (answers, handoffs, requests: all to one member) may be
// overtaken by typed messages, which receivers hold until the keys come.
export const ORDERED = 'ordered';
export const BACKGROUND = 'background';

// Group is one session in one room.
export class Group {
  // create makes this page session's keys. keys are the room's derived
  // keys (roomkey.mjs: roomId, frameKey); signing is a kept signing key
  // pair or undefined.
  static async create({ keys, signing, now, setTimer, batchMs, maxBucket, window }) {
    const identity = await Identity.create({ signing });
    return new Group({ identity, keys, now, setTimer, batchMs, maxBucket, window });
  }

  constructor({ identity, keys, now, setTimer, batchMs, maxBucket, window }) {
    this.identity = identity;
    this.roomId = keys.roomId;
    this.frameKey = keys.frameKey;
    this.ctx = context(keys.roomId);
    this.now = now || (() => Date.now());
    this.setTimer = setTimer || ((fn, ms) => setTimeout(fn, ms));
    this.batchMs = batchMs === undefined ? HANDOFF_BATCH_MS : batchMs;
    this.setLimits({ maxBucket, window });
    this.onFrame = () => {}; // ({body: Uint8Array, to?: name, lane, kind, tag?}) in sending order per lane
    this.onEvent = () => {}; // {type: "message"|"notice"|"members"|"earlier", ...}

    this.name = '';
    this.sid = '';
    this.chain = SenderChain.fresh(1);
    this.needRekey = false;
    this.members = new Map();   // sid -> Member: the sessions in the room but ours
    this.peers = new Map();     // key id (hex) -> PeerState
    this.codes = new Map();     // name -> safety code first seen under it in this page session
    this.snapshots = new Map(); // sid -> {snap, expires}: our chain as it stood when they joined
    this.owed = new Set();      // sids owed an answer the budget has not allowed yet
    this.wanted = new Set();    // sids that asked for our chain, answered in the next batch
    this.batchArmed = false;
    this.answerTokens = ANSWER_BURST;
    this.answerAt = this.now();
    this.pendingLeaves = [];    // sids gone while we were away: left once the catch-up is read
    this.catchingUp = false;    // between a welcome and the end of its catch-up
    this.earlier = 0;           // catch-up messages from before we (re)joined, unreadable by design
    this.suppressed = new Map(); // sid -> {at, n, name}: notices held back
    this.destroyed = false;
    this.queue = Promise.resolve();
  }

  setLimits({ maxBucket, window } = {}) {
    this.maxBucket = maxBucket || BUCKETS[BUCKETS.length - 1];
    this.window = window || DEFAULT_WINDOW_MS;
    this.maxEntries = maxEntries(this.maxBucket);
    this.maxTextBytes = maxTextBytes(this.maxBucket);
  }

  get code() { return this.identity.code; }

  // ---------------------------------------------------------------- inputs

  // Every input runs after the previous one has finished, so frames are
  // handled in arrival order and frames come out in the order they must go.
  // An input that fails is reported as a notice; seal's errors go to its
  // caller.
  run(fn, report = true) {
    const p = this.queue.then(() => (this.destroyed ? undefined : fn()));
    this.queue = p.catch((e) => { if (report) this.notice(`⚠ Internal error: ${e && e.message}`); });
    return report ? this.queue : p;
  }

  // welcome: we joined. you and sid are ours; members are the relay's
  // [{name, sid, away}], ours included; resumed says the relay took back our
  // session; otherwise this is a new session (the first, or after a server
  // restart or a long absence).
  welcome({ you, sid, members, resumed = false }) {
    return this.run(async () => {
      const first = !this.sid;
      const list = members.filter((m) => m.sid !== sid);
      this.name = you;
      this.catchingUp = true;
      if (resumed && sid === this.sid) {
        // The same session on a new connection: whoever is gone left while
        // we were away (after the catch-up, which may hold their last
        // frames); whoever is new joined meanwhile.
        const now = new Set(list.map((m) => m.sid));
        for (const s of this.members.keys()) if (!now.has(s)) this.pendingLeaves.push(s);
        for (const m of list) {
          const had = this.members.get(m.sid);
          if (had) had.away = !!m.away;
          else this.addMember(m);
        }
      } else {
        if (!first) {
          // A new session (the server restarted, or we were away too long):
          // the others come back as new sessions too. Those whose keys we
          // know stay members for the resume window: if they come back with
          // the same keys, nothing changes and nothing needs resending.
          for (const m of this.members.values()) {
            const p = m.keyId && this.peers.get(m.keyId);
            if (p) p.awaySince = this.now();
          }
          this.members.clear();
          this.dropSnapshots();
          this.owed.clear();
        }
        this.sid = sid;
        // Our hello goes to all of them; they answer it. Their own hellos
        // (in the catch-up, or in their answers) need no answer from us.
        for (const m of list) this.addMember(m).answered = true;
        await this.sendHello(F_ANNOUNCE);
      }
      this.membersChanged();
    });
  }

  // caughtUp: every catch-up frame that followed the welcome has been
  // handed to receive.
  caughtUp() {
    return this.run(async () => {
      for (const sid of this.pendingLeaves.splice(0)) this.forget(sid, 'left while you were away');
      this.catchingUp = false;
      this.reportEarlier();
      this.membersChanged();
    });
  }

  reportEarlier() {
    if (this.earlier > 0) {
      const n = this.earlier;
      this.earlier = 0;
      this.onEvent({ type: 'earlier', count: n });
    }
  }

  join({ name, sid }) {
    return this.run(async () => {
      if (sid === this.sid || this.members.has(sid)) return;
      this.addMember({ name, sid });
      this.membersChanged();
    });
  }

  away({ sid }) { return this.run(async () => { this.setAway(sid, true); }); }
  back({ sid }) { return this.run(async () => { this.setAway(sid, false); }); }

  leave({ sid }) {
    return this.run(async () => {
      this.forget(sid, 'left');
      this.membersChanged();
    });
  }

  // receive handles a msg frame from the relay: {sid, from, to, body, old}.
  receive(f) {
    return this.run(() => this.handle(f, null));
  }

  // seal encrypts and signs text under the next key of our chain (starting
  // the next epoch first if someone left) and hands the frames to onFrame
  // in order: {body, lane: ORDERED, kind: "message", tag}. It resolves to
  // the message's body.
  seal(text, tag) {
    if (typeof text !== 'string' || text.length === 0) return Promise.reject(new Error('empty message'));
    if (text.length > MAX_TEXT_CHARS) return Promise.reject(new Error(`message longer than ${MAX_TEXT_CHARS} characters`));
    return this.sealContent(textContent(text, this.now()), tag);
  }

  // sealContent is seal for any message content (envelope.mjs: text, a
  // file offer, a file cancelled).
  sealContent(content, tag) {
    return this.run(async () => {
      if (content.length > this.maxTextBytes) throw new Error('message too long for this server’s frame limit');
      if (this.needRekey || this.chain.counter >= MAX_COUNTER) await this.rekey();
      const { counter, messageKey } = await this.chain.next();
      const inner = await makeMessage({ identity: this.identity, ctx: this.ctx, epoch: this.chain.epoch, counter, messageKey, content });
      const body = await seal(this.frameKey, this.ctx, inner, this.maxBucket);
      this.onFrame({ body, lane: ORDERED, kind: 'message', tag });
      return body;
    }, false);
  }

  // sealChunk makes the envelope of one chunk of a file (files.mjs); it
  // goes out as a bulk frame, not through onFrame.
  async sealChunk({ fileKey, id, index, data }) {
    const inner = await makeChunk({ fileKey, ctx: this.ctx, senderKeyId: this.identity.keyId, id, index, data });
    return seal(this.frameKey, this.ctx, inner, this.maxBucket);
  }

  // sweep reports and drops whatever waited too long, and does the work the
  // budgets held back. The session calls it every second; tests call it
  // with their own clock.
  sweep() {
    return this.run(async () => {
      const now = this.now();
      this.refillAnswers(now);
      for (const [sid, s] of this.snapshots) if (s.expires <= now) this.dropSnapshot(sid);
      for (const sid of [...this.owed]) {
        if (this.answerTokens < 1) break;
        this.owed.delete(sid);
        const m = this.members.get(sid);
        if (m && m.keyId) await this.answer(m);
      }
      for (const m of this.members.values()) {
        const late = m.held.filter((h) => now - h.at >= HELD_MS);
        if (late.length) {
          m.held = m.held.filter((h) => now - h.at < HELD_MS);
          this.reportUnread(m, late.length);
        }
        if (m.keyId) {
          const p = this.peers.get(m.keyId);
          const want = m.held.find((h) => h.epoch !== undefined && now - h.at >= REQUEST_AFTER_MS);
          if (p && want && now - p.requestedAt >= REQUEST_EVERY_MS) {
            p.requestedAt = now;
            await this.sendHello(F_WANT_CHAIN, m);
          }
        } else if (!m.warned && now - m.since >= HELLO_WAIT_MS) {
          m.warned = true;
          this.notice(`⚠ ${m.name} has not sent their keys yet: their messages cannot be read until they do.`);
          this.membersChanged();
        }
      }
      for (const p of this.peers.values()) {
        let missing = 0;
        for (const c of [p.chain, p.prev]) if (c) missing += c.overdue(now - GAP_MS);
        if (missing) this.notice(`⚠ ${count(missing)} from ${p.name} did not reach you.`);
        if (p.awaySince && now - p.awaySince >= this.window) {
          // They never came back after the server restarted: gone.
          p.awaySince = 0;
          this.retirePeer(p);
          this.needRekey = true;
          this.membersChanged();
        }
      }
      this.reportEarlier();
      for (const [sid, s] of this.suppressed) {
        if (now - s.at >= NOTICE_EVERY_MS) {
          this.suppressed.delete(sid);
          if (s.n) this.onEvent({ type: 'notice', level: 'error', text: `⚠ ${s.n} more frames from ${s.name} were refused.` });
        }
      }
    });
  }

  // destroy zeroes our chain keys and forgets everything (Leave).
  destroy() {
    this.destroyed = true;
    this.chain.wipe();
    this.dropSnapshots();
    for (const p of this.peers.values()) this.retirePeer(p);
    this.peers.clear();
    this.members.clear();
    this.owed.clear();
    this.wanted.clear();
  }

  // memberList is what the member list shows, in the relay's order, ours
  // first.
  memberList() {
    const out = [{ name: this.name, sid: this.sid, self: true, code: this.code, status: 'ok', changed: false, away: false }];
    for (const m of this.members.values()) {
      const p = m.keyId && this.peers.get(m.keyId);
      out.push({ name: m.name, sid: m.sid, self: false, code: p ? p.peer.code : '', status: m.status, changed: !!(p && p.changed), away: m.away });
    }
    return out;
  }

  // alone says whether nobody else is in the room.
  alone() { return this.members.size === 0; }

  // ---------------------------------------------------------------- frames

  async handle(f, held) {
    const m = typeof f.sid === 'string' ? this.members.get(f.sid) : undefined;
    if (f.sid === this.sid) return;
    if (!m) return; // a session that is not (or no longer) in the room: nothing of it can be placed
    if (typeof f.from === 'string' && f.from !== m.name) return; // the relay contradicts itself
    let env;
    try { env = fromBase64(typeof f.body === 'string' ? f.body : ''); } catch { env = new Uint8Array(0); }
    let inner;
    try {
      inner = await open(this.frameKey, this.ctx, env);
    } catch (e) {
      if (!(e instanceof EnvelopeError)) throw e;
      if (e.kind === 'version') return this.problem(m, `⚠ A frame from ${m.name} could not be read: it is of protocol version ${e.version}; this page speaks version ${VERSION}. Whoever is older should reload the page.`);
      return this.problem(m, `⚠ A frame relayed as from ${m.name} could not be opened: it was altered.`);
    }
    switch (inner[0]) {
      case T_HELLO: return this.onHello(m, f, inner);
      case T_DISTRIBUTION: return this.onDistribution(m, f, inner);
      case T_MESSAGE:
        if (f.to) return this.problem(m, `⚠ ${m.name} sent a room message to you alone; it was not shown (everyone in a room sees the same messages).`);
        return this.onMessage(m, f, inner, held);
      case T_CHUNK:
        if (f.to) return this.problem(m, `⚠ ${m.name} sent part of a file to you alone; it was ignored.`);
        return this.onChunk(m, inner);
      default:
        return this.problem(m, `⚠ A frame from ${m.name} is of an unknown kind; reload the page to update onionchat.`);
    }
  }

  async onHello(m, f, inner) {
    let h;
    try {
      h = parseHello(inner);
    } catch {
      return this.problem(m, `⚠ A hello relayed as from ${m.name} is malformed; it was ignored.`);
    }
    if (toBase64url(h.sid) !== m.sid || h.name !== m.name) {
      return this.problem(m, `⚠ A hello relayed as from ${m.name} belongs to another session; it was ignored (a replay?).`);
    }
    let peer;
    try {
      peer = await Peer.import(h.ecdhPub, h.sigPub);
    } catch {
      return this.problem(m, `⚠ A hello from ${m.name} carries invalid keys; it was ignored.`);
    }
    if (!(await verifySigned(this.ctx, h, peer.sigKey))) {
      return this.problem(m, `⚠ A hello relayed as from ${m.name} is not signed by the key it carries; it was ignored.`);
    }
    const keyId = toHex(peer.keyId);
    if (equal(peer.keyId, this.identity.keyId)) return; // our own keys in another session of ours
    if (m.keyId && m.keyId !== keyId) {
      return this.problem(m, `⚠ ${m.name}’s session sent other keys than it introduced itself with; they were ignored.`);
    }
    let p = this.peers.get(keyId);
    if (!m.keyId) {
      m.keyId = keyId;
      m.status = 'ok';
      if (!p) {
        p = newPeer(keyId, peer, this.now());
        this.peers.set(keyId, p);
        this.boundPeers();
      } else if (p.retired && !p.awaySince) {
        this.notice(`${m.name} is back, with the same safety code.`, 'info');
      }
      p.awaySince = 0;
      p.name = m.name;
      const seen = this.codes.get(m.name);
      if (seen !== undefined && seen !== peer.code) {
        p.changed = true;
        this.notice(`⚠ ${m.name}’s safety code changed (was ${seen}, now ${peer.code}): this is another device or browser. If ${m.name} did not say so, someone else may be using the name.`);
      }
      if (seen === undefined) this.codes.set(m.name, peer.code);
      this.membersChanged();
    }
    // Answer a session once (their hello and our chain), within the budget.
    if ((h.flags & F_ANNOUNCE) && !m.answered) {
      m.answered = true;
      m.lacks = !p.chain || h.epoch > p.chain.epoch;
      if (this.takeAnswer()) await this.answer(m);
      else this.owed.add(m.sid);
    } else if (h.flags & F_WANT_CHAIN) {
      this.want(m);
    }
    await this.retryHeld(m);
  }

  async onDistribution(m, f, inner) {
    let d;
    try {
      d = parseDistribution(inner);
    } catch {
      return this.problem(m, `⚠ Keys from ${m.name} are malformed; they were ignored.`);
    }
    const entry = d.entries.find((e) => equal(e.keyId, this.identity.keyId));
    if (!entry) return; // a bundle for others
    if (!m.keyId) return this.hold(m, f, undefined);
    const p = this.peers.get(m.keyId);
    if (!equal(d.senderKeyId, p.peer.keyId) || !(await verifySigned(this.ctx, d, p.peer.sigKey))) {
      return this.problem(m, `⚠ Keys relayed as from ${m.name} are not signed by ${m.name}’s key; they were ignored.`);
    }
    const cur = p.chain;
    const retired = p.retired;
    // Only forward: a higher epoch, or the same epoch at a later counter
    // (an earlier one only before any message of the chain was read).
    if (cur && d.epoch < cur.epoch) return;
    if (cur && d.epoch === cur.epoch && !(d.counter < cur.start && cur.next === cur.start)) return;
    if (!cur && retired && (d.epoch < retired.epoch || (d.epoch === retired.epoch && d.counter <= retired.highest))) return;
    let key;
    try {
      key = await unwrapEntry({ ctx: this.ctx, parsed: d, entry, pairwise: await this.pairwise(p) });
    } catch {
      return this.problem(m, `⚠ Keys from ${m.name} could not be unwrapped; they were ignored.`);
    }
    const now = this.now();
    if (cur && d.epoch > cur.epoch) {
      if (p.prev) p.prev.retire();
      p.prev = cur;
      if (d.prevEnd !== NO_END && d.epoch === cur.epoch + 1) await cur.seal(d.prevEnd, now);
      else await cur.seal(cur.next, now);
    } else if (cur) {
      cur.retire();
    }
    p.chain = new ReceiverChain(d.epoch, d.counter, key);
    p.retired = null;
    this.membersChanged();
    await this.retryHeld(m);
  }

  async onMessage(m, f, inner, held) {
    let msg;
    try {
      msg = parseMessage(inner);
    } catch {
      return this.problem(m, `⚠ A message from ${m.name} could not be read (malformed).`);
    }
    // Messages of one sender are shown in order: while any wait, the next
    // waits behind them.
    if (!held && m.held.length) return this.hold(m, f, msg.epoch);
    if (!m.keyId) return this.hold(m, f, undefined);
    const p = this.peers.get(m.keyId);
    if (!(await verifyMessage(this.ctx, p.peer.keyId, msg, p.peer.sigKey))) {
      return this.problem(m, `⚠ A message relayed as from ${m.name} is not signed by ${m.name}’s key; it was not shown.`);
    }
    const chain = p.chain && p.chain.epoch === msg.epoch ? p.chain : p.prev && p.prev.epoch === msg.epoch ? p.prev : null;
    if (!chain) {
      if (!p.chain || msg.epoch > p.chain.epoch) {
        if (f.old && p.chain) { this.earlier++; return; } // from before we (re)joined: not for us
        return this.hold(m, f, msg.epoch); // its keys are on their way, or sweep asks for them
      }
      if (f.old) { this.earlier++; return; }
      return this.problem(m, `⚠ A message from ${m.name} could not be read: it was sent under keys this page has already dropped.`);
    }
    let k;
    try {
      k = await chain.keyFor(msg.counter, this.now());
    } catch (e) {
      if (!(e instanceof ChainError)) throw e;
      if (e.kind === 'replay') return; // a message shown already (a resend, or a replay)
      if (e.kind === 'before' && f.old) { this.earlier++; return; }
      return this.problem(m, `⚠ A message from ${m.name} could not be read: ${e.message}.`);
    }
    let content;
    try {
      content = await openMessage(k.messageKey, this.ctx, p.peer.keyId, msg);
    } catch {
      return this.problem(m, `⚠ A message from ${m.name} could not be read: it was altered.`);
    }
    k.commit();
    const who = { sid: m.sid, sender: m.name, code: p.peer.code, changed: !!p.changed, keyId: p.keyId, time: content.time, old: !!f.old };
    switch (content.kind) {
      case K_TEXT:
        this.onEvent({ type: 'message', ...who, text: content.text, id: `${p.keyId}:${msg.epoch}:${msg.counter}` });
        return undefined;
      case K_FILE: {
        let offer;
        try {
          offer = parseOffer(content.payload);
        } catch {
          return this.problem(m, `⚠ A file offer from ${m.name} is malformed; it was ignored.`);
        }
        this.onEvent({ type: 'file-offer', ...who, senderKeyId: p.peer.keyId, offer });
        return undefined;
      }
      case K_CANCEL:
        if (content.payload.length !== FILE_ID_BYTES) return this.problem(m, `⚠ A cancel from ${m.name} is malformed; it was ignored.`);
        this.onEvent({ type: 'file-cancel', ...who, fileId: content.payload.slice() });
        return undefined;
    }
    return this.problem(m, `⚠ ${m.name} sent something this version of the page cannot show; reload the page to update onionchat.`);
  }

  // onChunk passes a file's chunk on (files.mjs opens it with the file key
  // from the offer of the same sender session).
  onChunk(m, inner) {
    if (!m.keyId) return undefined; // from a session whose hello has not come: its offer could not have been read
    let parsed;
    try {
      parsed = parseChunk(inner);
    } catch {
      return this.problem(m, `⚠ Part of a file from ${m.name} is malformed; it was ignored.`);
    }
    this.onEvent({ type: 'chunk', sid: m.sid, sender: m.name, keyId: m.keyId, parsed });
    return undefined;
  }

  // ---------------------------------------------------------------- waiting messages

  // hold keeps a frame until its sender's keys arrive: a few per sender,
  // fewer for one whose hello has not verified; a sender's overflow pushes
  // out that sender's own oldest frame, never another's.
  hold(m, f, epoch) {
    const max = m.keyId ? HELD_PER_SENDER : HELD_UNVERIFIED;
    if (m.held.length >= max) this.reportUnread(m, m.held.splice(0, m.held.length - max + 1).length);
    m.held.push({ f, at: this.now(), epoch });
  }

  async retryHeld(m) {
    if (!m.held.length) return;
    const all = m.held;
    m.held = [];
    for (let i = 0; i < all.length; i++) {
      await this.handle(all[i].f, all[i]);
      if (m.held.length) {
        // Still waiting: keep it and what follows, in order, with their times.
        const rest = all.slice(i + 1);
        m.held[0].at = all[i].at;
        m.held.push(...rest);
        break;
      }
    }
    if (!this.catchingUp) this.reportEarlier();
  }

  reportUnread(m, n) {
    const why = m.keyId ? `${m.name}’s keys for them never arrived` : `${m.name} never sent their keys`;
    this.notice(`⚠ ${count(n)} from ${m.name} could not be read: ${why}.`);
  }

  // ---------------------------------------------------------------- our chain

  // rekey starts the next epoch and sends it, one frame per maxEntries
  // members, to every member whose keys we have (away ones too: the relay
  // keeps the frame for them).
  async rekey() {
    const old = this.chain;
    this.chain = SenderChain.fresh(old.epoch + 1);
    old.wipe();
    this.needRekey = false;
    const to = this.recipients();
    if (!to.length) return;
    const snap = this.chain.snapshot();
    try {
      await this.distribute(snap, to, null, old.counter);
    } finally {
      snap.key.fill(0);
    }
  }

  recipients() {
    const out = new Map();
    for (const m of this.members.values()) if (m.keyId) out.set(m.keyId, this.peers.get(m.keyId));
    for (const p of this.peers.values()) if (p.awaySince) out.set(p.keyId, p);
    return [...out.values()];
  }

  // answer is what a new session gets from us, once: our hello (asking for
  // their chain if we lack it) and our chain.
  async answer(m) {
    await this.sendHello(m.lacks ? F_WANT_CHAIN : 0, m);
    await this.handOff(m);
  }

  // handOff sends our chain to these members: to each the snapshot kept
  // since they joined (if any), then the current chain if it differs;
  // members given the same position share one bundle.
  async handOff(...ms) {
    const groups = new Map();
    const cur = this.chain.snapshot();
    const add = (snap, m) => {
      const k = snap.epoch + ':' + snap.counter;
      if (!groups.has(k)) groups.set(k, { snap, ms: [] });
      groups.get(k).ms.push(m);
    };
    try {
      for (const m of ms) {
        if (!m.keyId || !this.members.has(m.sid)) continue;
        const s = this.snapshots.get(m.sid);
        if (s) add(s.snap, m);
        if (!s || s.snap.epoch !== cur.epoch) add(cur, m);
      }
      for (const g of groups.values()) {
        const peers = g.ms.map((m) => this.peers.get(m.keyId));
        await this.distribute(g.snap, peers, g.ms.length === 1 ? g.ms[0] : null, NO_END, BACKGROUND);
      }
    } finally {
      cur.key.fill(0);
      for (const m of ms) this.dropSnapshot(m.sid);
    }
  }

  // want gathers chain requests for batchMs, so that a newcomer answers the
  // whole room with one bundle rather than one frame each. One member is
  // handed our chain on request at most once per HANDOFF_EVERY_MS.
  want(m) {
    const now = this.now();
    if (now - m.handedAt < HANDOFF_EVERY_MS) return;
    m.handedAt = now;
    this.wanted.add(m.sid);
    if (this.batchArmed) return;
    this.batchArmed = true;
    this.setTimer(() => {
      this.run(async () => {
        this.batchArmed = false;
        const ms = [...this.wanted].map((sid) => this.members.get(sid)).filter(Boolean);
        this.wanted.clear();
        await this.handOff(...ms);
      });
    }, this.batchMs);
  }

  // distribute wraps a chain position for peers: to one member (m) as a
  // direct frame, or broadcast as a bundle.
  async distribute(snap, peers, m, prevEnd = NO_END, lane = ORDERED) {
    for (let i = 0; i < peers.length; i += this.maxEntries) {
      const part = peers.slice(i, i + this.maxEntries);
      const recipients = [];
      for (const p of part) recipients.push({ keyId: p.peer.keyId, pairwise: await this.pairwise(p) });
      const inner = await makeDistribution({ identity: this.identity, ctx: this.ctx, epoch: snap.epoch, counter: snap.counter, prevEnd, key: snap.key, recipients });
      const body = await seal(this.frameKey, this.ctx, inner, this.maxBucket);
      this.onFrame(m ? { body, to: m.name, lane: BACKGROUND, kind: 'keys' } : { body, lane, kind: 'keys' });
    }
  }

  async sendHello(flags, m) {
    const inner = await makeHello({ identity: this.identity, ctx: this.ctx, flags, sid: fromBase64url(this.sid), epoch: this.chain.epoch, name: this.name });
    const body = await seal(this.frameKey, this.ctx, inner, this.maxBucket);
    this.onFrame(m ? { body, to: m.name, lane: BACKGROUND, kind: 'hello' } : { body, lane: ORDERED, kind: 'hello' });
  }

  refillAnswers(now) {
    this.answerTokens = Math.min(ANSWER_BURST, this.answerTokens + ((now - this.answerAt) / 1000) * ANSWER_RATE);
    this.answerAt = now;
  }

  takeAnswer() {
    this.refillAnswers(this.now());
    if (this.answerTokens < 1) return false;
    this.answerTokens--;
    return true;
  }

  keepSnapshot(sid) {
    this.dropSnapshot(sid);
    this.snapshots.set(sid, { snap: this.chain.snapshot(), expires: this.now() + PENDING_MS });
  }

  dropSnapshot(sid) {
    const s = this.snapshots.get(sid);
    if (s) { s.snap.key.fill(0); this.snapshots.delete(sid); }
  }

  dropSnapshots() { for (const sid of [...this.snapshots.keys()]) this.dropSnapshot(sid); }

  // ---------------------------------------------------------------- members

  addMember({ name, sid, away }) {
    const m = newMember(name, sid, !!away, this.now());
    this.members.set(sid, m);
    // They read what we send from now on, even before their hello arrives.
    this.keepSnapshot(sid);
    return m;
  }

  setAway(sid, away) {
    const m = this.members.get(sid);
    if (m && m.away !== away) { m.away = away; this.membersChanged(); }
  }

  pairwise(p) {
    if (!p.peer.pairwiseKey) p.peer.pairwiseKey = this.identity.pairwise(p.peer, this.roomId);
    return p.peer.pairwiseKey;
  }

  // forget drops a session that ended: its keys (keeping only epochs and
  // counters), our snapshot for it and its waiting frames. If it held keys,
  // our next message starts a fresh chain.
  forget(sid, why) {
    const m = this.members.get(sid);
    if (!m) return;
    this.members.delete(sid);
    this.dropSnapshot(sid);
    this.owed.delete(sid);
    this.wanted.delete(sid);
    if (m.held.length) this.notice(`⚠ ${count(m.held.length)} from ${m.name} could not be read: ${m.name} ${why} before their keys arrived.`);
    m.held = [];
    if (!m.keyId) return;
    const p = this.peers.get(m.keyId);
    if (p) this.retirePeer(p);
    this.needRekey = true;
  }

  retirePeer(p) {
    let r = p.retired;
    for (const c of [p.prev, p.chain]) if (c) r = c.retire();
    p.prev = null;
    p.chain = null;
    p.retired = r || p.retired || { epoch: 0, highest: -1 };
    p.retiredAt = this.now();
  }

  // boundPeers keeps at most MAX_PEERS key sets: the longest-gone first.
  boundPeers() {
    if (this.peers.size <= MAX_PEERS) return;
    const live = new Set([...this.members.values()].map((m) => m.keyId));
    const gone = [...this.peers.values()].filter((p) => !live.has(p.keyId) && !p.awaySince).sort((a, b) => a.retiredAt - b.retiredAt);
    for (const p of gone.slice(0, this.peers.size - MAX_PEERS)) this.peers.delete(p.keyId);
  }

  membersChanged() { this.onEvent({ type: 'members' }); }

  notice(text, level = 'error') { this.onEvent({ type: 'notice', text, level }); }

  // problem reports a refused frame of one sender: one notice per
  // NOTICE_EVERY_MS, the rest counted, so a flood of junk cannot flood the
  // page.
  problem(m, text) {
    const now = this.now();
    const s = this.suppressed.get(m.sid);
    if (s && now - s.at < NOTICE_EVERY_MS) { s.n++; return; }
    this.suppressed.set(m.sid, { at: now, n: 0, name: m.name });
    this.notice(text);
  }
}

function newMember(name, sid, away, now) {
  return {
    name,
    sid,
    away,
    status: 'waiting',  // waiting (no hello yet) | ok
    since: now,
    warned: false,
    keyId: null,        // hex key id from their verified hello
    answered: false,    // we answered this session's ANNOUNCE
    lacks: false,       // our answer asks for their chain
    handedAt: -Infinity, // last handoff on their request
    held: [],           // {f, at, epoch}: their frames waiting for keys, in order
  };
}

function newPeer(keyId, peer, now) {
  return {
    keyId,
    peer,
    name: '',
    chain: null,        // ReceiverChain of their current epoch
    prev: null,         // … of the epoch before, for late arrivals and gap reports
    retired: null,      // {epoch, highest}: what remains once their keys are dropped
    retiredAt: now,
    requestedAt: -Infinity,
    awaySince: 0,       // after our new session: when they were last seen
    changed: false,     // their code differs from the one first seen under their name
  };
}

function count(n) { return n === 1 ? '1 message' : `${n} messages`; }
