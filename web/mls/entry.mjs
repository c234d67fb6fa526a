// entry.mjs: what the page takes from ts-mls (RFC 9420, MLS), and nothing
// more. `go run ./internal/make js` bundles this file, with the exact
// packages package-lock.json pins, into web/static/vendor/mls.mjs, which
// the binary embeds; CI checks that the embedded file is what that step
// builds. Imports name ts-mls's own modules rather than its index, which
// would also pull in a second crypto provider (noble) the page never uses:
// every primitive here is the browser's Web Crypto (X25519, Ed25519,
// AES-GCM, HKDF, SHA-256), so it runs where WebAssembly and the JIT are off.
export { getCiphersuiteImpl } from 'ts-mls/crypto/getCiphersuiteImpl.js';
export { getCiphersuiteFromName } from 'ts-mls/crypto/ciphersuite.js';
export { generateKeyPackageWithKey } from 'ts-mls/keyPackage.js';
export { createGroup, getGroupMembers } from 'ts-mls/clientState.js';
export { createCommit, joinGroupExternal, createGroupInfoWithExternalPubAndRatchetTree } from 'ts-mls/createCommit.js';
export { createApplicationMessage } from 'ts-mls/createMessage.js';
export { processMessage } from 'ts-mls/processMessages.js';
export { encodeMlsMessage, decodeMlsMessage } from 'ts-mls/message.js';
export { decryptSenderData } from 'ts-mls/privateMessage.js';
export { ratchetTreeFromExtension } from 'ts-mls/groupInfo.js';
export { emptyPskIndex } from 'ts-mls/pskIndex.js';
export { mlsExporter } from 'ts-mls/keySchedule.js';
export { defaultLifetime } from 'ts-mls/lifetime.js';
export { defaultClientConfig } from 'ts-mls/clientConfig.js';
export { zeroOutUint8Array } from 'ts-mls/util/byteArray.js';
