// Tests of strip.mjs on real sample pictures: testdata/photo.* (made with
// ImageMagick, given GPS, camera, author, IPTC and comment data with
// exiftool) and testdata/leaky.* (the same pictures with that data hidden
// in every other place a picture can carry it, made by leaky.mjs). Every
// trace of it goes, only the allowed segments remain, the picture data is
// kept byte for byte, and a JPEG keeps its orientation. The same cleaning
// runs in Chromium and Firefox in internal/testing/e2e (pictures_test.go),
// where exiftool reads what the receiver got.
//   node --test web/jstest/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { stripMetadata, pictureType, uncleanableFormat, inlineSize, StripError, NotCleanable, MAX_INLINE_PIXELS } from '../static/strip.mjs';

const load = (f) => new Uint8Array(readFileSync(new URL('./testdata/' + f, import.meta.url)));
const has = (b, s) => Buffer.from(b).includes(Buffer.from(s, 'latin1'));
const SECRETS = ['TestCam', 'Model X', 'SN123456', 'Alice Example', 'Paris', 'secret comment', 'GPS', '48.8584', 'TCAM', 'MDLX'];

function noSecrets(r, what) {
  for (const s of SECRETS) assert.ok(!has(r.bytes, s), `${what}: ${s} is gone`);
}

// jpegMarkers lists the markers of a JPEG up to its first scan, and
// whether anything follows EOI.
function jpegMarkers(b) {
  const out = [];
  for (let i = 2; i < b.length;) {
    const m = b[i + 1];
    out.push(m.toString(16));
    if (m === 0xda) break;
    i += 2 + ((b[i + 2] << 8) | b[i + 3]);
  }
  return out;
}

function pngChunks(b) {
  const x = Buffer.from(b);
  const out = [];
  for (let i = 8; i < x.length;) { out.push(x.toString('latin1', i + 4, i + 8)); i += 12 + x.readUInt32BE(i); }
  return out;
}

function riffChunks(b) {
  const x = Buffer.from(b);
  const out = [];
  for (let i = 12; i + 8 <= x.length;) { const l = x.readUInt32LE(i + 4); out.push(x.toString('latin1', i, i + 4)); i += 8 + l + (l & 1); }
  return out;
}

test('JPEG: only frame, tables, scans, a bare JFIF, Adobe’s 12 bytes and the orientation remain', () => {
  for (const f of ['photo.jpg', 'leaky.jpg']) {
    const src = load(f);
    for (const s of ['TestCam', 'Alice Example', 'Paris', 'secret comment']) assert.ok(has(src, s), `${f} has ${s}`);
    const r = stripMetadata(src);
    assert.equal(r.type, 'image/jpeg');
    assert.deepEqual([r.width, r.height], [64, 48]);
    noSecrets(r, f);
    // From the first quantisation table on, nothing changed but what
    // followed the end: the picture is the same picture.
    const from = (b) => { const x = Buffer.from(b); return x.subarray(x.indexOf(Buffer.from([0xff, 0xdb])), x.lastIndexOf(Buffer.from([0xff, 0xd9])) + 2); };
    assert.deepEqual(from(r.bytes), from(src));
    assert.deepEqual(r.bytes.subarray(-2), new Uint8Array([0xff, 0xd9]), 'nothing after EOI');
    const allowed = new Set(['e0', 'e1', 'ee', 'db', 'c0', 'c4', 'da', 'dd']);
    for (const m of jpegMarkers(r.bytes)) assert.ok(allowed.has(m), `${f}: marker ${m} is not one drawing needs`);
    // The JFIF segment has no thumbnail; one small Exif block holds only
    // the orientation (6: rotate 90°).
    const x = Buffer.from(r.bytes);
    assert.equal(x.readUInt16BE(4), 16, 'JFIF without a thumbnail');
    const i = x.indexOf(Buffer.from('Exif\0\0', 'latin1'));
    assert.ok(i > 0);
    assert.equal(x.readUInt16BE(i - 2), 34);
    assert.deepEqual([...r.bytes.subarray(i + 6 + 10, i + 6 + 12)], [0x01, 0x12]);
    assert.equal(r.bytes[i + 6 + 19], 6);
    assert.deepEqual(stripMetadata(r.bytes).bytes, r.bytes, 'cleaning twice changes nothing more');
  }
  const r = stripMetadata(load('leaky.jpg'));
  assert.deepEqual(r.removed.sort(), ['APP14 data', 'APP15', 'EXIF', 'ICC profile', 'IPTC', 'MPF', 'XMP', 'comment', 'data after the picture', 'thumbnail']);
  const a = Buffer.from(r.bytes).indexOf(Buffer.from('Adobe', 'latin1'));
  assert.equal(Buffer.from(r.bytes).readUInt16BE(a - 2), 14, 'Adobe APP14 cut to its own 12 bytes');
});

