// The Worker's entry module. worker-build bundles it (CUSTOM_SHIM, see scripts/build-worker.sh)
// with the wasm-bindgen glue of this crate (index_bg.js) and loads the Wasm module beside it.
//
// A plain module Worker: each request goes straight to the Rust export `fetch` in
// src/edge/mod.rs. worker-build's own entry wraps every request in Proxies of a
// WorkerEntrypoint class, which costs more CPU per request than this Worker's own code
// (BENCHMARKS.md, "The floor").
//
// After a panic. The release build aborts on panic (panic = "abort"): the instance traps, that
// request fails, and the instance's memory can no longer be trusted. The panic hook in
// src/edge/mod.rs then schedules a reinit, and the glue builds a fresh instance before its
// next call into Rust. The glue's reinit takes the module, the imports and the instance from
// the three globals below (wasmModule, __wbg_get_imports, wasmInstance); with this entry
// nothing else defines them. tests/e2e_worker.rs checks that a Worker answers again after a
// panic.
import * as glue from "./index_bg.js";
import module from "./index.wasm";

globalThis.wasmModule = module;
globalThis.__wbg_get_imports = () => ({ "./index_bg.js": glue });
globalThis.wasmInstance = new WebAssembly.Instance(module, globalThis.__wbg_get_imports());
glue.__wbg_set_wasm(globalThis.wasmInstance.exports);
globalThis.wasmInstance.exports.__wbindgen_start();

export default {
  fetch(request, env, ctx) {
    return glue.fetch(request, env, ctx);
  },
};
