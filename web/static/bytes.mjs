// bytes.mjs: byte-string helpers shared by every crypto module of the page
// (concatenation, hex, base64, big-endian integers, comparison, random
// bytes, the Web Crypto handle). No keys and no state live here.

export const enc = new TextEncoder();
export const dec = new TextDecoder('utf-8', { fatal: true });

export function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export function toHex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export function fromHex(s) {
  if (s.length % 2 || /[^0-9a-f]/i.test(s)) throw new Error('bad hex');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
  return out;
}

export function toBase64(b) {
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// base64url without padding (RFC 4648 §5), as the relay writes room and
// session ids.
export function toBase64url(b) {
  return toBase64(b).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function fromBase64url(s) {
  if (/[^A-Za-z0-9_-]/.test(s)) throw new Error('bad base64url');
  const t = s.replace(/-/g, '+').replace(/_/g, '/');
  return fromBase64(t + '='.repeat((4 - (t.length % 4)) % 4));
}

export function u32(n) {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError('not a 32-bit unsigned integer');
  return new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

export function readU32(b, o) {
  return b[o] * 0x1000000 + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3];
}

export function u16(n) {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new RangeError('not a 16-bit unsigned integer');
  return new Uint8Array([n >>> 8, n & 0xff]);
}

export function readU16(b, o) { return (b[o] << 8) + b[o + 1]; }

export function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export function randomBytes(n) { return globalThis.crypto.getRandomValues(new Uint8Array(n)); }

export function subtle() {
  const s = globalThis.crypto && globalThis.crypto.subtle;
  if (!s) throw new Error('Web Crypto is not available here (not a secure context)');
  return s;
}
