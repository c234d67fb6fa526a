// unavailable.mjs stands in for ts-mls's optional packages (other curves,
// ChaCha20, post-quantum KEMs), which the page's cipher suite never loads.
// ts-mls imports them only when asked for another suite; then this throws.
throw new Error('onionchat: this MLS cipher suite is not built into the page');
