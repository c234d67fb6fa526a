// roomkey.mjs: everything the page makes from the passphrase, once per
// room and server (docs/protocol.md §9):
//
//   salt        = SHA-256("onionchat/4 salt" 0x00 server id 0x00 room name)
//   room secret = PBKDF2-HMAC-SHA256(NFC(passphrase), salt, 600,000, 256 bits)
//   room id     = HKDF-SHA256(room secret, "", "onionchat/4 room id", 16 bytes), base64url
//   frame key   = HKDF-SHA256(room secret, "", "onionchat/4 frame") -> AES-256-GCM
//   check code  = SHA-256("onionchat/4 check" 0x00 room id)[0..5] mod 10^8, as "1234 5678"
//
// The room id is all the relay learns of a room: a wrong passphrase gives
// another id, hence another (empty) room. The frame key seals the outer
// layer of every envelope. Neither the passphrase nor the room secret
// outlives roomKeys: the encoded passphrase is zeroed, the secret is a
// non-extractable key the caller drops.

import { enc, concat, subtle, toBase64url } from './bytes.mjs';

export const PBKDF2_ITERATIONS = 600000; // OWASP Password Storage Cheat Sheet, PBKDF2-HMAC-SHA256
export const ROOM_ID_BYTES = 16;

// normRoom is the room name as it enters the salt: the same for everyone
// who types it, whatever their keyboard.
export function normRoom(s) { return s.trim().normalize('NFC').toLowerCase(); }

// roomSalt is unique to this server and room, so that the same passphrase
// gives unrelated keys in other rooms and on other servers, and nobody can
// precompute a dictionary for every onionchat at once.
export async function roomSalt(serverId, room) {
  const z = new Uint8Array([0]);
  const d = await subtle().digest('SHA-256', concat(enc.encode('onionchat/4 salt'), z, enc.encode(serverId), z, enc.encode(room)));
  return new Uint8Array(d);
}

// deriveRoomSecret stretches the passphrase into the room secret, held as
// a non-extractable HKDF key; the encoded passphrase is zeroed.
export async function deriveRoomSecret(passphrase, serverId, room, iterations = PBKDF2_ITERATIONS) {
  const s = subtle();
  const pwBytes = enc.encode(passphrase.normalize('NFC'));
  let pw;
  try {
    pw = await s.importKey('raw', pwBytes, 'PBKDF2', false, ['deriveBits']);
  } finally {
    pwBytes.fill(0);
  }
  const salt = await roomSalt(serverId, room);
  const bits = new Uint8Array(await s.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, pw, 256));
  try {
    return await s.importKey('raw', bits, 'HKDF', false, ['deriveKey', 'deriveBits']);
  } finally {
    bits.fill(0);
  }
}

function info(label) { return { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: enc.encode(label) }; }

// checkCode is the short code friends compare by voice to know they are in
// the same room (same server, room name and passphrase).
export async function checkCode(roomId) {
  const h = new Uint8Array(await subtle().digest('SHA-256', concat(enc.encode('onionchat/4 check'), new Uint8Array([0]), enc.encode(roomId))));
  let n = 0;
  for (let i = 0; i < 5; i++) n = n * 256 + h[i];
  const d = String(n % 100000000).padStart(8, '0');
  return d.slice(0, 4) + ' ' + d.slice(4);
}

// roomKeys derives what the page keeps of a room from its secret.
export async function roomKeys(secret) {
  const s = subtle();
  const id = new Uint8Array(await s.deriveBits(info('onionchat/4 room id'), secret, ROOM_ID_BYTES * 8));
  const roomId = toBase64url(id);
  const frameKey = await s.deriveKey(info('onionchat/4 frame'), secret, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
  return { roomId, frameKey, checkCode: await checkCode(roomId) };
}

// deriveRoom is deriveRoomSecret then roomKeys: the room secret never
// leaves this function.
export async function deriveRoom(passphrase, serverId, room, iterations = PBKDF2_ITERATIONS) {
  return roomKeys(await deriveRoomSecret(passphrase, serverId, room, iterations));
}
