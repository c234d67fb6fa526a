// keystore.mjs: "keep my safety code in this browser". It keeps one thing:
// this browser's Ed25519 signing key pair (its MLS signature key),
// generated non-extractable, in IndexedDB (the browser stores the CryptoKey
// itself; no page script can read its private half). Never a group's
// secrets, never the passphrase: forward secrecy is unchanged. Tor Browser keeps IndexedDB in
// memory only, so the key is gone when it closes or with New Identity; in
// other browsers it stays until the person turns the option off (which
// deletes it) or clears the site's data. Off by default.

import { newSigningPair } from './identity.mjs';

const DB = 'onionchat';
const STORE = 'keys';
const KEY = 'signing-ed25519'; // protocol 3's ECDSA key, under 'signing', is never used again

function db() {
  return new Promise((resolve, reject) => {
    if (!globalThis.indexedDB) { reject(new Error('this browser has no IndexedDB here')); return; }
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error || new Error('IndexedDB refused'));
  });
}

function tx(mode, fn) {
  return db().then((d) => new Promise((resolve, reject) => {
    const t = d.transaction(STORE, mode);
    const req = fn(t.objectStore(STORE));
    t.oncomplete = () => { d.close(); resolve(req && req.result); };
    t.onerror = t.onabort = () => { d.close(); reject(t.error || new Error('IndexedDB transaction failed')); };
  }));
}

// kept returns the kept signing pair, or null.
export async function kept() {
  try {
    const v = await tx('readonly', (s) => s.get(KEY));
    return v && v.privateKey && v.publicKey ? v : null;
  } catch {
    return null;
  }
}

// keep returns the kept signing pair, making and storing one if none is
// kept yet.
export async function keep() {
  const have = await kept();
  if (have) return have;
  const pair = await newSigningPair();
  await tx('readwrite', (s) => s.put({ privateKey: pair.privateKey, publicKey: pair.publicKey }, KEY));
  return pair;
}

// forget deletes the kept signing pair, if any.
export async function forget() {
  try { await tx('readwrite', (s) => s.delete(KEY)); } catch { /* nothing kept */ }
}
