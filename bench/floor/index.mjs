// The smallest JavaScript Worker: the same fixed nix-cache-info text as src/lib.rs beside it.
const CACHE_INFO = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n";

export default {
  fetch() {
    return new Response(CACHE_INFO, { headers: { "content-type": "text/x-nix-cache-info" } });
  },
};
