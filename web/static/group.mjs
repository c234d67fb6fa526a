// group.mjs: protocol version 2's view of one room from one browser
// session: who is in it with which keys, this session's sender chain, the
// chains of the others, and the rules that keep them current:
//
//   - on joining, broadcast a hello (flag ANNOUNCE); everyone answers with
//     their hello and their current chain, sent to this page alone;
//   - a member who joins is handed this page's chain as it stood when they
//     joined (a snapshot kept until their hello arrives, at most PENDING_MS),
//     so they can read what was sent while their hello was on its way;
//   - when a member with keys leaves, or a name comes back with other keys,
//     start a fresh chain and send it to everyone left in ONE broadcast
//     frame (a distribution bundle);
//   - messages whose chain has not arrived yet wait (at most BUFFER_MAX for
//     BUFFER_MS), then are reported.
//
// It does no I/O: hub events go in (welcome, join, leave, receive), frames
// to send come out through onFrame in the order they must be sent, and what
// people should see comes out through onEvent. The page (app.mjs) and the
// tests (web/jstest) drive it the same way. docs/protocol.md §6 describes
// the protocol.

import { toHex, fromBase64, equal } from './bytes.mjs';
import { Identity, Peer, helloKey } from './identity.mjs';
import { SenderChain, ReceiverChain, ChainError, MAX_COUNTER } from './chain.mjs';
import {
  VERSION, T_HELLO, T_DISTRIBUTION, T_MESSAGE, F_ANNOUNCE, F_WANT_CHAIN, MAX_ENTRIES, EnvelopeError,
  sealHello, openHello, sealDistribution, parseDistribution, verifySigned, unwrapEntry,
  sealMessage, parseMessage, openMessage,
} from './envelope2.mjs';

export const MAX_TEXT_CHARS = 8000;
export const BUFFER_MAX = 200;          // messages waiting for their chain, all senders together
export const BUFFER_MS = 30000;         // how long such a message waits before it is reported
export const PENDING_MS = 30000;        // how long a chain snapshot waits for its member's hello
export const HELLO_WAIT_MS = 20000;     // a member without a hello this long is reported
export const HANDOFF_BATCH_MS = 150;    // chain requests gathered into one frame
export const RETIRED_MAX = 1000;        // dropped chains remembered (ids and counters, no keys)
export const REQUEST_AFTER_MS = 3000;   // a message whose chain has not come this long: ask its sender

// Group is one session in one room.
export class Group {
  // create makes this session's key pairs and hello key. roomKey is the
  // room secret (roomkey.mjs); name is the name the hub gave us.
  static async create({ roomKey, room, name, now, setTimer, batchMs }) {
    const [identity, hk] = await Promise.all([Identity.create(), helloKey(roomKey)]);
    return new Group({ identity, helloKey: hk, room, name, now, setTimer, batchMs });
  }

  constructor({ identity, helloKey: hk, room, name, now, setTimer, batchMs }) {
    this.identity = identity;
    this.helloKey = hk;
    this.room = room;
    this.name = name;
    this.now = now || (() => Date.now());
    this.setTimer = setTimer || ((fn, ms) => setTimeout(fn, ms));
    this.batchMs = batchMs === undefined ? HANDOFF_BATCH_MS : batchMs;
    this.onFrame = () => {}; // ({body: Uint8Array, to?: string, tag?}) in sending order
    this.onEvent = () => {}; // {type: "message"|"notice"|"members", ...}

    this.chain = SenderChain.fresh(); // ours: the only chain key we hold for sending
    this.ownChains = new Set([toHex(this.chain.id)]);
    this.names = [];                 // the hub's member list, in join order
    this.members = new Map();        // name -> Member (everyone but us)
    this.codes = new Map();          // name -> safety code first seen this session
    this.owners = new Map();         // chain id (hex) -> name, for the chains we hold
    this.retired = new Map();        // chain id (hex) -> {owner, highest, missed}: no keys
    this.pending = new Map();        // name -> {snap, expires}: our chain as it stood when they joined
    this.buffer = [];                // {f, at}: messages waiting for their chain
    this.wanted = new Set();         // names to hand our chain to in the next batch
    this.batchArmed = false;
    this.welcomed = false;
    this.historyLeft = 0;
    this.historyUnread = 0;
    this.destroyed = false;
    this.queue = Promise.resolve();
  }

  get code() { return this.identity.code; }

  // ---------------------------------------------------------------- inputs

