// envelope2.mjs: the byte layout of protocol version 2's three envelopes,
// and the encryption and signature of each. Every envelope starts with the
// version byte 0x02 and a type byte; docs/protocol.md §6 is the reference.
//
// context C = "onionchat/2" 0x00 room 0x00 (identity.mjs)
//
// hello (0x01), sealed under the hello key:
//   02 01 ‖ iv(12) ‖ AES-GCM(hello key, iv, ad = C ‖ 02 01, inner)
//   inner = flags(1) ‖ ecdh pub(65) ‖ signing pub(65) ‖ chain id(8) ‖ name length(1) ‖ name ‖ sig(64)
//   sig   = ECDSA(signing key, C ‖ 02 01 ‖ inner without sig)
// distribution (0x02), one chain key wrapped for each recipient:
//   02 02 ‖ sender key id(8) ‖ chain id(8) ‖ counter(4) ‖ n(2) ‖ n × entry ‖ sig(64)
//   entry = recipient key id(8) ‖ iv(12) ‖ AES-GCM(pairwise key, iv, ad, chain key(32)) (48)
//   ad    = C ‖ 02 02 ‖ sender key id ‖ chain id ‖ counter ‖ recipient key id
//   sig   = ECDSA(signing key, C ‖ everything before sig)
// message (0x03):
//   02 03 ‖ chain id(8) ‖ counter(4) ‖ iv(12) ‖ AES-GCM(message key, iv, ad = C ‖ first 14 bytes, inner) ‖ sig(64)
//   inner = JSON {"s": sender name, "t": text, "ts": ms since 1970}
//   sig   = ECDSA(signing key, C ‖ everything before sig)

import { enc, dec, concat, u32, readU32, u16, readU16, subtle, randomBytes } from './bytes.mjs';
import { context, verify, PUBLIC_KEY_BYTES, KEY_ID_BYTES, SIGNATURE_BYTES } from './identity.mjs';
import { CHAIN_ID_BYTES, CHAIN_KEY_BYTES } from './chain.mjs';

export const VERSION = 2;
export const T_HELLO = 0x01;
export const T_DISTRIBUTION = 0x02;
export const T_MESSAGE = 0x03;

export const F_ANNOUNCE = 0x01;   // "I (re)joined: send me your hello and your chain"
export const F_WANT_CHAIN = 0x02; // "send me your current chain"

export const IV_BYTES = 12;
export const TAG_BYTES = 16;
export const MAX_NAME_BYTES = 255;
export const ENTRY_BYTES = KEY_ID_BYTES + IV_BYTES + CHAIN_KEY_BYTES + TAG_BYTES; // 68
export const MAX_ENTRIES = 400; // per distribution frame: 400 × 68 bytes stays well inside a 64 KiB frame
const MESSAGE_HEADER_BYTES = 2 + CHAIN_ID_BYTES + 4; // 14
const DIST_HEADER_BYTES = 2 + KEY_ID_BYTES + CHAIN_ID_BYTES + 4 + 2; // 24

// An EnvelopeError says why an envelope was refused; kind is one of
// "format", "key" (could not be decrypted), "signature".
export class EnvelopeError extends Error {
  constructor(kind, message) { super(message); this.kind = kind; }
}

const gcm = (iv, additionalData) => ({ name: 'AES-GCM', iv, additionalData, tagLength: 128 });

// ---------------------------------------------------------------- hello

export async function sealHello({ helloKey, identity, room, name, flags, chainId }) {
  const nameBytes = enc.encode(name);
  if (nameBytes.length > MAX_NAME_BYTES) throw new Error('name too long');
  const head = new Uint8Array([VERSION, T_HELLO]);
  const body = concat(new Uint8Array([flags]), identity.ecdhPub, identity.sigPub, chainId, new Uint8Array([nameBytes.length]), nameBytes);
  const c = context(room);
  const sig = await identity.sign(concat(c, head, body));
  const iv = randomBytes(IV_BYTES);
  const ct = new Uint8Array(await subtle().encrypt(gcm(iv, concat(c, head)), helloKey, concat(body, sig)));
  return concat(head, iv, ct);
}

// openHello decrypts a hello and checks that it is signed by the signing
// key it carries. It returns the raw fields; the caller imports the keys.
export async function openHello(helloKey, room, env) {
  if (env.length < 2 + IV_BYTES + TAG_BYTES) throw new EnvelopeError('format', 'hello too short');
  const head = env.subarray(0, 2);
  const iv = env.subarray(2, 2 + IV_BYTES);
  const c = context(room);
  let inner;
  try {
    inner = new Uint8Array(await subtle().decrypt(gcm(iv, concat(c, head)), helloKey, env.subarray(2 + IV_BYTES)));
  } catch {
    throw new EnvelopeError('key', 'hello could not be opened');
  }
  const fixed = 1 + 2 * PUBLIC_KEY_BYTES + CHAIN_ID_BYTES + 1;
  if (inner.length < fixed + SIGNATURE_BYTES) throw new EnvelopeError('format', 'hello too short');
  const nameLen = inner[fixed - 1];
  if (inner.length !== fixed + nameLen + SIGNATURE_BYTES) throw new EnvelopeError('format', 'hello has the wrong length');
  const body = inner.subarray(0, fixed + nameLen);
  const sig = inner.subarray(fixed + nameLen);
  let o = 0;
  const flags = body[o++];
  const ecdhPub = body.slice(o, o += PUBLIC_KEY_BYTES);
  const sigPub = body.slice(o, o += PUBLIC_KEY_BYTES);
  const chainId = body.slice(o, o += CHAIN_ID_BYTES);
  let name;
  try {
    name = dec.decode(body.subarray(o + 1));
  } catch {
    throw new EnvelopeError('format', 'hello name is not UTF-8');
  }
  return { flags, ecdhPub, sigPub, chainId, name, signed: concat(head, body), sig: sig.slice() };
}

