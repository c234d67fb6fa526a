// strip.mjs: cleans a picture of location, camera and author data before
// it is sent, by rewriting the file's own segments. Not through a canvas:
// Tor Browser blocks reading a canvas back, and redrawing would also
// recompress the picture.
//
// Cleaning is an allow-list (docs/protocol.md §10.3): a picture keeps only
// the segments a browser needs to draw it, each checked for its expected
// form, and loses everything else, known or not — Exif, XMP, IPTC, ICC
// profiles (whose header and text name the device and its owner),
// thumbnails, comments, text, unknown chunks and any bytes after the
// picture's end. A JPEG keeps its orientation, rewritten as a minimal Exif.
//
// Bytes are compared as bytes, never through a TextDecoder: browsers
// decode 'latin1' as windows-1252, where byte 0x89 (the PNG signature's
// first) is not U+0089.
//
// stripMetadata(bytes) returns {type, bytes, removed: [what], width,
// height} for a picture it recognises by its first bytes (JPEG, PNG, WebP,
// GIF), or null for anything else, which is then sent as a file and never
// shown inline. A picture it cannot parse is a StripError: it is not sent
// as a picture. A photo format it cannot clean (HEIC/HEIF, AVIF, TIFF and
// the raw formats built on it, JPEG XL) is a NotCleanable: never sent
// silently, only as a file if the sender chooses to.

export class StripError extends Error {}

// NotCleanable is thrown for a photo whose format carries location and
// camera data that this page cannot remove; format names it ("HEIC").
export class NotCleanable extends Error {
  constructor(format) {
    super(`this page cannot remove location and camera data from ${format} photos`);
    this.format = format;
  }
}

// A picture is shown inline only within these bounds (a decoded picture
// takes 4 bytes a pixel: 50 megapixels are 200 MB); a larger one is a
// download.
export const MAX_INLINE_PIXELS = 50e6;
export const MAX_INLINE_SIDE = 32768;

// at reports whether b holds the bytes of sig (a string of characters
// below 256, each one byte) at offset o.
function at(b, o, sig) {
  if (o < 0 || o + sig.length > b.length) return false;
  for (let k = 0; k < sig.length; k++) if (b[o + k] !== sig.charCodeAt(k)) return false;
  return true;
}

// fourcc reads n bytes at o as a string, one character per byte.
function fourcc(b, o, n = 4) { return String.fromCharCode(...b.subarray(o, o + n)); }

const u16be = (b, o) => (b[o] << 8) | b[o + 1];
const u16le = (b, o) => b[o] | (b[o + 1] << 8);
const u24le = (b, o) => b[o] | (b[o + 1] << 8) | (b[o + 2] << 16);
const u32be = (b, o) => b[o] * 0x1000000 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
const u32le = (b, o) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;

export function pictureType(b) {
  if (at(b, 0, '\xff\xd8\xff')) return 'image/jpeg';
  if (at(b, 0, '\x89PNG\r\n\x1a\n')) return 'image/png';
  if (at(b, 0, 'RIFF') && at(b, 8, 'WEBP')) return 'image/webp';
  if (at(b, 0, 'GIF87a') || at(b, 0, 'GIF89a')) return 'image/gif';
  return '';
}

const HEIF_BRANDS = new Set(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'hevm', 'hevs', 'mif1', 'msf1']);
const AVIF_BRANDS = new Set(['avif', 'avis']);

// uncleanableFormat names a photo format, told by its first bytes, that
// carries camera data this page cannot remove; "" for anything else.
export function uncleanableFormat(b) {
  if (at(b, 0, 'II*\0') || at(b, 0, 'MM\0*') || at(b, 0, 'II+\0') || at(b, 0, 'MM\0+')) return 'TIFF';
  if (at(b, 0, '\xff\x0a') || at(b, 0, '\0\0\0\x0cJXL \r\n\x87\x0a')) return 'JPEG XL';
  if (at(b, 4, 'ftyp') && b.length >= 12) {
    const size = Math.min(u32be(b, 0), b.length);
    const brands = [fourcc(b, 8)];
    for (let o = 16; o + 4 <= size; o += 4) brands.push(fourcc(b, o));
    if (brands.some((x) => AVIF_BRANDS.has(x))) return 'AVIF';
    if (HEIF_BRANDS.has(brands[0])) return brands[0] === 'mif1' || brands[0] === 'msf1' ? 'HEIF' : 'HEIC';
    if (brands[0] === 'crx ') return 'Canon raw (CR3)';
  }
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
  const f = uncleanableFormat(bytes);
  if (f) throw new NotCleanable(f);
  return null;
}

