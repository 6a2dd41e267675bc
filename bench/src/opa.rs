//! The OPA engine, loaded with dlopen from `libopabridge.so` (OPA v1.20.2 built as a Go
//! c-shared library, shipped in the PyPI wheel `opa-golib-python-bindings`).
//!
//! The wheel ships no C header. The C API below was read from the library's exported
//! symbols (`nm -D libopabridge.so | grep ' T Opa'`: OpaNew, OpaDestroy, OpaAddPolicy,
//! OpaAddData, OpaEvalQuery, OpaEvalDocument, OpaRegisterBuiltin, OpaCompileFilters,
//! OpaFreeString) and the wheel's own ctypes declarations (`opa_bindings/_native.py`):
//!
//! ```c
//! uint64_t OpaNew(void);                                   // an engine handle
//! char *OpaAddPolicy(uint64_t h, char *module_path, char *rego_source);
//! char *OpaAddData(uint64_t h, char *dotted_path, char *json);   // "" = the root
//! char *OpaEvalDocument(uint64_t h, char *dotted_path, char *input_json,
//!                       int coverage, int trace);
//! void  OpaFreeString(char *);                             // frees every char* above
//! ```
//!
//! Every `char *` result is a malloc'd JSON envelope, `{"error": {"code", "message"}}` on
//! failure; OpaEvalDocument's success is `{"result": [{"expressions": [{"value": V}]}]}`
//! (an empty result means undefined). The engine prepares and caches the query on first
//! use, like OPA's server does with a prepared query.

// The only module allowed unsafe code: every call into the library is FFI.
#![allow(unsafe_code)]

use anyhow::{anyhow, bail, Context, Result};
use lastmile::policy::bundle::Bundle;
use serde_json::Value;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};

// glibc (≥ 2.34) exports the dynamic loader's API from libc itself.
extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *const c_char;
}
const RTLD_NOW: c_int = 2;

type NewFn = unsafe extern "C" fn() -> u64;
type AddFn = unsafe extern "C" fn(u64, *const c_char, *const c_char) -> *mut c_char;
type EvalFn = unsafe extern "C" fn(u64, *const c_char, *const c_char, c_int, c_int) -> *mut c_char;
type FreeFn = unsafe extern "C" fn(*mut c_char);

/// The decision document lastmile reads (`data.lastmile.decision`), as OPA names it.
pub const DECISION: &CStr = c"lastmile.decision";

/// One OPA engine with its policies and data loaded.
pub struct Opa {
    handle: u64,
    add_policy: AddFn,
    add_data: AddFn,
    eval_document: EvalFn,
    free_string: FreeFn,
}

impl Opa {
    /// Loads the library and creates an engine.
    pub fn load(library: &Path) -> Result<Opa> {
        let name = CString::new(library.as_os_str().as_encoded_bytes())?;
        // SAFETY: dlopen/dlsym are called with NUL-terminated strings; each symbol is
        // transmuted to the signature documented above, checked against the wheel's
        // ctypes declarations. The library stays loaded for the life of the process
        // (it is never dlclose'd: a Go runtime cannot be unloaded).
        unsafe {
            let lib = dlopen(name.as_ptr(), RTLD_NOW);
            if lib.is_null() {
                bail!("dlopen {}: {}", library.display(), last_dl_error());
            }
            let symbol = |name: &CStr| -> Result<*mut c_void> {
                let ptr = dlsym(lib, name.as_ptr());
                if ptr.is_null() {
                    bail!("{name:?} not exported: {}", last_dl_error());
                }
                Ok(ptr)
            };
            let new: NewFn = std::mem::transmute(symbol(c"OpaNew")?);
            Ok(Opa {
                handle: new(),
                add_policy: std::mem::transmute::<*mut c_void, AddFn>(symbol(c"OpaAddPolicy")?),
                add_data: std::mem::transmute::<*mut c_void, AddFn>(symbol(c"OpaAddData")?),
                eval_document: std::mem::transmute::<*mut c_void, EvalFn>(symbol(
                    c"OpaEvalDocument",
                )?),
                free_string: std::mem::transmute::<*mut c_void, FreeFn>(symbol(c"OpaFreeString")?),
            })
        }
    }

    /// Loads the library and a bundle exactly as lastmile reads it: the same policy files
    /// (tests left out) of the bundle and its libraries, and the same data documents.
    pub fn with_bundle(library: &Path, bundle: &Path, libraries: &[PathBuf]) -> Result<Opa> {
        let opa = Opa::load(library)?;
        let bundle = Bundle::read_with_libraries(bundle, libraries)?;
        for file in &bundle.policies {
            opa.add_policy(&file.name, &file.source)
                .with_context(|| format!("loading {}", file.name))?;
        }
        for file in &bundle.data {
            let json = file.document.to_json_str().map_err(|e| anyhow!("{e}"))?;
            opa.add_data(&json)
                .with_context(|| format!("loading {}", file.name))?;
        }
        Ok(opa)
    }

    /// Adds one Rego module under `path` (its file name, for error messages).
    pub fn add_policy(&self, path: &str, source: &str) -> Result<()> {
        let (path, source) = (CString::new(path)?, CString::new(source)?);
        // SAFETY: valid C strings that outlive the call; the result is freed by `take`.
        self.take(unsafe { (self.add_policy)(self.handle, path.as_ptr(), source.as_ptr()) })
            .map(drop)
    }

    /// Merges a JSON document into `data` at the root.
    pub fn add_data(&self, json: &str) -> Result<()> {
        let (root, json) = (CString::new("")?, CString::new(json)?);
        // SAFETY: as in `add_policy`.
        self.take(unsafe { (self.add_data)(self.handle, root.as_ptr(), json.as_ptr()) })
            .map(drop)
    }

    /// Evaluates `data.<path>` (dotted) against an input document given as JSON text;
    /// `None` when the document is undefined.
    pub fn eval(&self, path: &CStr, input: &str) -> Result<Option<Value>> {
        let input = CString::new(input)?;
        // SAFETY: as in `add_policy`; coverage and trace off.
        let envelope = self.take(unsafe {
            (self.eval_document)(self.handle, path.as_ptr(), input.as_ptr(), 0, 0)
        })?;
        Ok(envelope.pointer("/result/0/expressions/0/value").cloned())
    }

    /// Copies and frees an envelope, turning `{"error": ...}` into an error.
    fn take(&self, ptr: *mut c_char) -> Result<Value> {
        if ptr.is_null() {
            bail!("the OPA library returned NULL");
        }
        // SAFETY: a non-NULL result is a NUL-terminated string the library allocated;
        // it is copied before being handed back to the library's free.
        let text = unsafe {
            let text = CStr::from_ptr(ptr).to_string_lossy().into_owned();
            (self.free_string)(ptr);
            text
        };
        let envelope: Value = serde_json::from_str(&text).context("OPA's reply")?;
        match envelope.get("error") {
            Some(error) if !error.is_null() => Err(anyhow!("OPA: {error}")),
            _ => Ok(envelope),
        }
    }
}

fn last_dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string owned by the loader.
    unsafe {
        let message = dlerror();
        if message.is_null() {
            "unknown error".into()
        } else {
            CStr::from_ptr(message).to_string_lossy().into_owned()
        }
    }
}
