// Tests of strip.mjs on real sample pictures (testdata/photo.*, made with
// ImageMagick and given GPS, camera, author, IPTC and comment data with
// exiftool): every trace of it goes, the picture data itself is kept byte
// for byte, and a JPEG keeps its orientation.
//   node --test web/jstest/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { stripMetadata, pictureType, StripError } from '../static/strip.mjs';

const load = (f) => new Uint8Array(readFileSync(new URL('./testdata/' + f, import.meta.url)));
const has = (b, s) => Buffer.from(b).includes(Buffer.from(s, 'latin1'));
const SECRETS = ['TestCam', 'Model X', 'SN123456', 'Alice Example', 'Paris', 'secret comment', 'GPS'];

test('JPEG: EXIF (GPS, camera, serial), XMP, IPTC and comments go; the scan data stays; so does the orientation', () => {
  const src = load('photo.jpg');
  for (const s of ['TestCam', 'Alice Example', 'Paris', 'secret comment']) assert.ok(has(src, s), `the sample has ${s}`);
  const r = stripMetadata(src);
  assert.equal(r.type, 'image/jpeg');
  assert.deepEqual(r.removed.sort(), ['EXIF', 'IPTC', 'XMP', 'comment']);
  for (const s of SECRETS) assert.ok(!has(r.bytes, s), `${s} is gone`);
  // From the first quantisation table on, nothing changed: the picture is the same picture.
  const from = (b) => Buffer.from(b).subarray(Buffer.from(b).indexOf(Buffer.from([0xff, 0xdb])));
  assert.deepEqual(from(r.bytes), from(src));
  // One small Exif block remains, holding only the orientation (6: rotate 90°).
  const i = Buffer.from(r.bytes).indexOf(Buffer.from('Exif\0\0', 'latin1'));
  assert.ok(i > 0);
  assert.equal((r.bytes[i - 2] << 8) | r.bytes[i - 1], 34);
  assert.deepEqual([...r.bytes.subarray(i + 6 + 10, i + 6 + 12)], [0x01, 0x12]);
  assert.equal(r.bytes[i + 6 + 19], 6);
  assert.deepEqual(stripMetadata(r.bytes).bytes, r.bytes, 'stripping twice changes nothing more');
});

test('PNG: eXIf, text chunks and time go; IDAT stays', () => {
  const src = load('photo.png');
  const r = stripMetadata(src);
  assert.equal(r.type, 'image/png');
  assert.deepEqual(r.removed.sort(), ['EXIF', 'text', 'time']);
  for (const s of [...SECRETS, 'eXIf', 'tEXt', 'iTXt', 'tIME']) assert.ok(!has(r.bytes, s), `${s} is gone`);
  const idat = (b) => { const x = Buffer.from(b); const i = x.indexOf('IDAT') - 4; return x.subarray(i, i + 12 + x.readUInt32BE(i)); };
  assert.deepEqual(idat(r.bytes), idat(src));
});

test('WebP: EXIF and XMP chunks and their flags go; the image chunk stays; sizes add up', () => {
  const src = load('photo.webp');
  const r = stripMetadata(src);
  assert.equal(r.type, 'image/webp');
  assert.deepEqual(r.removed.sort(), ['EXIF', 'XMP']);
  for (const s of SECRETS) assert.ok(!has(r.bytes, s), `${s} is gone`);
  const b = Buffer.from(r.bytes);
  assert.equal(b.readUInt32LE(4), b.length - 8, 'the RIFF size is the new size');
  assert.equal(b[20] & 0x0c, 0, 'VP8X says no EXIF and no XMP');
  const vp8 = (x) => { x = Buffer.from(x); const i = x.indexOf('VP8 '); return x.subarray(i, i + 8 + x.readUInt32LE(i + 4)); };
  assert.deepEqual(vp8(r.bytes), vp8(src));
});

test('GIF: comments and XMP go; the image stays', () => {
  const src = load('photo.gif');
  const r = stripMetadata(src);
  assert.equal(r.type, 'image/gif');
  assert.deepEqual(r.removed.sort(), ['XMP', 'comment']);
  for (const s of SECRETS) assert.ok(!has(r.bytes, s), `${s} is gone`);
  assert.equal(r.bytes[r.bytes.length - 1], 0x3b);
  assert.ok(Buffer.from(src).includes(Buffer.from(r.bytes.subarray(r.bytes.indexOf(0x2c)))), 'the image descriptor and data are unchanged');
});

test('pictures are told by their bytes, not their names; anything else is not a picture; truncated pictures are refused', () => {
  assert.equal(pictureType(new TextEncoder().encode('%PDF-1.7 ...')), '');
  assert.equal(stripMetadata(new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"/>')), null);
  const src = load('photo.jpg');
  assert.throws(() => stripMetadata(src.subarray(0, 300)), StripError);
  assert.throws(() => stripMetadata(load('photo.png').subarray(0, 40)), StripError);
});