  // Every input runs after the previous one has finished, so frames are
  // handled in arrival order and frames come out in the order they must go.
  // A hub event that fails is reported as a notice; seal's errors go to
  // its caller.
  run(fn, report = true) {
    const p = this.queue.then(() => (this.destroyed ? undefined : fn()));
    this.queue = p.catch((e) => { if (report) this.notice(`⚠ Internal error: ${e && e.message}`); });
    return report ? this.queue : p;
  }

  // welcome: we (re)joined; members are the hub's names, ours included, and
  // history the number of kept messages that follow.
  welcome({ members, history = 0 }) {
    return this.run(async () => {
      const first = !this.welcomed;
      this.welcomed = true;
      this.names = members.slice();
      const others = members.filter((n) => n !== this.name);
      let rekey = false;
      if (!first) {
        // Whoever we knew and is gone left while we were away.
        for (const [name, m] of this.members) {
          if (!others.includes(name)) rekey = this.forget(name, 'left while you were away') || rekey;
          else if (!m.peer) m.since = this.now();
        }
      }
      for (const n of others) {
        if (!this.members.has(n)) this.members.set(n, newMember(n, this.now()));
        // They may not have our chain yet, or may have dropped it while we
        // were away (thinking we had left): keep where it stands now.
        if (!this.pending.has(n)) this.keepPending(n);
      }
      if (rekey) await this.rekey();
      this.historyLeft = Math.max(0, history | 0);
      this.historyUnread = 0;
      await this.sendHello(F_ANNOUNCE);
      this.membersChanged();
    });
  }

  join(name, resumed = false) {
    return this.run(async () => {
      if (name === this.name) return;
      if (!this.names.includes(name)) this.names.push(name);
      const m = this.members.get(name);
      if (resumed && m) {
        this.membersChanged();
        return; // the same session on a new connection: it keeps its keys and ours
      }
      if (m && this.forget(name)) await this.rekey(); // a new session under a name we had: we missed its leave
      this.members.set(name, newMember(name, this.now()));
      this.keepPending(name);
      this.membersChanged();
    });
  }

  leave(name) {
    return this.run(async () => {
      this.names = this.names.filter((n) => n !== name);
      if (this.forget(name)) await this.rekey();
      this.membersChanged();
    });
  }

  // receive handles a msg frame from the hub: {from, body, history, to}.
  receive(f) {
    return this.run(() => this.handle(f, false));
  }

  // seal encrypts and signs text under the next key of our chain, hands
  // the envelope to onFrame as {body, tag} (after every frame produced
  // before it, so that no message overtakes the keys it needs, and no
  // bundle of a newer chain overtakes it) and returns it.
  seal(text, tag) {
    return this.run(async () => {
      if (typeof text !== 'string' || text.length === 0) throw new Error('empty message');
      if (text.length > MAX_TEXT_CHARS) throw new Error(`message longer than ${MAX_TEXT_CHARS} characters`);
      if (this.chain.counter >= MAX_COUNTER) await this.rekey();
      const chainId = this.chain.id;
      const { counter, messageKey } = await this.chain.next();
      const body = await sealMessage({ identity: this.identity, room: this.room, chainId, counter, messageKey, inner: { s: this.name, t: text, ts: this.now() } });
      this.onFrame({ body, tag });
      return body;
    }, false);
  }

  // sweep reports and drops whatever waited too long. The page calls it
  // every second; tests call it with their own clock.
  sweep() {
    return this.run(async () => {
      const now = this.now();
      for (const [name, p] of this.pending) if (p.expires <= now) this.dropPending(name);
      const late = this.buffer.filter((b) => now - b.at >= BUFFER_MS);
      if (late.length) {
        this.buffer = this.buffer.filter((b) => now - b.at < BUFFER_MS);
        this.reportUnread(late);
      }
      // A message of a chain that has not come after REQUEST_AFTER_MS,
      // from someone whose keys we have: ask them once for their chain, so
      // that at least their next messages open.
      for (const b of this.buffer) {
        const m = this.members.get(b.f.from);
        if (!m || !m.peer || now - b.at < REQUEST_AFTER_MS || b.chain === undefined || m.requested.has(b.chain)) continue;
        if (m.chain && toHex(m.chain.id) === b.chain) continue;
        m.requested.add(b.chain);
        await this.sendHello(F_WANT_CHAIN, m.name);
      }
      for (const m of this.members.values()) {
        if (!m.peer && !m.warned && m.status === 'waiting' && now - m.since >= HELLO_WAIT_MS) {
          m.warned = true;
          this.notice(`⚠ ${m.name} has not sent their keys: ${m.name} may use an older version of onionchat and should reload the page.`);
          this.membersChanged();
        }
      }
    });
  }

