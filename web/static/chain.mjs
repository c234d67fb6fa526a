// chain.mjs: sender chains (in the spirit of Signal's Sender Keys and
// Matrix's Megolm). A chain is a 32-byte key; for each message
//
//   message key = HMAC-SHA256(chain key, 0x01)   -> AES-256-GCM key, used once
//   next chain  = HMAC-SHA256(chain key, 0x02)
//
// and the old chain key and the message key are dropped after use, so a
// chain key read from memory later opens nothing sent before it.
//
// A sender's chains are numbered by an epoch that only goes up (1, 2, …
// within one page session): a fresh chain is the next epoch. SenderChain is
// this page's own chain: it keeps the raw current key (it must hand it to
// newcomers) and zeroes each key it replaces. ReceiverChain is another
// member's chain of one epoch as this page follows it: a non-extractable
// HMAC key, the next counter, and at most MAX_SKIP message keys of messages
// skipped over (out of order, or still on their way), each with the time it
// was skipped, so that a gap can be reported. Replays, counters before the
// position at which this page was handed the chain, and jumps beyond the
// skip bound are refused. Everything is constant in size per chain.

import { subtle, randomBytes } from './bytes.mjs';

export const CHAIN_KEY_BYTES = 32;
export const MAX_SKIP = 100;           // per chain: how far ahead a message may jump, and skipped keys kept
export const MAX_COUNTER = 0xffffffff; // counters are 32-bit; a sender starts a fresh chain before this
export const MAX_EPOCH = 0xffffffff;

const HMAC = { name: 'HMAC', hash: 'SHA-256', length: 256 };
const MESSAGE_KEY = new Uint8Array([0x01]);
const NEXT_CHAIN = new Uint8Array([0x02]);

export class ChainError extends Error {
  constructor(kind, message) { super(message); this.kind = kind; }
}

function importMessageKey(bytes) {
  return subtle().importKey('raw', bytes, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
}

export function importChainKey(bytes) {
  return subtle().importKey('raw', bytes, HMAC, false, ['sign']);
}

// step advances a chain key (an HMAC CryptoKey) by one message: it returns
// the message key (AES-GCM, non-extractable) and the next chain key as raw
// bytes, which the caller imports or keeps, and zeroes when done.
export async function step(chainKey) {
  const s = subtle();
  const mk = new Uint8Array(await s.sign('HMAC', chainKey, MESSAGE_KEY));
  const next = new Uint8Array(await s.sign('HMAC', chainKey, NEXT_CHAIN));
  try {
    return { messageKey: await importMessageKey(mk), next };
  } finally {
    mk.fill(0);
  }
}

export class SenderChain {
  // fresh starts the chain of the given epoch with a random key.
  static fresh(epoch) { return new SenderChain(epoch, 0, randomBytes(CHAIN_KEY_BYTES)); }

  constructor(epoch, counter, key) {
    this.epoch = epoch;     // which of this sender's chains
    this.counter = counter; // the counter of the next message
    this.key = key;         // raw chain key for `counter`; the only key this object holds
  }

  // next returns the counter and key for one message and advances the
  // chain, zeroing the key it replaces.
  async next() {
    if (this.counter >= MAX_COUNTER) throw new ChainError('limit', 'this chain is used up');
    const { messageKey, next } = await step(await importChainKey(this.key));
    const counter = this.counter;
    this.key.fill(0);
    this.key = next;
    this.counter = counter + 1;
    return { counter, messageKey };
  }

  // snapshot copies the current position, for a member who must be able to
  // read from here on but whose keys have not arrived yet. The caller
  // zeroes snap.key when done with it, on every path.
  snapshot() { return { epoch: this.epoch, counter: this.counter, key: this.key.slice() }; }

  wipe() { this.key.fill(0); }
}

export class ReceiverChain {
  constructor(epoch, counter, key) {
    this.epoch = epoch;
    this.start = counter;      // the first counter this page can open (where it was handed the chain)
    this.next = counter;       // the counter of the next message expected
    this.key = key;            // HMAC CryptoKey (non-extractable) for `next`
    this.skipped = new Map();  // counter -> {mk, at}: skipped over, oldest first, at most MAX_SKIP
    this.missed = new Set();   // counters reported as missing (their keys dropped), at most MAX_SKIP
    this.end = null;           // when the sender has moved on: the counter its next epoch says this one ended at
  }

  // keyFor returns the message key for counter and a commit function that
  // advances the chain (or drops the skipped key); nothing changes until
  // commit is called, so a message that fails to open changes nothing.
  async keyFor(counter, now = 0) {
    if (counter < this.start) throw new ChainError('before', 'it was sent before this page was given the sender’s keys');
    if (counter < this.next) {
      const s = this.skipped.get(counter);
      if (s) return { messageKey: s.mk, commit: () => { this.skipped.delete(counter); } };
      if (this.missed.has(counter)) throw new ChainError('late', 'it arrived after this page had reported it missing and dropped its key');
      throw new ChainError('replay', 'message already received');
    }
    if (!this.key) throw new ChainError('late', 'it arrived after this page had dropped the sender’s older keys');
    if (counter - this.next > MAX_SKIP) {
      throw new ChainError('gap', `${counter - this.next} messages are missing before it, more than the ${MAX_SKIP} this page skips`);
    }
    let key = this.key;
    const skipped = [];
    let target = null;
    for (let c = this.next; c <= counter; c++) {
      const { messageKey, next } = await step(key);
      try {
        key = await importChainKey(next);
      } finally {
        next.fill(0);
      }
      if (c < counter) skipped.push([c, messageKey]);
      else target = messageKey;
    }
    return {
      messageKey: target,
      commit: () => {
        this.key = key;
        this.next = counter + 1;
        for (const [c, mk] of skipped) this.skipped.set(c, { mk, at: now });
        while (this.skipped.size > MAX_SKIP) this.markMissed(this.skipped.keys().next().value);
      },
    };
  }

  markMissed(counter) {
    this.skipped.delete(counter);
    this.missed.add(counter);
    while (this.missed.size > MAX_SKIP) this.missed.delete(this.missed.values().next().value);
  }

  // overdue drops the keys of messages skipped before `before` (a time)
  // and returns how many: they are reported as missing.
  overdue(before) {
    let n = 0;
    for (const [c, s] of this.skipped) {
      if (s.at <= before) { this.markMissed(c); n++; }
    }
    return n;
  }

  // seal stops the chain at end (its sender has moved to a later epoch):
  // no key past end is derived; counters below end not yet received are
  // missing. It returns how many of those there are beyond what was
  // skipped, and marks them as skipped at `now`.
  async seal(end, now) {
    this.end = end;
    const tail = Math.max(0, end - this.next);
    if (tail > 0 && tail <= MAX_SKIP && this.key) {
      const k = await this.keyFor(end - 1, now); // derives the keys up to end-1
      k.commit();
      this.skipped.set(end - 1, { mk: k.messageKey, at: now }); // end-1 was not received either
      while (this.skipped.size > MAX_SKIP) this.markMissed(this.skipped.keys().next().value);
    }
    this.key = null;
    return tail;
  }

  // retire returns what is remembered of a chain after its keys are
  // dropped: its epoch and the highest counter it could have opened.
  retire() {
    const r = { epoch: this.epoch, highest: this.next - 1 };
    this.skipped.clear();
    this.missed.clear();
    this.key = null;
    return r;
  }
}
