// mls.mjs: how the page uses MLS (RFC 9420), through ts-mls (bundled in
// vendor/mls.mjs from web/mls), and nothing of the group's rules, which
// are group.mjs's. It owns:
//
//   - the one cipher suite, MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519:
//     X25519, Ed25519, AES-128-GCM, HKDF and SHA-256, all from the
//     browser's Web Crypto (no WebAssembly, no JIT needed);
//   - signing with keys no script can read: ts-mls keeps a member's
//     signature key as bytes in its group state; here those bytes are only
//     a random handle, and signing looks the non-extractable CryptoKey up
//     by it (register/unregister);
//   - the client configuration: how many past epochs and skipped message
//     keys are kept and how far one frame may ratchet ahead (RETENTION,
//     docs/protocol.md §12), no MLS padding (envelopes are padded to
//     buckets), a key package matching a leaf when both name and signature
//     key are the same (so that a member who lost its copy of the group
//     rejoins in place of its own old leaf, and nobody else can), and
//     credentials accepted only as names;
//   - credentials (a member's name, as the relay stored it), key packages,
//     encoding and decoding, and the exporter.

import * as M from './vendor/mls.mjs';
import { enc, dec, equal, toHex, randomBytes } from './bytes.mjs';
import { ED25519 } from './identity.mjs';

export const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519';

// RETENTION bounds what a page keeps and computes for one frame: skipped
// message keys per sender (out-of-order frames and the acknowledgements
// one was away for), epochs whose receiver keys stay after a commit (for
// frames sent just before it), and how many steps a sender's ratchet may be
// moved ahead for one frame (each step is three HKDF calls).
export const RETENTION = { retainKeysForGenerations: 32, retainKeysForEpochs: 2, maximumForwardRatchetSteps: 1000 };

export const MAX_NAME_BYTES = 128; // a prepared name is at most 32 characters

const handles = new Map(); // hex(handle) -> non-extractable Ed25519 private CryptoKey

// register makes a handle for a signing key pair: the bytes ts-mls keeps
// as the member's signature key. unregister forgets it.
export function register(pair) {
  const h = randomBytes(16);
  handles.set(toHex(h), pair.privateKey);
  return h;
}

export function unregister(h) { handles.delete(toHex(h)); }

let suiteP = null;

// suite returns the cipher suite, with signing through handles.
export function suite() {
  if (!suiteP) {
    suiteP = (async () => {
      const cs = await M.getCiphersuiteImpl(M.getCiphersuiteFromName(SUITE));
      const s = cs.signature;
      const signature = {
        async sign(handle, message) {
          const key = handles.get(toHex(handle));
          if (!key) throw new Error('signing key not available (the page left the room)');
          return new Uint8Array(await globalThis.crypto.subtle.sign(ED25519, key, message));
        },
        verify: s.verify,
        keygen() { throw new Error('keys are made by identity.mjs'); },
      };
      return { ...cs, signature };
    })();
  }
  return suiteP;
}

// nameOf returns a leaf's or key package's name, or '' if its credential
// is not a name.
export function nameOf(leafNode) {
  const c = leafNode && leafNode.credential;
  if (!c || c.credentialType !== 'basic' || !(c.identity instanceof Uint8Array) || c.identity.length > MAX_NAME_BYTES) return '';
  try { return dec.decode(c.identity); } catch { return ''; }
}

// sameMember says whether two leaves are the same member: the same name
// and the same signature key.
export function sameMember(a, b) {
  return !!nameOf(a) && equal(a.credential.identity, b.credential.identity) && equal(a.signaturePublicKey, b.signaturePublicKey);
}

export const CONFIG = {
  ...M.defaultClientConfig,
  keyRetentionConfig: RETENTION,
  paddingConfig: { kind: 'alwaysPad', paddingLength: 0 },
  keyPackageEqualityConfig: {
    compareKeyPackages: (a, b) => sameMember(a.leafNode, b.leafNode),
    compareKeyPackageToLeafNode: (kp, leaf) => sameMember(kp.leafNode, leaf),
  },
  authService: { async validateCredential(cred) { return nameOf({ credential: cred }) !== ''; } },
};

const CAPABILITIES = { versions: ['mls10'], ciphersuites: [SUITE], extensions: [], proposals: [], credentials: ['basic'] };

// keyPackage makes a key package for name, signed through handle.
export async function keyPackage(name, handle, publicKey) {
  return M.generateKeyPackageWithKey({ credentialType: 'basic', identity: enc.encode(name) }, CAPABILITIES, M.defaultLifetime, [],
    { signKey: handle, publicKey }, await suite());
}

// leaves lists the members of state's ratchet tree: {index, name, key}
// (key: the raw Ed25519 public key).
export function leaves(state) {
  const out = [];
  state.ratchetTree.forEach((n, i) => {
    if (n && n.nodeType === 'leaf') out.push({ index: i / 2, name: nameOf(n.leaf), key: n.leaf.signaturePublicKey });
  });
  return out;
}

export function ownIndex(state) { return state.privatePath.leafIndex; }

export function epochOf(state) { return Number(state.groupContext.epoch); }

export const encode = (m) => M.encodeMlsMessage(m);

// decode returns the MLSMessage in b, or null if b is not exactly one.
export function decode(b) {
  try {
    const r = M.decodeMlsMessage(b, 0);
    return r && r[1] === b.length ? r[0] : null;
  } catch {
    return null;
  }
}

export const {
  createGroup, createCommit, joinGroupExternal, createApplicationMessage, processMessage, emptyPskIndex, decryptSenderData,
  mlsExporter, zeroOutUint8Array, createGroupInfoWithExternalPubAndRatchetTree, ratchetTreeFromExtension,
} = M;

// groupInfo returns the encoded GroupInfo of state, with its ratchet tree
// and external public key: what a newcomer needs to join by an external
// commit.
export async function groupInfo(state) {
  const gi = await M.createGroupInfoWithExternalPubAndRatchetTree(state, [], await suite());
  return encode({ version: 'mls10', wireformat: 'mls_group_info', groupInfo: gi });
}

// exporter derives length bytes for label and context from an epoch's
// exporter secret (RFC 9420 §8.5).
export async function exporter(secret, label, context, length) {
  return M.mlsExporter(secret, label, context, length, await suite());
}

// wipe zeroes what ts-mls says it consumed.
export function wipe(consumed) { for (const b of consumed || []) M.zeroOutUint8Array(b); }