  // destroy zeroes our chain keys and forgets everything (Leave).
  destroy() {
    this.destroyed = true;
    this.chain.wipe();
    for (const name of [...this.pending.keys()]) this.dropPending(name);
    for (const m of this.members.values()) if (m.chain) m.chain.retire();
    this.members.clear();
    this.buffer = [];
    this.wanted.clear();
  }

  // memberList is what the member list shows, in the hub's order.
  memberList() {
    return this.names.map((name) => {
      if (name === this.name) return { name, self: true, code: this.code, status: 'ok', changed: false };
      const m = this.members.get(name);
      return { name, self: false, code: m && m.peer ? m.peer.code : '', status: m ? m.status : 'waiting', changed: !!(m && m.changed) };
    });
  }

  // ---------------------------------------------------------------- frames

  async handle(f, retry) {
    let env;
    try { env = fromBase64(typeof f.body === 'string' ? f.body : ''); } catch { env = new Uint8Array(0); }
    if (f.history) return this.handleHistory(env);
    const from = f.from;
    if (typeof from !== 'string' || from === this.name) return;
    if (env.length < 2) return this.notice(`⚠ A message from ${from} could not be read (empty or not base64).`);
    if (env[0] !== VERSION) return this.otherVersion(from, env[0]);
    switch (env[1]) {
      case T_HELLO: return this.onHello(from, env);
      case T_DISTRIBUTION: return this.onDistribution(f, env, retry);
      case T_MESSAGE: return this.onMessage(f, env, retry);
      default: return this.notice(`⚠ A message from ${from} could not be read (unknown kind ${env[1]}): reload the page to update onionchat.`);
    }
  }

  otherVersion(from, v) {
    const m = this.members.get(from);
    if (v === 1) {
      if (m && m.status === 'waiting') { m.status = 'old'; this.membersChanged(); }
      return this.notice(`⚠ A message from ${from} could not be read: ${from} uses an older version of onionchat: they should reload the page.`);
    }
    return this.notice(`⚠ A message from ${from} could not be read: it is of protocol version ${v}; this page speaks version ${VERSION}. Reload the page to update onionchat.`);
  }

  async onHello(from, env) {
    const m = this.member(from);
    let h;
    try {
      h = await openHello(this.helloKey, this.room, env);
    } catch (e) {
      if (!(e instanceof EnvelopeError)) throw e;
      if (e.kind !== 'key') return this.notice(`⚠ A hello from ${from} is malformed; it was ignored.`);
      if (m.peer) return this.notice(`⚠ A hello relayed as from ${from} could not be opened; it was ignored.`);
      if (m.status !== 'unopenable') {
        m.status = 'unopenable';
        this.notice(`⚠ ${from}’s hello could not be opened: ${from} uses a different passphrase, or it was altered.`);
        this.dropBuffered(from, `${from} uses a different passphrase, or the message was altered`);
        this.membersChanged();
      }
      if (!m.answeredUnopenable) {
        // Answer once, so that they learn it too (and no further: they
        // cannot read our flags, so answering every hello would never end).
        m.answeredUnopenable = true;
        await this.sendHello(0, from);
      }
      return;
    }
    if (h.name !== from) return this.notice(`⚠ A hello relayed as from ${from} names “${h.name}”; it was ignored.`);
    let peer;
    try {
      peer = await Peer.import(h.ecdhPub, h.sigPub);
    } catch {
      return this.notice(`⚠ A hello from ${from} carries invalid keys; it was ignored.`);
    }
    if (!(await verifySigned(this.room, h, peer.sigKey))) {
      return this.notice(`⚠ A hello from ${from} is not signed by the key it carries; it was ignored.`);
    }
    const seen = this.codes.get(from);
    if (seen !== undefined && seen !== peer.code) {
      m.changed = true;
      this.notice(`⚠ ${from}’s safety code changed (was ${seen}, now ${peer.code}). If ${from} did not reload the page, someone else may be using the name.`);
    }
    this.codes.set(from, peer.code);
    if (m.peer && !m.peer.same(peer)) {
      // Another session under a name that had keys: its chains go, ours changes.
      this.retireChain(m);
      m.peer = null;
      m.hadOurChain = false;
      await this.rekey();
    }
    if (!m.peer) {
      m.peer = peer;
      m.status = 'ok';
    }
    const theirs = toHex(h.chainId);
    if (h.flags & F_ANNOUNCE) {
      // They (re)joined: our hello, then our chain, to them alone.
      const lack = !m.chain || toHex(m.chain.id) !== theirs;
      await this.sendHello(lack ? F_WANT_CHAIN : 0, from);
      await this.handOff([from]);
    } else if (h.flags & F_WANT_CHAIN) {
      this.want(from);
    }
    this.membersChanged();
    await this.retryBuffered(from);
  }

