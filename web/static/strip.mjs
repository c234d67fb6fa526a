// strip.mjs: removes location, camera and author data from a picture
// before it is sent, by rewriting the file's own segments. Not through a
// canvas: Tor Browser blocks reading a canvas back, and redrawing would
// also recompress the picture. What it keeps is what a viewer needs to
// draw the picture (and, for JPEG, its orientation).
//
//   JPEG: drops APP1 (Exif, XMP), APP3–APP13 (IPTC, Photoshop), APP15 and
//         comments anywhere in the file; keeps JFIF (APP0), ICC profiles
//         (APP2) and Adobe (APP14); writes back a minimal Exif with only
//         the orientation, if the picture had one other than "normal".
//   PNG:  drops eXIf, tEXt, zTXt, iTXt and tIME chunks.
//   WebP: drops EXIF and XMP chunks and clears their VP8X flags.
//   GIF:  drops comment extensions and application extensions other than
//         the NETSCAPE/ANIMEXTS looping ones (XMP lives in one).
//
// stripMetadata(bytes) returns {type, bytes, removed: [what]} for a
// picture it recognises (by its first bytes, not its name), or null for
// anything else, which is then sent as a file and never shown inline. A
// picture it cannot parse is an error: it is not sent as a picture.

export class StripError extends Error {}

const te = new TextDecoder('latin1');
const ascii = (b, o, n) => te.decode(b.subarray(o, o + n));

export function pictureType(b) {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 8 && ascii(b, 0, 8) === '\x89PNG\r\n\x1a\n') return 'image/png';
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') return 'image/webp';
  if (b.length >= 6 && (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a')) return 'image/gif';
  return '';
}

export function stripMetadata(bytes) {
  const type = pictureType(bytes);
  switch (type) {
    case 'image/jpeg': return { type, ...jpeg(bytes) };
    case 'image/png': return { type, ...png(bytes) };
    case 'image/webp': return { type, ...webp(bytes) };
    case 'image/gif': return { type, ...gif(bytes) };
  }
  return null;
}

function need(b, n, what) { if (b.length < n) throw new StripError(`truncated ${what}`); }

class Out {
  constructor(n) { this.b = new Uint8Array(n); this.n = 0; }
  put(x) { if (this.n + x.length > this.b.length) { const nb = new Uint8Array(Math.max(this.b.length * 2, this.n + x.length)); nb.set(this.b.subarray(0, this.n)); this.b = nb; } this.b.set(x, this.n); this.n += x.length; }
  bytes() { return this.b.slice(0, this.n); }
}

// ---------------------------------------------------------------- JPEG

function jpeg(b) {
  const out = new Out(b.length);
  const removed = new Set();
  let orientation = 1;
  out.put(b.subarray(0, 2)); // SOI
  let i = 2;
  let wroteExif = false;
  const writeOrientation = () => {
    if (wroteExif || orientation === 1) return;
    wroteExif = true;
    out.put(orientationExif(orientation));
  };
  while (i < b.length) {
    if (b[i] !== 0xff) throw new StripError('JPEG: expected a marker');
    while (b[i] === 0xff) i++; // fill bytes
    need(b, i + 1, 'JPEG marker');
    const m = b[i++];
    if (m === 0xd9) { out.put(new Uint8Array([0xff, 0xd9])); break; } // EOI
    if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) { out.put(new Uint8Array([0xff, m])); continue; }
    need(b, i + 2, 'JPEG segment');
    const len = (b[i] << 8) | b[i + 1];
    if (len < 2) throw new StripError('JPEG: bad segment length');
    need(b, i + len, 'JPEG segment');
    const seg = b.subarray(i - 2, i + len);
    const body = b.subarray(i + 2, i + len);
    let keep = true;
    if (m === 0xe1) {
      keep = false;
      if (ascii(body, 0, 6) === 'Exif\0\0') { removed.add('EXIF'); orientation = readOrientation(body.subarray(6)) || orientation; }
      else removed.add('XMP');
    } else if ((m >= 0xe3 && m <= 0xed) || m === 0xef) {
      keep = false;
      removed.add(m === 0xed ? 'IPTC' : 'APP' + (m - 0xe0));
    } else if (m === 0xfe) {
      keep = false;
      removed.add('comment');
    } else if (m === 0xe0 && ascii(body, 0, 5) !== 'JFIF\0') {
      keep = false; // JFXX and other APP0 carry thumbnails
      removed.add('thumbnail');
    }
    if (!(m >= 0xe0 && m <= 0xef) && m !== 0xfe) writeOrientation(); // after the APPn segments, before the tables
    if (keep) out.put(seg);
    i += len;
    if (m === 0xda) {
      // Entropy-coded data: copy up to the next real marker.
      let j = i;
      while (j < b.length) {
        if (b[j] === 0xff && j + 1 < b.length) {
          const n = b[j + 1];
          if (n !== 0x00 && !(n >= 0xd0 && n <= 0xd7) && n !== 0xff) break;
        }
        j++;
      }
      out.put(b.subarray(i, j));
      i = j;
    }
  }
  return { bytes: out.bytes(), removed: [...removed] };
}

