// identity.mjs: one browser session's keys, and what a page learns of
// another member's keys from their hello (docs/protocol.md §9):
//
//   ECDH P-256 key pair   -> pairwise keys that wrap chain keys for one member
//   ECDSA P-256 key pair  -> signatures on every hello, distribution and message
//   key id       = SHA-256(ecdh public ‖ signing public)[0..8]  (raw, 65-byte points)
//   safety code  = SHA-256(SPKI of the signing public key) as 5 groups of 5 digits
//   pairwise key = HKDF-SHA256(ECDH shared x, salt = "",
//                  info = "onionchat/3 pairwise" 0x00 room id 0x00 lower ‖ higher ECDH public key)
//
// Private keys are non-extractable. The ECDH pair is new in every page
// session and never stored; the signing pair is too, unless the person
// asked to keep their safety code in this browser (keystore.mjs), in which
// case the same non-extractable signing pair comes back on a reload.

import { enc, concat, subtle, equal } from './bytes.mjs';

export const PUBLIC_KEY_BYTES = 65; // uncompressed P-256 point
export const KEY_ID_BYTES = 8;
export const SIGNATURE_BYTES = 64; // IEEE P1363 r ‖ s
export const SAFETY_GROUPS = 5;

const ECDH = { name: 'ECDH', namedCurve: 'P-256' };
export const ECDSA = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGN = { name: 'ECDSA', hash: 'SHA-256' };

// context is the prefix of every signed byte string and every additional
// data of protocol version 3: it binds the version and the room id.
export function context(roomId) {
  const z = new Uint8Array([0]);
  return concat(enc.encode('onionchat/3'), z, enc.encode(roomId), z);
}

export async function keyIdOf(ecdhPub, sigPub) {
  return new Uint8Array(await subtle().digest('SHA-256', concat(ecdhPub, sigPub))).slice(0, KEY_ID_BYTES);
}

// safetyCode turns a signing public key into what friends read aloud:
// SHA-256 of its SPKI encoding, 5 chunks of 5 bytes, each a big-endian
// number mod 100,000, written as 5 digits.
export async function safetyCode(sigPublicKey) {
  const spki = new Uint8Array(await subtle().exportKey('spki', sigPublicKey));
  const h = new Uint8Array(await subtle().digest('SHA-256', spki));
  const groups = [];
  for (let i = 0; i < SAFETY_GROUPS; i++) {
    let n = 0;
    for (let j = 0; j < 5; j++) n = n * 256 + h[i * 5 + j];
    groups.push(String(n % 100000).padStart(5, '0'));
  }
  return groups.join(' ');
}

// verify checks an ECDSA signature. Web Crypto's ECDSA signatures are
// malleable (r, n−s verifies too); nothing here relies on a signature
// being unique: replays are told by epoch and counter, never by signature.
export async function verify(sigKey, signature, data) {
  if (signature.length !== SIGNATURE_BYTES) return false;
  try {
    return await subtle().verify(SIGN, sigKey, signature, data);
  } catch {
    return false;
  }
}

// newSigningPair makes a non-extractable signing key pair (the public half
// stays exportable, as Web Crypto makes it).
export function newSigningPair() {
  return subtle().generateKey(ECDSA, false, ['sign', 'verify']);
}

// Identity is this session's own key pairs.
export class Identity {
  // create makes a fresh ECDH pair, and uses signing (a kept CryptoKeyPair)
  // or a fresh signing pair.
  static async create({ signing } = {}) {
    const s = subtle();
    const ecdh = await s.generateKey(ECDH, false, ['deriveBits']);
    const sig = signing || await newSigningPair();
    const ecdhPub = new Uint8Array(await s.exportKey('raw', ecdh.publicKey));
    const sigPub = new Uint8Array(await s.exportKey('raw', sig.publicKey));
    return new Identity(ecdh, sig, ecdhPub, sigPub, await keyIdOf(ecdhPub, sigPub), await safetyCode(sig.publicKey));
  }

  constructor(ecdh, sig, ecdhPub, sigPub, keyId, code) {
    this.ecdh = ecdh;
    this.sig = sig;
    this.ecdhPub = ecdhPub;
    this.sigPub = sigPub;
    this.keyId = keyId;
    this.code = code;
  }

  async sign(data) {
    return new Uint8Array(await subtle().sign(SIGN, this.sig.privateKey, data));
  }

  // pairwise derives the AES-256-GCM key this session shares with the
  // holder of peer (a Peer): both sides compute the same key.
  async pairwise(peer, roomId) {
    const s = subtle();
    const bits = new Uint8Array(await s.deriveBits({ name: 'ECDH', public: peer.ecdhKey }, this.ecdh.privateKey, 256));
    try {
      const ikm = await s.importKey('raw', bits, 'HKDF', false, ['deriveKey']);
      const [lo, hi] = compare(this.ecdhPub, peer.ecdhPub) <= 0 ? [this.ecdhPub, peer.ecdhPub] : [peer.ecdhPub, this.ecdhPub];
      const z = new Uint8Array([0]);
      const info = concat(enc.encode('onionchat/3 pairwise'), z, enc.encode(roomId), z, lo, hi);
      return await s.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info },
        ikm, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'unwrapKey']);
    } finally {
      bits.fill(0);
    }
  }
}

function compare(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

// Peer is another member's public keys, from a hello whose signature was
// made with the signing key it carries.
export class Peer {
  static async import(ecdhPub, sigPub) {
    const s = subtle();
    if (ecdhPub.length !== PUBLIC_KEY_BYTES || sigPub.length !== PUBLIC_KEY_BYTES) throw new Error('bad public key length');
    const ecdhKey = await s.importKey('raw', ecdhPub, ECDH, true, []);
    const sigKey = await s.importKey('raw', sigPub, ECDSA, true, ['verify']);
    return new Peer(ecdhPub, sigPub, ecdhKey, sigKey, await keyIdOf(ecdhPub, sigPub), await safetyCode(sigKey));
  }

  constructor(ecdhPub, sigPub, ecdhKey, sigKey, keyId, code) {
    this.ecdhPub = ecdhPub;
    this.sigPub = sigPub;
    this.ecdhKey = ecdhKey;
    this.sigKey = sigKey;
    this.keyId = keyId;
    this.code = code;
    this.pairwiseKey = null; // Promise<CryptoKey>, made on first use
  }

  same(other) { return equal(this.ecdhPub, other.ecdhPub) && equal(this.sigPub, other.sigPub); }
}