  async onDistribution(f, env, retry) {
    const from = f.from;
    let d;
    try {
      d = parseDistribution(env);
    } catch {
      return this.notice(`⚠ Keys from ${from} are malformed; they were ignored.`);
    }
    const entry = d.entries.find((e) => equal(e.keyId, this.identity.keyId));
    if (!entry) return; // a bundle for others
    const m = this.member(from);
    if (!m.peer) {
      if (m.status !== 'unopenable') this.hold(f, retry);
      return;
    }
    if (!equal(d.senderKeyId, m.peer.keyId) || !(await verifySigned(this.room, d, m.peer.sigKey))) {
      return this.notice(`⚠ Keys relayed as from ${from} are not signed by ${from}’s key; they were ignored.`);
    }
    const id = toHex(d.chainId);
    const owner = this.owners.get(id) || (this.retired.get(id) || {}).owner;
    if (owner && owner !== from) return this.notice(`⚠ Keys from ${from} reuse ${owner}’s chain; they were ignored.`);
    if (m.chain && toHex(m.chain.id) === id) return; // held already, at a position at least as early
    const r = this.retired.get(id);
    // A chain we dropped comes back only from where we stopped (its owner
    // was thought gone and returned with the same session); an older copy
    // is stale.
    if (r && d.counter <= r.highest) return;
    let key;
    try {
      key = await unwrapEntry({ room: this.room, parsed: d, entry, pairwise: await this.pairwise(m) });
    } catch {
      return this.notice(`⚠ Keys from ${from} could not be unwrapped; they were ignored.`);
    }
    this.retireChain(m);
    this.retired.delete(id);
    m.chain = new ReceiverChain(d.chainId, d.counter, key);
    this.owners.set(id, from);
    this.membersChanged();
    await this.retryBuffered(from);
  }

  async onMessage(f, env, retry) {
    const from = f.from;
    let p;
    try {
      p = parseMessage(env);
    } catch {
      return this.notice(`⚠ A message from ${from} could not be read (malformed).`);
    }
    const id = toHex(p.chainId);
    if (this.ownChains.has(id)) return;
    const m = this.member(from);
    if (!m.peer) {
      if (m.status === 'unopenable') return this.notice(`⚠ A message from ${from} could not be read: ${from} uses a different passphrase, or the message was altered.`);
      return this.hold(f, retry);
    }
    if (!m.chain || toHex(m.chain.id) !== id) {
      const owner = this.owners.get(id);
      const r = this.retired.get(id);
      if ((owner && owner !== from) || (r && r.owner !== from)) {
        return this.notice(`⚠ A message relayed as from ${from} uses ${owner || r.owner}’s key; it was not shown.`);
      }
      if (r) {
        if (replayed(r, p.counter)) return;
        if (p.counter <= r.highest) {
          return this.notice(`⚠ A message from ${from} could not be read: it was sent under a key this page has dropped.`);
        }
        // Beyond where we stopped: its owner came back (we thought they had
        // left) and the chain is on its way again.
      }
      return this.hold(f, retry, id); // its chain is on its way, or sweep asks for it
    }
    const shown = await this.openWith(m, p, false);
    if (shown) this.onEvent({ type: 'message', sender: from, text: shown.t, time: shown.ts, history: false });
  }

  // openWith verifies, decrypts and checks one message of m's current
  // chain; it returns the inner message or null (with a notice, or silently
  // for a replay).
  async openWith(m, p, history) {
    const who = m.name;
    if (!(await verifySigned(this.room, p, m.peer.sigKey))) {
      if (history) { this.historyUnread++; return null; }
      this.notice(`⚠ A message relayed as from ${who} is not signed by ${who}’s key; it was not shown.`);
      return null;
    }
    let k;
    try {
      k = await m.chain.keyFor(p.counter);
    } catch (e) {
      if (!(e instanceof ChainError)) throw e;
      if (e.kind === 'replay') return null;
      if (history) { this.historyUnread++; return null; }
      const why = e.kind === 'before' ? `it was sent before ${who}’s keys reached this page` : e.message;
      this.notice(`⚠ A message from ${who} could not be read: ${why}.`);
      return null;
    }
    let inner;
    try {
      inner = await openMessage(k.messageKey, this.room, p);
    } catch {
      if (history) { this.historyUnread++; return null; }
      this.notice(`⚠ A message from ${who} could not be read: it was altered.`);
      return null;
    }
    k.commit();
    if (inner.s !== who) {
      this.notice(`⚠ A message from ${who} says it is from “${inner.s}”; it was not shown.`);
      return null;
    }
    return inner;
  }