test('PNG: only critical chunks and those that change drawing remain; IDAT stays', () => {
  for (const f of ['photo.png', 'leaky.png']) {
    const src = load(f);
    const r = stripMetadata(src);
    assert.equal(r.type, 'image/png');
    assert.deepEqual([r.width, r.height], [64, 48]);
    noSecrets(r, f);
    assert.deepEqual(pngChunks(r.bytes), ['IHDR', 'gAMA', 'cHRM', 'IDAT', 'IEND']);
    const idat = (b) => { const x = Buffer.from(b); const i = x.indexOf('IDAT') - 4; return x.subarray(i, i + 12 + x.readUInt32BE(i)); };
    assert.deepEqual(idat(r.bytes), idat(src));
  }
  assert.deepEqual(stripMetadata(load('leaky.png')).removed.sort(),
    ['EXIF', 'ICC profile', 'XMP', 'bKGD', 'caBX', 'data after the picture', 'prVt', 'sPLT', 'text', 'time']);
});

test('WebP: only VP8X (flags cleared) and image data remain; sizes add up', () => {
  for (const f of ['photo.webp', 'leaky.webp']) {
    const src = load(f);
    const r = stripMetadata(src);
    assert.equal(r.type, 'image/webp');
    assert.deepEqual([r.width, r.height], [64, 48]);
    noSecrets(r, f);
    assert.deepEqual(riffChunks(r.bytes), ['VP8X', 'VP8 ']);
    const b = Buffer.from(r.bytes);
    assert.equal(b.readUInt32LE(4), b.length - 8, 'the RIFF size is the new size');
    assert.equal(b[20] & 0x2c, 0, 'VP8X says no ICC, EXIF or XMP');
    const vp8 = (x) => { x = Buffer.from(x); const i = x.indexOf('VP8 '); return x.subarray(i, i + 8 + x.readUInt32LE(i + 4)); };
    assert.deepEqual(vp8(r.bytes), vp8(src));
  }
  assert.deepEqual(stripMetadata(load('leaky.webp')).removed.sort(), ['EXIF', 'ICC profile', 'TCAM', 'XMP', 'data after the picture']);
});

test('WebP: an animation keeps only the image data of each frame', () => {
  const src = Buffer.from(load('photo.webp'));
  const vp8 = src.subarray(src.indexOf('VP8 '));
  const vp8chunk = vp8.subarray(0, 8 + vp8.readUInt32LE(4));
  const riff = (type, data) => { const h = Buffer.alloc(8); h.write(type, 'latin1'); h.writeUInt32LE(data.length, 4); return Buffer.concat([h, data, Buffer.alloc(data.length & 1)]); };
  const frame = riff('ANMF', Buffer.concat([Buffer.alloc(6), Buffer.from([63, 0, 0, 47, 0, 0, 100, 0, 0, 0]), riff('XMP ', Buffer.from('Alice Example')), vp8chunk]));
  const vp8x = riff('VP8X', Buffer.from([0x02 | 0x04, 0, 0, 0, 63, 0, 0, 47, 0, 0]));
  const body = Buffer.concat([Buffer.from('WEBP'), vp8x, riff('ANIM', Buffer.alloc(6)), frame]);
  const head = Buffer.alloc(8); head.write('RIFF'); head.writeUInt32LE(body.length, 4);
  const r = stripMetadata(new Uint8Array(Buffer.concat([head, body])));
  noSecrets(r, 'animated WebP');
  assert.deepEqual(r.removed, ['XMP']);
  const b = Buffer.from(r.bytes);
  assert.equal(b.readUInt32LE(4), b.length - 8);
  const f = b.indexOf('ANMF');
  assert.equal(b.readUInt32LE(f + 4), 16 + vp8chunk.length, 'the frame’s size is its new size');
  assert.equal(b[20], 0x02, 'still animated; no XMP flag');
});

