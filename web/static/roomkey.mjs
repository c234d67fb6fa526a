// roomkey.mjs: the room secret, the one thing every protocol version makes
// from the passphrase: PBKDF2-HMAC-SHA256 with 600,000 iterations over the
// NFC passphrase and a salt unique to the server and the room. It is held
// only as a non-extractable HKDF key, from which version 1 derives sender
// keys (crypto.mjs) and version 2 its hello key (identity.mjs).
// docs/protocol.md §5 describes it.

import { enc, concat, subtle } from './bytes.mjs';

export const PBKDF2_ITERATIONS = 600000; // OWASP Password Storage Cheat Sheet, PBKDF2-HMAC-SHA256

// roomSalt is unique to this server and room, so that the same passphrase
// gives unrelated keys in other rooms and on other servers, and nobody can
// precompute a dictionary for every onionchat at once. Both versions use
// this salt (which is why its label says "onionchat/1").
export async function roomSalt(serverId, room) {
  const z = new Uint8Array([0]);
  const d = await subtle().digest('SHA-256', concat(enc.encode('onionchat/1 salt'), z, enc.encode(serverId), z, enc.encode(room)));
  return new Uint8Array(d);
}

// deriveRoomKey stretches the passphrase into the room secret, held as a
// non-extractable HKDF key. The caller clears its copy of the passphrase.
export async function deriveRoomKey(passphrase, serverId, room, iterations = PBKDF2_ITERATIONS) {
  const s = subtle();
  const pw = await s.importKey('raw', enc.encode(passphrase.normalize('NFC')), 'PBKDF2', false, ['deriveBits']);
  const salt = await roomSalt(serverId, room);
  const bits = new Uint8Array(await s.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, pw, 256));
  try {
    return await s.importKey('raw', bits, 'HKDF', false, ['deriveKey', 'deriveBits']);
  } finally {
    bits.fill(0);
  }
}