  // History messages come without a sender: the chain id names it. Under
  // version 2 a newcomer holds no chain from before it joined, so these are
  // counted and reported once, never shown as garbage.
  async handleHistory(env) {
    if (this.historyLeft > 0) this.historyLeft--;
    if (env.length >= 2 && env[0] === VERSION && env[1] === T_MESSAGE) {
      let p = null;
      try { p = parseMessage(env); } catch { this.historyUnread++; }
      if (p) {
        const id = toHex(p.chainId);
        const owner = this.owners.get(id);
        const m = owner && this.members.get(owner);
        const r = this.retired.get(id);
        if (this.ownChains.has(id)) {
          // ours, seen already
        } else if (m && m.peer && m.chain && toHex(m.chain.id) === id) {
          const inner = await this.openWith(m, p, true);
          if (inner) this.onEvent({ type: 'message', sender: m.name, text: inner.t, time: inner.ts, history: true });
        } else if (!(r && replayed(r, p.counter))) {
          this.historyUnread++;
        }
      }
    } else if (env.length >= 1 && env[0] !== VERSION) {
      this.historyUnread++;
    }
    if (this.historyLeft === 0 && this.historyUnread > 0) {
      const n = this.historyUnread;
      this.historyUnread = 0;
      this.notice(n === 1
        ? '1 earlier message is encrypted with keys from before you joined; this page cannot read it.'
        : `${n} earlier messages are encrypted with keys from before you joined; this page cannot read them.`, 'info');
    }
  }

  // ---------------------------------------------------------------- waiting messages

  // hold keeps a frame until its sender's hello or chain arrives; chain is
  // the hex chain id of a message whose sender's keys we have.
  hold(f, retry, chain) {
    if (retry) { retry.chain = chain; this.buffer.push(retry); return; }
    if (this.buffer.length >= BUFFER_MAX) this.reportUnread(this.buffer.splice(0, 1));
    this.buffer.push({ f, at: this.now(), chain });
  }

  async retryBuffered(name) {
    const mine = this.buffer.filter((b) => b.f.from === name);
    if (!mine.length) return;
    this.buffer = this.buffer.filter((b) => b.f.from !== name);
    for (const b of mine) await this.handle(b.f, b);
  }

  dropBuffered(name, why) {
    const mine = this.buffer.filter((b) => b.f.from === name);
    this.buffer = this.buffer.filter((b) => b.f.from !== name);
    if (mine.length) this.notice(`⚠ ${count(mine.length)} from ${name} could not be read: ${why}.`);
  }

  reportUnread(items) {
    const by = new Map();
    for (const b of items) by.set(b.f.from, (by.get(b.f.from) || 0) + 1);
    for (const [name, n] of by) {
      const m = this.members.get(name);
      const why = !m || !m.peer
        ? `${name}’s hello never arrived (${name} may use an older version of onionchat or another passphrase)`
        : `${name}’s keys for them never arrived`;
      this.notice(`⚠ ${count(n)} from ${name} could not be read: ${why}.`);
    }
  }

  // ---------------------------------------------------------------- our chain

  // rekey starts a fresh chain and sends it, in one frame per MAX_ENTRIES
  // members, to every member whose keys we have.
  async rekey() {
    const old = this.chain;
    this.chain = SenderChain.fresh();
    old.wipe();
    this.ownChains.add(toHex(this.chain.id));
    bound(this.ownChains, RETIRED_MAX);
    const to = [...this.members.values()].filter((m) => m.peer && this.names.includes(m.name));
    if (!to.length) return;
    const snap = this.chain.snapshot();
    await this.distribute(snap, to, true);
    snap.key.fill(0);
  }