// readOrientation reads tag 0x0112 from a TIFF (Exif) block's first IFD.
function readOrientation(t) {
  if (t.length < 8) return 0;
  const le = t[0] === 0x49 && t[1] === 0x49;
  if (!le && !(t[0] === 0x4d && t[1] === 0x4d)) return 0;
  const u16 = (o) => (le ? t[o] | (t[o + 1] << 8) : (t[o] << 8) | t[o + 1]);
  const u32 = (o) => (le ? (t[o] | (t[o + 1] << 8) | (t[o + 2] << 16)) + t[o + 3] * 0x1000000 : t[o] * 0x1000000 + ((t[o + 1] << 16) | (t[o + 2] << 8) | t[o + 3]));
  const ifd = u32(4);
  if (ifd + 2 > t.length) return 0;
  const n = u16(ifd);
  for (let k = 0; k < n; k++) {
    const e = ifd + 2 + 12 * k;
    if (e + 12 > t.length) return 0;
    if (u16(e) === 0x0112 && u16(e + 2) === 3) {
      const v = u16(e + 8);
      return v >= 1 && v <= 8 ? v : 0;
    }
  }
  return 0;
}

// orientationExif is an APP1 segment with a big-endian TIFF block whose
// only entry is the orientation.
function orientationExif(v) {
  const tiff = [0x4d, 0x4d, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, v, 0, 0, 0, 0, 0, 0];
  const body = [...'Exif'].map((c) => c.charCodeAt(0)).concat([0, 0], tiff);
  const len = body.length + 2;
  return new Uint8Array([0xff, 0xe1, len >> 8, len & 0xff, ...body]);
}

// ---------------------------------------------------------------- PNG

const PNG_DROP = new Set(['eXIf', 'tEXt', 'zTXt', 'iTXt', 'tIME']);

function png(b) {
  const out = new Out(b.length);
  const removed = new Set();
  out.put(b.subarray(0, 8));
  let i = 8;
  while (i < b.length) {
    need(b, i + 12, 'PNG chunk');
    const len = b[i] * 0x1000000 + ((b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]);
    const type = ascii(b, i + 4, 4);
    need(b, i + 12 + len, 'PNG chunk');
    if (PNG_DROP.has(type)) removed.add(type === 'eXIf' ? 'EXIF' : type === 'tIME' ? 'time' : 'text');
    else out.put(b.subarray(i, i + 12 + len));
    i += 12 + len;
    if (type === 'IEND') break;
  }
  return { bytes: out.bytes(), removed: [...removed] };
}

// ---------------------------------------------------------------- WebP

function webp(b) {
  const out = new Out(b.length);
  const removed = new Set();
  out.put(b.subarray(0, 12));
  let i = 12;
  let vp8x = -1;
  while (i + 8 <= b.length) {
    const type = ascii(b, i, 4);
    const len = b[i + 4] | (b[i + 5] << 8) | (b[i + 6] << 16) | (b[i + 7] * 0x1000000);
    const total = 8 + len + (len & 1);
    need(b, i + 8 + len, 'WebP chunk');
    if (type === 'EXIF' || type === 'XMP ') {
      removed.add(type === 'EXIF' ? 'EXIF' : 'XMP');
    } else {
      if (type === 'VP8X') vp8x = out.n;
      out.put(b.subarray(i, Math.min(b.length, i + total)));
    }
    i += total;
  }
  const r = out.bytes();
  if (vp8x >= 0) r[vp8x + 8] &= ~0x0c; // the EXIF (0x08) and XMP (0x04) flags
  const size = r.length - 8;
  r[4] = size & 0xff; r[5] = (size >> 8) & 0xff; r[6] = (size >> 16) & 0xff; r[7] = (size >>> 24) & 0xff;
  return { bytes: r, removed: [...removed] };
}

// ---------------------------------------------------------------- GIF

function gif(b) {
  const out = new Out(b.length);
  const removed = new Set();
  need(b, 13, 'GIF header');
  let i = 13;
  if (b[10] & 0x80) i += 3 * (1 << ((b[10] & 7) + 1)); // global colour table
  need(b, i, 'GIF colour table');
  out.put(b.subarray(0, i));
  const subBlocks = (j) => { while (j < b.length && b[j] !== 0) j += b[j] + 1; need(b, j + 1, 'GIF data'); return j + 1; };
  while (i < b.length) {
    const t = b[i];
    if (t === 0x3b) { out.put(new Uint8Array([0x3b])); break; }
    if (t === 0x21) {
      need(b, i + 2, 'GIF extension');
      const label = b[i + 1];
      const end = subBlocks(i + 2);
      let keep = true;
      if (label === 0xfe) { keep = false; removed.add('comment'); }
      if (label === 0xff) {
        const app = b[i + 2] === 11 ? ascii(b, i + 3, 11) : '';
        if (app !== 'NETSCAPE2.0' && app !== 'ANIMEXTS1.0') { keep = false; removed.add(app.startsWith('XMP') ? 'XMP' : 'application data'); }
      }
      if (keep) out.put(b.subarray(i, end));
      i = end;
    } else if (t === 0x2c) {
      need(b, i + 10, 'GIF image');
      let j = i + 10;
      if (b[i + 9] & 0x80) j += 3 * (1 << ((b[i + 9] & 7) + 1));
      j = subBlocks(j + 1); // LZW minimum code size, then the data
      out.put(b.subarray(i, j));
      i = j;
    } else {
      throw new StripError('GIF: unknown block');
    }
  }
  return { bytes: out.bytes(), removed: [...removed] };
}