// ---------------------------------------------------------------- distribution

function entryAD(c, senderKeyId, chainId, counter, recipientKeyId) {
  return concat(c, new Uint8Array([VERSION, T_DISTRIBUTION]), senderKeyId, chainId, u32(counter), recipientKeyId);
}

// sealDistribution wraps one chain position (chain id, counter, raw key)
// for each recipient {keyId, pairwise} and signs the whole frame.
export async function sealDistribution({ identity, room, chainId, counter, key, recipients }) {
  if (recipients.length > MAX_ENTRIES) throw new Error('too many recipients for one frame');
  const c = context(room);
  const entries = [];
  for (const r of recipients) {
    const iv = randomBytes(IV_BYTES);
    const ct = new Uint8Array(await subtle().encrypt(gcm(iv, entryAD(c, identity.keyId, chainId, counter, r.keyId)), r.pairwise, key));
    entries.push(r.keyId, iv, ct);
  }
  const signed = concat(new Uint8Array([VERSION, T_DISTRIBUTION]), identity.keyId, chainId, u32(counter), u16(recipients.length), ...entries);
  return concat(signed, await identity.sign(concat(c, signed)));
}

export function parseDistribution(env) {
  if (env.length < DIST_HEADER_BYTES + SIGNATURE_BYTES) throw new EnvelopeError('format', 'distribution too short');
  const n = readU16(env, DIST_HEADER_BYTES - 2);
  if (env.length !== DIST_HEADER_BYTES + n * ENTRY_BYTES + SIGNATURE_BYTES) throw new EnvelopeError('format', 'distribution has the wrong length');
  let o = 2;
  const senderKeyId = env.slice(o, o += KEY_ID_BYTES);
  const chainId = env.slice(o, o += CHAIN_ID_BYTES);
  const counter = readU32(env, o);
  const entries = [];
  for (let i = 0, p = DIST_HEADER_BYTES; i < n; i++, p += ENTRY_BYTES) {
    entries.push({
      keyId: env.subarray(p, p + KEY_ID_BYTES),
      iv: env.subarray(p + KEY_ID_BYTES, p + KEY_ID_BYTES + IV_BYTES),
      wrapped: env.subarray(p + KEY_ID_BYTES + IV_BYTES, p + ENTRY_BYTES),
    });
  }
  const cut = env.length - SIGNATURE_BYTES;
  return { senderKeyId, chainId, counter, entries, signed: env.subarray(0, cut), sig: env.subarray(cut) };
}

export async function verifySigned(room, parsed, sigKey) {
  return verify(sigKey, parsed.sig, concat(context(room), parsed.signed));
}

// unwrapEntry opens the entry addressed to this page straight into a
// non-extractable HMAC chain key.
export async function unwrapEntry({ room, parsed, entry, pairwise }) {
  const ad = entryAD(context(room), parsed.senderKeyId, parsed.chainId, parsed.counter, entry.keyId);
  try {
    return await subtle().unwrapKey('raw', entry.wrapped, pairwise, gcm(entry.iv, ad),
      { name: 'HMAC', hash: 'SHA-256', length: 256 }, false, ['sign']);
  } catch {
    throw new EnvelopeError('key', 'chain key could not be unwrapped');
  }
}

// ---------------------------------------------------------------- message

export async function sealMessage({ identity, room, chainId, counter, messageKey, inner }) {
  const c = context(room);
  const header = concat(new Uint8Array([VERSION, T_MESSAGE]), chainId, u32(counter));
  const iv = randomBytes(IV_BYTES);
  const ct = new Uint8Array(await subtle().encrypt(gcm(iv, concat(c, header)), messageKey, enc.encode(JSON.stringify(inner))));
  const signed = concat(header, iv, ct);
  return concat(signed, await identity.sign(concat(c, signed)));
}

export function parseMessage(env) {
  if (env.length < MESSAGE_HEADER_BYTES + IV_BYTES + TAG_BYTES + SIGNATURE_BYTES) throw new EnvelopeError('format', 'message too short');
  const cut = env.length - SIGNATURE_BYTES;
  return {
    header: env.subarray(0, MESSAGE_HEADER_BYTES),
    chainId: env.slice(2, 2 + CHAIN_ID_BYTES),
    counter: readU32(env, 2 + CHAIN_ID_BYTES),
    iv: env.subarray(MESSAGE_HEADER_BYTES, MESSAGE_HEADER_BYTES + IV_BYTES),
    ct: env.subarray(MESSAGE_HEADER_BYTES + IV_BYTES, cut),
    signed: env.subarray(0, cut),
    sig: env.subarray(cut),
  };
}

// openMessage decrypts a parsed message whose signature was checked.
export async function openMessage(messageKey, room, parsed) {
  let inner;
  try {
    const pt = await subtle().decrypt(gcm(parsed.iv, concat(context(room), parsed.header)), messageKey, parsed.ct);
    inner = JSON.parse(dec.decode(pt));
  } catch {
    throw new EnvelopeError('key', 'message could not be decrypted');
  }
  if (!inner || typeof inner.s !== 'string' || typeof inner.t !== 'string' || !Number.isFinite(inner.ts)) {
    throw new EnvelopeError('format', 'malformed message');
  }
  return inner;
}
