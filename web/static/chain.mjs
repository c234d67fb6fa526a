// chain.mjs: version 2's sender chains (in the spirit of Signal's Sender
// Keys and Matrix's Megolm). A chain is a 32-byte key; for each message
//
//   message key = HMAC-SHA256(chain key, 0x01)   -> AES-256-GCM key, used once
//   next chain  = HMAC-SHA256(chain key, 0x02)
//
// and the old chain key and the message key are dropped after use, so a
// chain key read from memory later opens nothing sent before it.
//
// SenderChain is this page's own chain: it keeps the raw current key (it
// must hand it to newcomers) and zeroes each key it replaces.
// ReceiverChain is another member's chain as this page follows it: a
// non-extractable HMAC key, the next counter, and at most MAX_SKIP message
// keys of messages skipped over (for out-of-order delivery). Replays and
// counters beyond the skip bound are refused, and so are counters from
// before the position at which this page was handed the chain.

import { subtle, randomBytes } from './bytes.mjs';

export const CHAIN_ID_BYTES = 8;
export const CHAIN_KEY_BYTES = 32;
export const MAX_SKIP = 100;          // per sender: how far ahead a message may jump, and skipped keys kept
export const MAX_COUNTER = 0xffffffff; // counters are 32-bit; a sender starts a fresh chain before this

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
  static fresh() { return new SenderChain(randomBytes(CHAIN_ID_BYTES), 0, randomBytes(CHAIN_KEY_BYTES)); }

  constructor(id, counter, key) {
    this.id = id;           // 8 random bytes naming this chain in every envelope
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
  // read from here on but whose keys have not arrived yet.
  snapshot() { return { id: this.id, counter: this.counter, key: this.key.slice() }; }

  wipe() { this.key.fill(0); }
}

export class ReceiverChain {
  constructor(id, counter, key) {
    this.id = id;
    this.start = counter;      // the first counter this page can open (where it was handed the chain)
    this.next = counter;       // the counter of the next message expected
    this.key = key;            // HMAC CryptoKey (non-extractable) for `next`
    this.skipped = new Map();  // counter -> message key, oldest first, at most MAX_SKIP
  }

  // keyFor returns the message key for counter and a commit function that
  // advances the chain (or drops the skipped key); nothing changes until
  // commit is called, so a message that fails to open changes nothing.
  async keyFor(counter) {
    if (counter < this.start) throw new ChainError('before', 'it was sent before this page was given the sender’s key');
    if (counter < this.next) {
      const mk = this.skipped.get(counter);
      if (!mk) throw new ChainError('replay', 'message already received');
      return { messageKey: mk, commit: () => { this.skipped.delete(counter); } };
    }
    if (counter - this.next > MAX_SKIP) {
      throw new ChainError('gap', `${counter - this.next} messages missing, more than the ${MAX_SKIP} this page skips`);
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
        for (const [c, mk] of skipped) this.skipped.set(c, mk);
        while (this.skipped.size > MAX_SKIP) this.skipped.delete(this.skipped.keys().next().value);
      },
    };
  }

  // retire returns what is remembered of a chain after its keys are
  // dropped: the highest counter received and the counters skipped and
  // never received, so that a replay is still told from a lost message.
  retire() {
    const r = { start: this.start, highest: this.next - 1, missed: new Set(this.skipped.keys()) };
    this.skipped.clear();
    this.key = null;
    return r;
  }
}
