// identity.mjs: a page session's signature key and what people compare of
// it (docs/protocol.md §9, §13):
//
//   signature key  Ed25519, made by Web Crypto non-extractable: no script,
//                  ours included, can read its private half
//   safety code    SHA-256("onionchat/4 code" 0x00 ‖ Ed25519 public key (32))
//                  as 5 groups of 5 digits
//
// The key is the member's MLS signature key (mls.mjs): everything a member
// sends in the room is signed with it, so the code shown beside a name is
// the key that signed what is shown under it. It is new in every page
// session unless the person asked to keep their code (keystore.mjs).

import { enc, concat, subtle } from './bytes.mjs';

export const SAFETY_GROUPS = 5;
export const ED25519 = { name: 'Ed25519' };

// newSigningPair makes a signature key pair whose private half no script
// can read (the public half stays exportable, as Web Crypto makes it).
export function newSigningPair() {
  return subtle().generateKey(ED25519, false, ['sign', 'verify']);
}

// publicBytes returns the raw 32-byte public key of a pair.
export async function publicBytes(pair) {
  return new Uint8Array(await subtle().exportKey('raw', pair.publicKey));
}

// safetyCode turns an Ed25519 public key (32 raw bytes) into what friends
// read aloud: 5 chunks of 5 bytes of its hash, each a big-endian number
// mod 100,000, written as 5 digits.
export async function safetyCode(publicKey) {
  const h = new Uint8Array(await subtle().digest('SHA-256', concat(enc.encode('onionchat/4 code'), new Uint8Array([0]), publicKey)));
  const groups = [];
  for (let i = 0; i < SAFETY_GROUPS; i++) {
    let n = 0;
    for (let j = 0; j < 5; j++) n = n * 256 + h[i * 5 + j];
    groups.push(String(n % 100000).padStart(5, '0'));
  }
  return groups.join(' ');
}

// supported says whether this browser's Web Crypto has what the page's
// MLS cipher suite needs (Ed25519 and X25519: Firefox 130 and Tor Browser
// 15 onwards, Chromium 133 onwards), trying each once.
export async function supported() {
  try {
    const s = subtle();
    const sig = await s.generateKey(ED25519, false, ['sign', 'verify']);
    await s.sign(ED25519, sig.privateKey, new Uint8Array(1));
    const dh = await s.generateKey({ name: 'X25519' }, false, ['deriveBits']);
    await s.deriveBits({ name: 'X25519', public: dh.publicKey }, dh.privateKey, 256);
    return true;
  } catch {
    return false;
  }
}