// inlineSize tells whether a received picture may be drawn in the page:
// {ok, width, height}, its size read from its header. One the page cannot
// parse, or larger than the bounds above, is not (ok false).
export function inlineSize(bytes) {
  let r;
  try { r = stripMetadata(bytes); } catch { return { ok: false, width: 0, height: 0 }; }
  if (!r) return { ok: false, width: 0, height: 0 };
  const { width, height } = r;
  const ok = width > 0 && height > 0 && width <= MAX_INLINE_SIDE && height <= MAX_INLINE_SIDE && width * height <= MAX_INLINE_PIXELS;
  return { ok, width, height };
}

function need(b, n, what) { if (b.length < n) throw new StripError(`truncated ${what}`); }

class Out {
  constructor(n) { this.b = new Uint8Array(n); this.n = 0; }
  put(x) { if (this.n + x.length > this.b.length) { const nb = new Uint8Array(Math.max(this.b.length * 2, this.n + x.length)); nb.set(this.b.subarray(0, this.n)); this.b = nb; } this.b.set(x, this.n); this.n += x.length; }
  bytes() { return this.b.slice(0, this.n); }
}

const AFTER_END = 'data after the picture';

// ---------------------------------------------------------------- JPEG

// JPEG keeps: SOI; the frame headers (SOF0–3, 5–7, 9–11, 13–15), Huffman
// and arithmetic-coding tables (DHT, DAC), quantisation tables (DQT),
// restart interval (DRI), scans (SOS and their entropy-coded data,
// restart markers), DNL and EOI; a JFIF APP0 rewritten without its
// thumbnail; an Adobe APP14 cut to its own 12 bytes (its colour transform
// tells how to draw CMYK and RGB pictures); the orientation. Nothing else.
const JPEG_KEEP = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf, 0xc4, 0xcc, 0xdb, 0xdd, 0xda, 0xdc]);
const isSOF = (m) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

