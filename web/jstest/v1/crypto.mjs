// crypto.mjs: onionchat's envelope version 1, no longer served: kept only
// as the reference for its known-answer vector (v1/kat.json, also checked
// by web/kat_test.go), so that the history of the protocol stays checkable.
//
// Keys:   room secret (roomkey.mjs) = PBKDF2-HMAC-SHA256(NFC(passphrase), salt, 600,000);
//         sender key = HKDF-SHA256(room secret, salt = senderId, info = "onionchat/1 message")
//         -> non-extractable AES-256-GCM key, one per sender session.
// Message: envelope = 0x01 | senderId (16) | iv (12) | AES-GCM(inner JSON);
//         additional data = "onionchat/1" 0x00 room 0x00 hex(senderId);
//         inner JSON = {"s": sender name, "t": text, "ts": ms since epoch, "n": counter}.

import { enc, dec, concat, toHex, subtle } from '../../static/bytes.mjs';

export { toHex, fromHex } from '../../static/bytes.mjs';

export const PBKDF2_ITERATIONS = 600000;

// roomSalt and deriveRoomKey are version 1's room secret.
export async function roomSalt(serverId, room) {
  const z = new Uint8Array([0]);
  return new Uint8Array(await subtle().digest('SHA-256', concat(enc.encode('onionchat/1 salt'), z, enc.encode(serverId), z, enc.encode(room))));
}

export async function deriveRoomKey(passphrase, serverId, room, iterations = PBKDF2_ITERATIONS) {
  const s = subtle();
  const pw = await s.importKey('raw', enc.encode(passphrase.normalize('NFC')), 'PBKDF2', false, ['deriveBits']);
  const bits = new Uint8Array(await s.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: await roomSalt(serverId, room), iterations }, pw, 256));
  try {
    return await s.importKey('raw', bits, 'HKDF', false, ['deriveKey', 'deriveBits']);
  } finally {
    bits.fill(0);
  }
}

export const ENVELOPE_VERSION = 1;
export const SENDER_ID_BYTES = 16;
export const IV_BYTES = 12; // 96-bit random IVs: at most 2^32 messages per key (NIST SP 800-38D)
export const MAX_MESSAGES_PER_SENDER = 2 ** 32;
export const MAX_TEXT_CHARS = 8000;

// senderKey derives the AES-256-GCM key of one sender session.
export async function senderKey(roomKey, senderId) {
  return subtle().deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: senderId, info: enc.encode('onionchat/1 message') },
    roomKey, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

function additionalData(room, senderId) {
  const z = new Uint8Array([0]);
  return concat(enc.encode('onionchat/1'), z, enc.encode(room), z, enc.encode(toHex(senderId)));
}

// A DecryptError says why a message could not be read; the page shows it.
export class DecryptError extends Error {
  constructor(kind, message) { super(message); this.kind = kind; }
}

// Sender is this page's sending side: its random id, its key and counter.
export class Sender {
  static async create(roomKey, room, name) {
    const id = crypto.getRandomValues(new Uint8Array(SENDER_ID_BYTES));
    return new Sender(id, await senderKey(roomKey, id), room, name);
  }

  constructor(id, key, room, name) {
    this.id = id;
    this.key = key;
    this.room = room;
    this.name = name;
    this.counter = 0;
  }

  // seal encrypts text into an envelope (bytes). ivForTest exists only for
  // the known-answer test.
  async seal(text, time = Date.now(), ivForTest) {
    if (typeof text !== 'string' || text.length === 0) throw new Error('empty message');
    if (text.length > MAX_TEXT_CHARS) throw new Error(`message longer than ${MAX_TEXT_CHARS} characters`);
    if (this.counter >= MAX_MESSAGES_PER_SENDER) throw new Error('this session has sent too many messages; reload the page');
    this.counter++;
    const iv = ivForTest || crypto.getRandomValues(new Uint8Array(IV_BYTES));
    const inner = enc.encode(JSON.stringify({ s: this.name, t: text, ts: time, n: this.counter }));
    const ct = new Uint8Array(await subtle().encrypt(
      { name: 'AES-GCM', iv, additionalData: additionalData(this.room, this.id), tagLength: 128 }, this.key, inner));
    return concat(new Uint8Array([ENVELOPE_VERSION]), this.id, iv, ct);
  }
}

// Receiver opens envelopes for one room, remembering each sender's key and
// the highest counter seen so that replays are dropped.
export class Receiver {
  constructor(roomKey, room) {
    this.roomKey = roomKey;
    this.room = room;
    this.keys = new Map(); // hex(senderId) -> Promise<CryptoKey>
    this.last = new Map(); // hex(senderId) -> highest counter accepted
  }

  // open returns {sender, text, time, counter, senderId} or throws a
  // DecryptError whose kind is one of: "version", "format", "key" (wrong
  // passphrase or altered), "replay", "sender" (name differs from the relay's).
  async open(envelope, relaySender) {
    if (!(envelope instanceof Uint8Array) || envelope.length < 1) throw new DecryptError('format', 'empty message');
    if (envelope[0] !== ENVELOPE_VERSION) {
      throw new DecryptError('version', `message of protocol version ${envelope[0]}; this page speaks version ${ENVELOPE_VERSION}`);
    }
    if (envelope.length < 1 + SENDER_ID_BYTES + IV_BYTES + 16) throw new DecryptError('format', 'message too short');
    const id = envelope.subarray(1, 1 + SENDER_ID_BYTES);
    const iv = envelope.subarray(1 + SENDER_ID_BYTES, 1 + SENDER_ID_BYTES + IV_BYTES);
    const ct = envelope.subarray(1 + SENDER_ID_BYTES + IV_BYTES);
    const hid = toHex(id);
    let key = this.keys.get(hid);
    if (!key) {
      key = senderKey(this.roomKey, id.slice());
      this.keys.set(hid, key);
    }
    let inner;
    try {
      const pt = await subtle().decrypt({ name: 'AES-GCM', iv, additionalData: additionalData(this.room, id), tagLength: 128 }, await key, ct);
      inner = JSON.parse(dec.decode(pt));
    } catch {
      throw new DecryptError('key', 'different passphrase, or the message was altered');
    }
    if (!inner || typeof inner.s !== 'string' || typeof inner.t !== 'string' || !Number.isSafeInteger(inner.n) ||
        inner.n < 1 || !Number.isFinite(inner.ts)) {
      throw new DecryptError('format', 'malformed message');
    }
    const last = this.last.get(hid) || 0;
    if (inner.n <= last) throw new DecryptError('replay', 'message replayed');
    if (relaySender !== undefined && relaySender !== null && inner.s !== relaySender) {
      throw new DecryptError('sender', `message says it is from "${inner.s}" but the relay says "${relaySender}"`);
    }
    this.last.set(hid, inner.n);
    return { sender: inner.s, text: inner.t, time: inner.ts, counter: inner.n, senderId: hid };
  }
}