test('GIF: only images, their colours, frame timing and the loop count remain', () => {
  for (const f of ['photo.gif', 'leaky.gif']) {
    const src = load(f);
    const r = stripMetadata(src);
    assert.equal(r.type, 'image/gif');
    assert.deepEqual([r.width, r.height], [32, 32]);
    noSecrets(r, f);
    assert.equal(r.bytes[r.bytes.length - 1], 0x3b);
    assert.ok(Buffer.from(src).includes(Buffer.from(r.bytes.subarray(r.bytes.indexOf(0x2c)))), 'the image descriptor and data are unchanged');
  }
  const r = stripMetadata(load('leaky.gif'));
  assert.deepEqual(r.removed.sort(), ['ICC profile', 'XMP', 'application data', 'comment', 'data after the picture', 'text']);
  const loop = Buffer.from(r.bytes).indexOf(Buffer.from('NETSCAPE2.0'));
  assert.deepEqual([...r.bytes.subarray(loop + 11, loop + 16)], [3, 1, 0, 0, 0], 'the loop count, alone');
});

test('pictures are told by their bytes, compared as bytes even where latin1 decodes as windows-1252', async () => {
  // Browsers' TextDecoder('latin1') is windows-1252: 0x89 becomes U+2030.
  // The page must recognise a PNG there too.
  const Real = globalThis.TextDecoder;
  // (Node's own 'windows-1252' is latin1 too, so this one maps the bytes
  // 0x80–0x9F itself, as WHATWG's table does: 0x89 is U+2030.)
  const CP1252 = '€\ufffd‚ƒ„…†‡ˆ‰Š‹Œ\ufffdŽ\ufffd\ufffd‘’“”•–—˜™š›œ\ufffdžŸ';
  globalThis.TextDecoder = class extends Real {
    constructor(label, opts) { super(label, opts); this.cp1252 = label === 'latin1'; }
    decode(b, opts) {
      if (!this.cp1252) return super.decode(b, opts);
      return Array.from(b, (x) => (x >= 0x80 && x <= 0x9f ? CP1252[x - 0x80] : String.fromCharCode(x))).join('');
    }
  };
  try {
    assert.notEqual(new TextDecoder('latin1').decode(new Uint8Array([0x89])), '\x89');
    const m = await import('../static/strip.mjs?windows-1252');
    assert.equal(m.pictureType(load('leaky.png')), 'image/png');
    noSecrets(m.stripMetadata(load('leaky.png')), 'PNG');
  } finally {
    globalThis.TextDecoder = Real;
  }
  assert.equal(pictureType(new TextEncoder().encode('%PDF-1.7 ...')), '');
  assert.equal(stripMetadata(new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"/>')), null);
});

test('truncated or empty pictures are refused', () => {
  assert.throws(() => stripMetadata(load('photo.jpg').subarray(0, 300)), StripError);
  assert.throws(() => stripMetadata(load('photo.png').subarray(0, 40)), StripError);
  assert.throws(() => stripMetadata(load('photo.gif').subarray(0, 40)), StripError);
  assert.throws(() => stripMetadata(load('photo.webp').subarray(0, 40)), StripError);
  assert.throws(() => stripMetadata(new Uint8Array([0xff, 0xd8, 0xff, 0xd9])), StripError, 'a JPEG with no picture');
});

test('photos the page cannot clean are named, never taken for files', () => {
  const box = (brand, compat = '') => { const b = Buffer.alloc(16 + compat.length); b.writeUInt32BE(b.length); b.write('ftyp' + brand + '\0\0\0\0' + compat, 4, 'latin1'); return new Uint8Array(b); };
  assert.equal(uncleanableFormat(load('leaky.heic')), 'HEIC');
  assert.equal(uncleanableFormat(box('mif1', 'heic')), 'HEIF');
  assert.equal(uncleanableFormat(box('avif', 'mif1')), 'AVIF');
  assert.equal(uncleanableFormat(box('mif1', 'avifmiaf')), 'AVIF');
  assert.equal(uncleanableFormat(new Uint8Array([0x49, 0x49, 0x2a, 0, 8, 0, 0, 0])), 'TIFF');
  assert.equal(uncleanableFormat(new Uint8Array([0x4d, 0x4d, 0, 0x2a, 0, 0, 0, 8])), 'TIFF');
  assert.equal(uncleanableFormat(new Uint8Array([0xff, 0x0a, 0, 0])), 'JPEG XL');
  assert.equal(uncleanableFormat(box('isom', 'mp41')), '', 'an MP4 video is a file like any other');
  assert.throws(() => stripMetadata(load('leaky.heic')), (e) => e instanceof NotCleanable && e.format === 'HEIC');
});

test('a received picture is drawn only within the size bound, read from its header', () => {
  const ihdr = (w, h) => {
    const b = Buffer.from(load('photo.png'));
    const x = Buffer.from(stripMetadata(new Uint8Array(b)).bytes);
    x.writeUInt32BE(w, 16); x.writeUInt32BE(h, 20); // the CRC no longer fits; the header is what counts
    return new Uint8Array(x);
  };
  assert.deepEqual(inlineSize(load('photo.png')), { ok: true, width: 64, height: 48 });
  assert.deepEqual(inlineSize(ihdr(60000, 60000)), { ok: false, width: 60000, height: 60000 });
  assert.equal(inlineSize(ihdr(8000, 6000)).ok, true, 'a 48-megapixel photo is drawn');
  assert.equal(inlineSize(ihdr(8000, Math.ceil(MAX_INLINE_PIXELS / 8000) + 1)).ok, false);
  assert.equal(inlineSize(ihdr(40000, 10)).ok, false, 'no side beyond the bound');
  assert.equal(inlineSize(new TextEncoder().encode('not a picture')).ok, false);
  // GIF: the largest frame counts, not only the screen it claims.
  const g = Buffer.from(stripMetadata(load('photo.gif')).bytes);
  const d = g.indexOf(0x2c);
  g.writeUInt16LE(60000, d + 5); g.writeUInt16LE(60000, d + 7);
  assert.deepEqual(inlineSize(new Uint8Array(g)), { ok: false, width: 60000, height: 60000 });
});

test('damaged pictures never throw anything but StripError, and cleaning ends', () => {
  // A seeded run of byte flips, cuts and splices over every sample: the
  // parser reads untrusted bytes (a received picture's size is read with
  // it too), so anything else it throws, or a loop that never ends, is a bug.
  let seed = 23;
  const rand = (n) => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
  const samples = ['photo.jpg', 'photo.png', 'photo.gif', 'photo.webp', 'leaky.jpg', 'leaky.png', 'leaky.gif', 'leaky.webp'].map(load);
  let cleaned = 0;
  for (let k = 0; k < 3000; k++) {
    const src = samples[k % samples.length];
    let b = Uint8Array.from(src);
    switch (rand(3)) {
      case 0: for (let n = 1 + rand(4); n > 0; n--) b[8 + rand(b.length - 8)] = rand(256); break;
      case 1: b = b.subarray(0, 12 + rand(b.length - 12)); break;
      default: { const i = 8 + rand(b.length - 8); b = Uint8Array.from([...b.subarray(0, i), ...b.subarray(i + 1 + rand(16))]); }
    }
    try {
      const r = stripMetadata(b);
      if (r) { cleaned++; assert.ok(r.bytes.length <= b.length + 34, 'cleaning adds at most the orientation'); }
      inlineSize(b);
    } catch (e) {
      if (!(e instanceof StripError)) throw new Error(`sample ${k}: ${e.stack}`);
    }
  }
  assert.ok(cleaned > 300, `some damaged pictures still clean (${cleaned})`);
});