function jpeg(b) {
  const out = new Out(b.length);
  const removed = new Set();
  let orientation = 1;
  let width = 0;
  let height = 0;
  let scans = 0;
  out.put(b.subarray(0, 2)); // SOI
  let i = 2;
  let wroteExif = false;
  const writeOrientation = () => {
    if (wroteExif || orientation === 1) return;
    wroteExif = true;
    out.put(orientationExif(orientation));
  };
  for (;;) {
    if (i >= b.length && scans) { out.put(new Uint8Array([0xff, 0xd9])); break; } // cut short: browsers draw what came
    need(b, i + 1, 'JPEG');
    if (b[i] !== 0xff) throw new StripError('JPEG: expected a marker');
    while (b[i] === 0xff) i++; // fill bytes
    need(b, i + 1, 'JPEG marker');
    const m = b[i++];
    if (m === 0xd9) { // EOI
      out.put(new Uint8Array([0xff, 0xd9]));
      if (i < b.length) removed.add(AFTER_END);
      break;
    }
    if (m >= 0xd0 && m <= 0xd7) { out.put(new Uint8Array([0xff, m])); continue; } // RSTn: no data
    if (m === 0x01 || m === 0xd8) { removed.add('marker'); continue; }
    need(b, i + 2, 'JPEG segment');
    const len = u16be(b, i);
    if (len < 2) throw new StripError('JPEG: bad segment length');
    need(b, i + len, 'JPEG segment');
    const seg = b.subarray(i - 2, i + len);
    const body = b.subarray(i + 2, i + len);
    const app = m >= 0xe0 && m <= 0xef;
    if (!app && m !== 0xfe) writeOrientation(); // after the APPn segments, before the tables
    if (JPEG_KEEP.has(m)) {
      if (isSOF(m)) {
        if (body.length < 6) throw new StripError('JPEG: bad frame header');
        height = u16be(body, 1);
        width = u16be(body, 3);
      }
      out.put(seg);
    } else if (m === 0xe0 && at(body, 0, 'JFIF\0') && body.length >= 14) {
      if (body[12] || body[13]) removed.add('thumbnail');
      const j = new Uint8Array(18);
      j.set([0xff, 0xe0, 0, 16]);
      j.set(body.subarray(0, 12), 4); // identifier, version, units, densities; no thumbnail
      out.put(j);
    } else if (m === 0xee && at(body, 0, 'Adobe') && body.length >= 12) {
      if (body.length > 12) removed.add('APP14 data');
      out.put(new Uint8Array([0xff, 0xee, 0, 14, ...body.subarray(0, 12)]));
    } else if (m === 0xe1 && at(body, 0, 'Exif\0\0')) {
      removed.add('EXIF');
      orientation = readOrientation(body.subarray(6)) || orientation;
    } else {
      removed.add(jpegLabel(m, body));
    }
    i += len;
    if (m === 0xda) {
      scans++;
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
  if (!width || !scans) throw new StripError('JPEG: no picture in it');
  return { bytes: out.bytes(), removed: [...removed], width, height };
}

function jpegLabel(m, body) {
  if (m === 0xfe) return 'comment';
  if (m === 0xe0) return 'thumbnail';
  if (m === 0xe1) return 'XMP';
  if (m === 0xe2) return at(body, 0, 'ICC_PROFILE\0') ? 'ICC profile' : at(body, 0, 'MPF\0') ? 'MPF' : 'APP2';
  if (m === 0xed) return 'IPTC';
  if (m >= 0xe0 && m <= 0xef) return 'APP' + (m - 0xe0);
  return 'marker';
}

// readOrientation reads tag 0x0112 from a TIFF (Exif) block's first IFD.
function readOrientation(t) {
  if (t.length < 8) return 0;
  const le = t[0] === 0x49 && t[1] === 0x49;
  if (!le && !(t[0] === 0x4d && t[1] === 0x4d)) return 0;
  const u16 = (o) => (le ? u16le(t, o) : u16be(t, o));
  const u32 = (o) => (le ? u32le(t, o) : u32be(t, o));
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
  const body = [0x45, 0x78, 0x69, 0x66, 0, 0].concat(tiff); // "Exif\0\0"
  const len = body.length + 2;
  return new Uint8Array([0xff, 0xe1, len >> 8, len & 0xff, ...body]);
}

// ---------------------------------------------------------------- PNG

// PNG keeps: the critical chunks (IHDR, PLTE, IDAT, IEND); the ancillary
// ones that change how the picture is drawn — transparency (tRNS), colour
// (gAMA, cHRM, sRGB, cICP), pixel aspect (pHYs) and animation (acTL, fcTL,
// fdAT) — each only at its fixed size. Not iCCP: an ICC profile names the
// device and its owner, and sRGB is what browsers assume without one.
const PNG_KEEP = { IHDR: 13, PLTE: -1, IDAT: -1, IEND: 0, tRNS: -1, gAMA: 4, cHRM: 32, sRGB: 1, cICP: 4, pHYs: 9, acTL: 8, fcTL: 26, fdAT: -1 };

function png(b) {
  const out = new Out(b.length);
  const removed = new Set();
  out.put(b.subarray(0, 8));
  let i = 8;
  let width = 0;
  let height = 0;
  let idat = false;
  for (;;) {
    need(b, i + 12, 'PNG chunk');
    const len = u32be(b, i);
    const type = fourcc(b, i + 4);
    if (!/^[A-Za-z]{4}$/.test(type)) throw new StripError('PNG: bad chunk');
    need(b, i + 12 + len, 'PNG chunk');
    if (i === 8) {
      if (type !== 'IHDR' || len !== 13) throw new StripError('PNG: no header');
      width = u32be(b, 16);
      height = u32be(b, 20);
    }
    const size = Object.hasOwn(PNG_KEEP, type) ? PNG_KEEP[type] : undefined;
    if (size !== undefined && (size < 0 || size === len) && !(type === 'tRNS' && len > 256)) {
      out.put(b.subarray(i, i + 12 + len));
      if (type === 'IDAT') idat = true;
    } else {
      removed.add(pngLabel(type, b.subarray(i + 8, i + 8 + len)));
    }
    i += 12 + len;
    if (type === 'IEND') break;
  }
  if (i < b.length) removed.add(AFTER_END);
  if (!idat) throw new StripError('PNG: no picture in it');
  return { bytes: out.bytes(), removed: [...removed], width, height };
}

function pngLabel(type, data) {
  switch (type) {
    case 'eXIf': return 'EXIF';
    case 'iTXt': return at(data, 0, 'XML:com.adobe.xmp\0') ? 'XMP' : 'text';
    case 'tEXt': case 'zTXt': return 'text';
    case 'tIME': return 'time';
    case 'iCCP': return 'ICC profile';
  }
  return type;
}

// ---------------------------------------------------------------- WebP

// WebP keeps: VP8X (its ICC, EXIF and XMP flags cleared), the image data
// (VP8, VP8L, ALPH) and animation (ANIM, ANMF, and in each frame only its
// image data). Not ICCP, EXIF, XMP or any other chunk.
const WEBP_KEEP = new Set(['VP8X', 'VP8 ', 'VP8L', 'ALPH', 'ANIM', 'ANMF']);
const WEBP_FRAME_KEEP = new Set(['VP8 ', 'VP8L', 'ALPH']);

function webpLabel(type) {
  switch (type) {
    case 'EXIF': return 'EXIF';
    case 'XMP ': return 'XMP';
    case 'ICCP': return 'ICC profile';
  }
  return type.trim();
}

// riffChunks calls f(type, start, end) for each chunk of b[from, to)
// (start at its header, end past its padding).
function riffChunks(b, from, to, f) {
  let i = from;
  while (i < to) {
    need(b, i + 8, 'WebP chunk');
    const len = u32le(b, i + 4);
    if (i + 8 + len > to) throw new StripError('truncated WebP chunk');
    f(fourcc(b, i), i, Math.min(to, i + 8 + len + (len & 1)));
    i += 8 + len + (len & 1);
  }
}

function webp(b) {
  need(b, 12, 'WebP header');
  const end = 8 + u32le(b, 4);
  if (end > b.length) throw new StripError('truncated WebP');
  const out = new Out(b.length);
  const removed = new Set();
  out.put(b.subarray(0, 12));
  let vp8x = -1;
  let width = 0;
  let height = 0;
  riffChunks(b, 12, end, (type, s, e) => {
    if (!WEBP_KEEP.has(type)) { removed.add(webpLabel(type)); return; }
    const body = b.subarray(s + 8, e);
    if (type === 'VP8X') {
      if (body.length < 10) throw new StripError('WebP: bad VP8X');
      vp8x = out.n;
      width = u24le(body, 4) + 1;
      height = u24le(body, 7) + 1;
    } else if (!width && type === 'VP8 ' && body.length >= 10 && at(body, 3, '\x9d\x01\x2a')) {
      width = u16le(body, 6) & 0x3fff;
      height = u16le(body, 8) & 0x3fff;
    } else if (!width && type === 'VP8L' && body.length >= 5 && body[0] === 0x2f) {
      const bits = u32le(body, 1);
      width = (bits & 0x3fff) + 1;
      height = ((bits >>> 14) & 0x3fff) + 1;
    }
    if (type !== 'ANMF') { out.put(b.subarray(s, e)); return; }
    // A frame: its 16-byte header, then only its image data.
    if (body.length < 16) throw new StripError('WebP: bad frame');
    const frame = new Out(e - s);
    frame.put(b.subarray(s, s + 8 + 16));
    riffChunks(b, s + 8 + 16, e, (t, fs, fe) => {
      if (WEBP_FRAME_KEEP.has(t)) frame.put(b.subarray(fs, fe));
      else removed.add(webpLabel(t));
    });
    const f = frame.bytes();
    setU32le(f, 4, f.length - 8);
    out.put(f);
  });
  if (end < b.length) removed.add(AFTER_END);
  if (!width) throw new StripError('WebP: no picture in it');
  const r = out.bytes();
  if (vp8x >= 0) r[vp8x + 8] &= ~0x2c; // the ICC (0x20), EXIF (0x08) and XMP (0x04) flags
  setU32le(r, 4, r.length - 8);
  return { bytes: r, removed: [...removed], width, height };
}

function setU32le(b, o, n) { b[o] = n & 0xff; b[o + 1] = (n >> 8) & 0xff; b[o + 2] = (n >> 16) & 0xff; b[o + 3] = (n >>> 24) & 0xff; }

// ---------------------------------------------------------------- GIF

// GIF keeps: the header, screen descriptor and colour tables, each image
// (descriptor, colour table, data), graphic control extensions (frame
// timing and transparency) and the loop count of a NETSCAPE2.0 or
// ANIMEXTS1.0 extension, rewritten alone. Not comments, plain-text blocks,
// XMP, ICC profiles, other application extensions, or anything after the
// trailer.
function gif(b) {
  const out = new Out(b.length);
  const removed = new Set();
  need(b, 13, 'GIF header');
  let i = 13;
  if (b[10] & 0x80) i += 3 * (1 << ((b[10] & 7) + 1)); // global colour table
  need(b, i, 'GIF colour table');
  out.put(b.subarray(0, i));
  let width = u16le(b, 6);
  let height = u16le(b, 8);
  let images = 0;
  const subBlocks = (j) => { while (j < b.length && b[j] !== 0) j += b[j] + 1; need(b, j + 1, 'GIF data'); return j + 1; };
  for (;;) {
    need(b, i + 1, 'GIF (no trailer)');
    const t = b[i];
    if (t === 0x3b) {
      out.put(new Uint8Array([0x3b]));
      if (i + 1 < b.length) removed.add(AFTER_END);
      break;
    }
    if (t === 0x21) {
      need(b, i + 2, 'GIF extension');
      const label = b[i + 1];
      const end = subBlocks(i + 2);
      if (label === 0xf9 && b[i + 2] === 4 && end === i + 8) {
        out.put(b.subarray(i, end)); // graphic control: delay, disposal, transparency
      } else if (label === 0xff && b[i + 2] === 11 && (at(b, i + 3, 'NETSCAPE2.0') || at(b, i + 3, 'ANIMEXTS1.0'))) {
        let loop = -1;
        let extra = false;
        for (let j = i + 14; j < end - 1; j += b[j] + 1) {
          if (b[j] === 3 && b[j + 1] === 1 && loop < 0) loop = u16le(b, j + 2);
          else extra = true;
        }
        if (extra) removed.add('application data');
        if (loop >= 0) out.put(new Uint8Array([0x21, 0xff, 11, ...b.subarray(i + 3, i + 14), 3, 1, loop & 0xff, loop >> 8, 0]));
      } else {
        removed.add(gifLabel(b, i, label));
      }
      i = end;
    } else if (t === 0x2c) {
      need(b, i + 10, 'GIF image');
      width = Math.max(width, u16le(b, i + 1) + u16le(b, i + 5));
      height = Math.max(height, u16le(b, i + 3) + u16le(b, i + 7));
      let j = i + 10;
      if (b[i + 9] & 0x80) j += 3 * (1 << ((b[i + 9] & 7) + 1));
      j = subBlocks(j + 1); // LZW minimum code size, then the data
      out.put(b.subarray(i, j));
      images++;
      i = j;
    } else {
      throw new StripError('GIF: unknown block');
    }
  }
  if (!images) throw new StripError('GIF: no picture in it');
  return { bytes: out.bytes(), removed: [...removed], width, height };
}

function gifLabel(b, i, label) {
  if (label === 0xfe) return 'comment';
  if (label === 0x01) return 'text';
  if (label === 0xff && b[i + 2] === 11) {
    if (at(b, i + 3, 'XMP DataXMP')) return 'XMP';
    if (at(b, i + 3, 'ICCRGBG1012')) return 'ICC profile';
  }
  return 'application data';
}
