// leaky.mjs writes the leaky.* sample pictures from the photo.* ones:
// the same pictures, carrying location (GPS), camera (make, model,
// serial) and author data in every place a picture file can hide it and
// that the page's cleaning let through before issue 23 — PNG text,
// eXIf, iCCP, sPLT and unknown chunks and bytes after IEND; JPEG JFIF and
// JFXX thumbnails, ICC profiles and MPF in APP2, Adobe APP14 with bytes
// beyond its own, APP15 and bytes after EOI; GIF plain-text blocks, an ICC
// profile and extra sub-blocks in the looping extension, bytes after the
// trailer; WebP ICCP and unknown chunks — besides the Exif, XMP, IPTC and
// comments of the photo.* samples. The files are kept in the repository;
// run this again only to change them:
//
//   node web/jstest/testdata/leaky.mjs
import { readFileSync, writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';

const here = (f) => new URL('./' + f, import.meta.url);
const load = (f) => Buffer.from(readFileSync(here(f)));
const ascii = (s) => Buffer.from(s, 'latin1');
const u16be = (n) => Buffer.from([n >> 8, n & 0xff]);
const u32be = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const u32le = (n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };

// What each hiding place carries, in words any byte search or metadata
// reader finds.
const SECRET = 'GPS 48.8584 N 2.2945 E; Make TestCam; Model X; Serial SN123456; Artist Alice Example';

// The Exif block of photo.jpg (TIFF header on): GPS, make, model, serial.
function exifTIFF() {
  const j = load('photo.jpg');
  for (let i = 2; i + 4 <= j.length && j[i] === 0xff;) {
    const m = j[i + 1], l = j.readUInt16BE(i + 2);
    if (m === 0xe1 && j.subarray(i + 4, i + 10).toString('latin1') === 'Exif\0\0') return j.subarray(i + 10, i + 2 + l);
    i += 2 + l;
  }
  throw new Error('photo.jpg has no Exif');
}

// iccProfile is a small, well-formed ICC v2 display profile whose header
// names the device's maker and model and whose description and copyright
// tags name the camera and its owner, as phones' and editors' do.
function iccProfile() {
  const text = (sig, s) => {
    if (sig === 'desc') { // textDescriptionType
      const a = ascii(s + '\0');
      return Buffer.concat([ascii('desc'), Buffer.alloc(4), u32be(a.length), a, Buffer.alloc(4 + 4 + 2 + 1 + 67)]);
    }
    return Buffer.concat([ascii('text'), Buffer.alloc(4), ascii(s + '\0')]);
  };
  const tags = [['desc', text('desc', 'TestCam Model X ' + SECRET)], ['cprt', text('cprt', 'Copyright Alice Example')]];
  const pad4 = (b) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  let off = 128 + 4 + 12 * tags.length;
  const table = [u32be(tags.length)];
  const data = [];
  for (const [sig, body] of tags) {
    table.push(ascii(sig), u32be(off), u32be(body.length));
    const p = pad4(body);
    data.push(p);
    off += p.length;
  }
  const h = Buffer.alloc(128);
  h.writeUInt32BE(off, 0);
  ascii('appl').copy(h, 4);
  h.writeUInt32BE(0x02100000, 8);
  ascii('mntrRGB XYZ ').copy(h, 12);
  h.writeUInt16BE(2026, 24); h.writeUInt16BE(11, 26); h.writeUInt16BE(26, 28);
  ascii('acspAPPL').copy(h, 36);
  ascii('TCAMMDLX').copy(h, 48); // device manufacturer and model
  h.writeUInt32BE(0x0000f6d6, 68); h.writeUInt32BE(0x00010000, 72); h.writeUInt32BE(0x0000d32d, 76); // D50
  ascii('TCAM').copy(h, 80); // creator
  return Buffer.concat([h, ...table, ...data]);
}

const XMP = `<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?><x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'><rdf:Description rdf:about='' xmlns:dc='http://purl.org/dc/elements/1.1/' xmlns:exif='http://ns.adobe.com/exif/1.0/' xmlns:tiff='http://ns.adobe.com/tiff/1.0/'><dc:creator><rdf:Seq><rdf:li>Alice Example</rdf:li></rdf:Seq></dc:creator><tiff:Make>TestCam</tiff:Make><exif:GPSLatitude>48,51.504N</exif:GPSLatitude><exif:GPSLongitude>2,17.67E</exif:GPSLongitude></rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end='w'?>`;

// ---------------------------------------------------------------- JPEG

function jpeg() {
  const src = load('photo.jpg');
  const seg = (m, body) => Buffer.concat([Buffer.from([0xff, m]), u16be(body.length + 2), body]);
  // A JFIF APP0 with a 4×4 RGB thumbnail (48 bytes of "pixels").
  const thumb = Buffer.alloc(48, 0x20);
  ascii('GPS 48.8584 N Alice Example').copy(thumb);
  const jfif = seg(0xe0, Buffer.concat([ascii('JFIF\0'), Buffer.from([1, 2, 0, 0, 1, 0, 1, 4, 4]), thumb]));
  const jfxx = seg(0xe0, Buffer.concat([ascii('JFXX\0'), Buffer.from([0x13]), ascii(SECRET)]));
  const icc = seg(0xe2, Buffer.concat([ascii('ICC_PROFILE\0'), Buffer.from([1, 1]), iccProfile()]));
  const mpf = seg(0xe2, Buffer.concat([ascii('MPF\0'), ascii(SECRET)]));
  const adobe = seg(0xee, Buffer.concat([ascii('Adobe'), Buffer.from([0, 100, 0, 0, 0, 0, 1]), ascii(SECRET)]));
  const app15 = seg(0xef, ascii(SECRET));
  const xmp = seg(0xe1, Buffer.concat([ascii('http://ns.adobe.com/xap/1.0/\0'), Buffer.from(XMP, 'utf8')]));
  // photo.jpg: SOI, JFIF, Exif, XMP, IPTC, COM, tables and scan. Ours go
  // after its own APP segments, before the tables.
  let i = 2;
  const app = [];
  while (src[i] === 0xff && ((src[i + 1] >= 0xe0 && src[i + 1] <= 0xef) || src[i + 1] === 0xfe)) {
    const l = src.readUInt16BE(i + 2);
    if (src[i + 1] !== 0xe0) app.push(src.subarray(i, i + 2 + l)); // its JFIF gives way to ours
    i += 2 + l;
  }
  return Buffer.concat([src.subarray(0, 2), jfif, jfxx, ...app, xmp, icc, mpf, adobe, app15, src.subarray(i), ascii('SEFH ' + SECRET)]);
}

// ---------------------------------------------------------------- PNG

const CRC = new Uint32Array(256).map((_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
function crc32(b) { let c = 0xffffffff; for (const x of b) c = CRC[(c ^ x) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; }
function chunk(type, data) {
  const td = Buffer.concat([ascii(type), data]);
  return Buffer.concat([u32be(data.length), td, u32be(crc32(td))]);
}

function png() {
  const src = load('photo.png');
  const chunks = [];
  for (let i = 8; i < src.length;) {
    const l = src.readUInt32BE(i);
    chunks.push([src.subarray(i + 4, i + 8).toString('latin1'), src.subarray(i, i + 12 + l)]);
    i += 12 + l;
  }
  const ours = [
    chunk('iCCP', Buffer.concat([ascii('TestCam Model X\0\0'), deflateSync(iccProfile())])),
    chunk('sPLT', Buffer.concat([ascii('Alice Example TestCam\0'), Buffer.from([8, 0, 0, 0, 0xff, 0xff])])),
    chunk('tEXt', ascii('Author\0Alice Example')),
    chunk('zTXt', Buffer.concat([ascii('Description\0\0'), deflateSync(ascii(SECRET))])),
    chunk('iTXt', Buffer.concat([ascii('XML:com.adobe.xmp\0\0\0\0\0'), Buffer.from(XMP, 'utf8')])),
    chunk('caBX', ascii('c2pa ' + SECRET)), // C2PA content credentials
    chunk('prVt', ascii(SECRET)),           // any unknown ancillary chunk
  ];
  const out = [src.subarray(0, 8)];
  for (const [type, bytes] of chunks) {
    if (type === 'IDAT') out.push(...ours);
    out.push(bytes);
  }
  out.push(ascii('after IEND: ' + SECRET));
  return Buffer.concat(out);
}

// ---------------------------------------------------------------- GIF

function gif() {
  const src = load('photo.gif');
  let i = 13 + (src[10] & 0x80 ? 3 * (1 << ((src[10] & 7) + 1)) : 0);
  const blocks = (data) => {
    const out = [];
    for (let k = 0; k < data.length; k += 255) { const p = data.subarray(k, k + 255); out.push(Buffer.from([p.length]), p); }
    return Buffer.concat([...out, Buffer.from([0])]);
  };
  const plainText = Buffer.concat([Buffer.from([0x21, 0x01, 12, 0, 0, 0, 0, 32, 0, 8, 0, 8, 8, 1, 0]), blocks(ascii(SECRET))]);
  const loop = Buffer.concat([Buffer.from([0x21, 0xff, 11]), ascii('NETSCAPE2.0'), Buffer.from([3, 1, 0, 0]), Buffer.from([SECRET.length]), ascii(SECRET), Buffer.from([0])]);
  const icc = Buffer.concat([Buffer.from([0x21, 0xff, 11]), ascii('ICCRGBG1012'), blocks(iccProfile())]);
  return Buffer.concat([src.subarray(0, i), loop, icc, plainText, src.subarray(i), ascii('after the trailer: ' + SECRET)]);
}

// ---------------------------------------------------------------- WebP

function webp() {
  const src = load('photo.webp');
  const chunks = [];
  for (let i = 12; i + 8 <= src.length;) {
    const l = src.readUInt32LE(i + 4);
    chunks.push([src.subarray(i, i + 4).toString('latin1'), Buffer.from(src.subarray(i, i + 8 + l + (l & 1)))]);
    i += 8 + l + (l & 1);
  }
  const riff = (type, data) => Buffer.concat([ascii(type), u32le(data.length), data, Buffer.alloc(data.length & 1)]);
  const out = [];
  for (const [type, bytes] of chunks) {
    if (type === 'VP8X') {
      bytes[8] |= 0x20; // an ICC profile follows
      out.push(bytes, riff('ICCP', iccProfile()));
      continue;
    }
    out.push(bytes);
    if (type === 'VP8 ') out.push(riff('TCAM', ascii(SECRET)));
  }
  const body = Buffer.concat([ascii('WEBP'), ...out]);
  return Buffer.concat([ascii('RIFF'), u32le(body.length), body, ascii('after RIFF: ' + SECRET)]);
}

// ---------------------------------------------------------------- HEIC

// heic is the start of an iPhone-like HEIC file: its ftyp box and a meta
// box holding an Exif item's bytes. The page cannot clean HEIC; the test
// only needs it to be recognised as one.
function heic() {
  const box = (type, data) => Buffer.concat([u32be(8 + data.length), ascii(type), data]);
  return Buffer.concat([box('ftyp', ascii('heic\0\0\0\0mif1heic')), box('meta', Buffer.concat([Buffer.alloc(4), ascii('Exif'), exifTIFF()])), box('mdat', ascii(SECRET))]);
}

writeFileSync(here('leaky.jpg'), jpeg());
writeFileSync(here('leaky.png'), png());
writeFileSync(here('leaky.gif'), gif());
writeFileSync(here('leaky.webp'), webp());
writeFileSync(here('leaky.heic'), heic());