  // handOff sends our chain to these members now: the snapshot kept since
  // they joined (if any), then the current chain if it differs.
  async handOff(names) {
    const groups = new Map();
    const add = (snap, m) => {
      const k = toHex(snap.id) + ':' + snap.counter;
      if (!groups.has(k)) groups.set(k, { snap, to: [] });
      groups.get(k).to.push(m);
    };
    const cur = this.chain.snapshot();
    for (const name of names) {
      const m = this.members.get(name);
      if (!m || !m.peer || !this.names.includes(name)) continue;
      const p = this.pending.get(name);
      if (p) {
        add(p.snap, m);
        if (!equal(p.snap.id, cur.id)) add(cur, m);
      } else {
        add(cur, m);
      }
    }
    for (const g of groups.values()) await this.distribute(g.snap, g.to, g.to.length > 1);
    for (const name of names) this.dropPending(name);
    cur.key.fill(0);
  }

  async distribute(snap, members, broadcast) {
    for (let i = 0; i < members.length; i += MAX_ENTRIES) {
      const part = members.slice(i, i + MAX_ENTRIES);
      const recipients = [];
      for (const m of part) {
        recipients.push({ keyId: m.peer.keyId, pairwise: await this.pairwise(m) });
        m.hadOurChain = true;
      }
      const body = await sealDistribution({ identity: this.identity, room: this.room, chainId: snap.id, counter: snap.counter, key: snap.key, recipients });
      this.onFrame(broadcast ? { body } : { body, to: part[0].name });
    }
  }

  // want gathers chain requests for HANDOFF_BATCH_MS, so that a newcomer
  // answers the whole room with one bundle rather than one frame each.
  want(name) {
    if (!this.members.has(name)) return;
    this.wanted.add(name);
    if (this.batchArmed) return;
    this.batchArmed = true;
    this.setTimer(() => {
      this.run(async () => {
        this.batchArmed = false;
        const names = [...this.wanted];
        this.wanted.clear();
        await this.handOff(names);
      });
    }, this.batchMs);
  }

  keepPending(name) {
    this.dropPending(name);
    this.pending.set(name, { snap: this.chain.snapshot(), expires: this.now() + PENDING_MS });
  }

  dropPending(name) {
    const p = this.pending.get(name);
    if (p) { p.snap.key.fill(0); this.pending.delete(name); }
  }

  async sendHello(flags, to) {
    const body = await sealHello({ helloKey: this.helloKey, identity: this.identity, room: this.room, name: this.name, flags, chainId: this.chain.id });
    this.onFrame(to ? { body, to } : { body });
  }

  // ---------------------------------------------------------------- members

  member(name) {
    let m = this.members.get(name);
    if (!m) {
      m = newMember(name, this.now());
      this.members.set(name, m);
    }
    return m;
  }

  pairwise(m) {
    if (!m.peer.pairwiseKey) m.peer.pairwiseKey = this.identity.pairwise(m.peer, this.room);
    return m.peer.pairwiseKey;
  }

  // forget drops a member who left: their chain (keeping only its id and
  // counters), our snapshot for them and their waiting messages. It returns
  // whether they may hold our chain, in which case we must rekey.
  forget(name, why = 'left') {
    const m = this.members.get(name);
    if (!m) return false;
    this.retireChain(m);
    this.dropPending(name);
    this.wanted.delete(name);
    this.dropBuffered(name, `${name} ${why} before their keys arrived`);
    this.members.delete(name);
    return !!m.peer;
  }

  retireChain(m) {
    if (!m.chain) return;
    const id = toHex(m.chain.id);
    this.retired.set(id, { owner: m.name, ...m.chain.retire() });
    bound(this.retired, RETIRED_MAX);
    this.owners.delete(id);
    m.chain = null;
  }

  membersChanged() { this.onEvent({ type: 'members' }); }

  notice(text, level = 'error') { this.onEvent({ type: 'notice', text, level }); }
}

function newMember(name, now) {
  return {
    name,
    status: 'waiting',       // waiting (no hello yet) | ok | unopenable (other passphrase) | old (version 1)
    since: now,
    warned: false,
    peer: null,              // Peer from their verified hello
    chain: null,             // ReceiverChain: their current chain
    changed: false,          // their safety code changed during this session
    hadOurChain: false,
    answeredUnopenable: false,
    requested: new Set(),    // chain ids we asked them for
  };
}

function replayed(r, counter) { return counter >= r.start && counter <= r.highest && !r.missed.has(counter); }

function bound(mapOrSet, max) {
  while (mapOrSet.size > max) mapOrSet.delete(mapOrSet.keys().next().value);
}

function count(n) { return n === 1 ? '1 message' : `${n} messages`; }
