//! A body read in steps of about 1 MiB (wasm32 only), for a path that must see the bytes as
//! they pass (a NAR upload being hashed) instead of letting the runtime pipe them.
//!
//! workerd's BYOB reader with `readAtLeast` fills a 1 MiB buffer per step, so a 1 GiB body is
//! about a thousand hops between the runtime and Wasm instead of one per network chunk, and no
//! byte is copied into Wasm memory. The next step is read while the current one is being
//! written. Buffers the caller is done with are given back ([`Steps::recycle`]) and read into
//! again: a body in steps allocates a handful of buffers, not one per step, so its memory
//! does not wait for the garbage collector.

use js_sys::{Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::ReadableStream;

#[wasm_bindgen]
extern "C" {
    /// A body, for `getReader({ mode: "byob" })`.
    #[wasm_bindgen(extends = ReadableStream, js_name = ReadableStream)]
    type ByteSource;

    #[wasm_bindgen(catch, method, js_name = getReader)]
    fn get_reader_with(this: &ByteSource, options: &JsValue) -> Result<ByobReader, JsValue>;

    /// workerd's BYOB reader, with its `readAtLeast` (fill a buffer with at least so many bytes
    /// unless the stream ends first).
    #[wasm_bindgen(js_name = ReadableStreamBYOBReader)]
    type ByobReader;

    #[wasm_bindgen(method, js_name = readAtLeast)]
    fn read_at_least(this: &ByobReader, min: u32, view: &Uint8Array) -> Promise;

    #[wasm_bindgen(method)]
    fn cancel(this: &ByobReader) -> Promise;
}

/// The bytes of one step: few enough steps that the hops between the runtime and Wasm cost
/// nothing next to the bytes, few enough bytes that a handful of steps is little memory.
const STEP_BYTES: u32 = 1 << 20;

/// A body being read in steps.
pub(crate) struct Steps {
    reader: ByobReader,
    reading: Option<Promise>,
    spare: Vec<Uint8Array>,
}

impl Steps {
    /// Locks `body` and starts reading its first step.
    pub(crate) fn new(body: ReadableStream) -> Result<Steps, JsValue> {
        let options = js_sys::Object::new();
        Reflect::set(&options, &"mode".into(), &"byob".into())?;
        let reader = body
            .unchecked_into::<ByteSource>()
            .get_reader_with(&options)?;
        let mut steps = Steps {
            reader,
            reading: None,
            spare: Vec::new(),
        };
        steps.reading = Some(steps.read_step());
        Ok(steps)
    }

    /// The next step's bytes (the read of the one after is started), `None` at the end.
    pub(crate) async fn next(&mut self) -> Result<Option<Uint8Array>, JsValue> {
        let Some(reading) = self.reading.take() else {
            return Ok(None);
        };
        let result = JsFuture::from(reading).await?;
        if Reflect::get(&result, &"done".into())?.is_truthy() {
            return Ok(None);
        }
        let chunk: Uint8Array = Reflect::get(&result, &"value".into())?.dyn_into()?;
        self.reading = Some(self.read_step());
        Ok(Some(chunk))
    }

    /// Gives back the buffer of a step whose bytes every writer has taken (their writes have
    /// resolved), to be read into again.
    pub(crate) fn recycle(&mut self, chunk: &Uint8Array) {
        let buffer = Uint8Array::new(&chunk.buffer());
        if buffer.length() == STEP_BYTES {
            self.spare.push(buffer);
        }
    }

    /// Stops reading: the body is cancelled (its source stops sending).
    pub(crate) fn cancel(&mut self) {
        self.reading = None;
        let _ = self.reader.cancel();
    }
}

impl Steps {
    fn read_step(&mut self) -> Promise {
        let buffer = self
            .spare
            .pop()
            .unwrap_or_else(|| Uint8Array::new_with_length(STEP_BYTES));
        self.reader.read_at_least(STEP_BYTES, &buffer)
    }
}
