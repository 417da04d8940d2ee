//! JNI entry points of `dev.ecom.flink.nativelib.ServeNative`: ecom serve's Score and Recommend
//! run inside the TaskManager, from the very model files `ecom serve` loads (a models directory
//! and its CURRENT version), through the same code (`Scorer::score_batch_with`,
//! `Scorer::similar_batch_with`). Requests and answers cross as the gRPC messages' protobuf bytes,
//! so the job builds and reads them exactly as it does for the gRPC hop.
//!
//! A separate library from ecom-jni because it links XGBoost (libxgboost.so.3): the job loads it
//! only when told to score in-process. Every entry point catches panics and turns every error
//! into a Java exception whose message names the cause: nothing unwinds into the JVM.
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![deny(unused_must_use)]

use ecom_proto::v1::{ScoreBatchRequest, ScoreBatchResponse, SimilarBatchRequest, SimilarBatchResponse};
use ecom_serve::model::{Model, ModelStore};
use ecom_serve::score::Scorer;
use jni::objects::{JByteArray, JClass, JString};
use jni::sys::{jbyteArray, jstring};
use jni::JNIEnv;
use prost::Message;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::Status;

/// How often a call looks whether CURRENT moved: the pace at which `ecom serve` polls it too.
const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// Booster copies per loaded model: one per task thread scoring at once in a TaskManager.
const BOOSTERS: usize = 2;

/// One models directory's store and when a call last looked at CURRENT.
struct Dir {
    path: PathBuf,
    store: Arc<ModelStore>,
    checked: Option<Instant>,
}

/// Every models directory this JVM scores from (nearly always one), shared by its task threads.
static DIRS: Mutex<Vec<Dir>> = Mutex::new(Vec::new());

/// The model to answer with from `dir`: loaded on first use and whenever CURRENT has moved
/// (looked at by one call at most every [`RELOAD_EVERY`]). The first load holds the other task
/// threads until it is done (they have nothing to answer with before); a reload does not: they
/// go on with the model they have. A version that fails to load leaves the one before serving
/// (the store remembers it); with none before, the error says why.
fn model(dir: &Path) -> Result<Arc<Model>, String> {
    let mut dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner());
    let at = match dirs.iter().position(|d| d.path == dir) {
        Some(i) => i,
        None => {
            let store = Arc::new(ModelStore::new(dir.to_path_buf(), BOOSTERS));
            dirs.push(Dir { path: dir.to_path_buf(), store, checked: None });
            dirs.len() - 1
        }
    };
    let d = &mut dirs[at];
    let due = d.checked.is_none_or(|t| t.elapsed() >= RELOAD_EVERY);
    if due {
        d.checked = Some(Instant::now());
    }
    let store = d.store.clone();
    if store.get().is_some() {
        drop(dirs);
    }
    if due {
        let _ = store.refresh(); // an error is the store's load_error below
    }
    store.get().ok_or_else(|| {
        store.load_error().unwrap_or_else(|| {
            format!("no model in {}: run `ecom train` (models/CURRENT names the version)", dir.display())
        })
    })
}

/// Runs `f`, turning an error or a panic into a thrown `RuntimeException` and a null return.
fn guarded<'l, T>(
    env: &mut JNIEnv<'l>,
    what: &str,
    null: T,
    f: impl FnOnce(&mut JNIEnv<'l>) -> Result<T, String>,
) -> T {
    let msg = match catch_unwind(AssertUnwindSafe(|| f(env))) {
        Ok(Ok(v)) => return v,
        Ok(Err(m)) => format!("ecom-jni-serve {what}: {m}"),
        Err(panic) => {
            let m = ecom_core::packed::panic_message(panic.as_ref());
            format!("ecom-jni-serve {what}: internal error (panic): {m}")
        }
    };
    if !env.exception_check().unwrap_or(true) {
        let _ = env.throw_new("java/lang/RuntimeException", msg);
    }
    null
}

/// The models directory and the request's bytes from Java.
fn read_args(env: &mut JNIEnv<'_>, dir: &JString<'_>, request: &JByteArray<'_>) -> Result<(PathBuf, Vec<u8>), String> {
    if dir.is_null() || request.is_null() {
        return Err("modelsDir and request must not be null".into());
    }
    let dir: String = env.get_string(dir).map_err(|e| format!("modelsDir: {e}"))?.into();
    let bytes = env.convert_byte_array(request).map_err(|e| format!("request: {e}"))?;
    Ok((PathBuf::from(dir), bytes))
}

fn to_java(env: &mut JNIEnv<'_>, bytes: &[u8]) -> Result<jbyteArray, String> {
    env.byte_array_from_slice(bytes).map(JByteArray::into_raw).map_err(|e| format!("JNI: {e}"))
}

/// One batch method: the request message's bytes in, `answer` with the current model of `dir`,
/// the response message's bytes out.
fn batch<'l, Q: Message + Default, R: Message>(
    env: &mut JNIEnv<'l>,
    what: &str,
    dir: &JString<'l>,
    request: &JByteArray<'l>,
    answer: impl FnOnce(&Model, Q) -> Result<R, Status>,
) -> jbyteArray {
    guarded(env, what, std::ptr::null_mut(), |env| {
        let (dir, bytes) = read_args(env, dir, request)?;
        let req = Q::decode(bytes.as_slice()).map_err(|e| format!("the request: {e}"))?;
        let m = model(&dir)?;
        let out = answer(&m, req).map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
        to_java(env, &out.encode_to_vec())
    })
}

/// `byte[] scoreBatch(String modelsDir, byte[] scoreBatchRequest)`: Score.PredictBatch answered
/// in-process; returns the ScoreBatchResponse's bytes. A refused request throws with the status
/// serve would have answered.
#[no_mangle]
pub extern "system" fn Java_dev_ecom_flink_nativelib_ServeNative_scoreBatch<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    dir: JString<'l>,
    request: JByteArray<'l>,
) -> jbyteArray {
    batch(&mut env, "scoreBatch", &dir, &request, |m, r: ScoreBatchRequest| {
        Ok(ScoreBatchResponse { responses: Scorer::score_batch_with(m, &r.requests)? })
    })
}

/// `byte[] similarBatch(String modelsDir, byte[] similarBatchRequest)`: Recommend.SimilarBatch
/// answered in-process; returns the SimilarBatchResponse's bytes.
#[no_mangle]
pub extern "system" fn Java_dev_ecom_flink_nativelib_ServeNative_similarBatch<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    dir: JString<'l>,
    request: JByteArray<'l>,
) -> jbyteArray {
    batch(&mut env, "similarBatch", &dir, &request, |m, r: SimilarBatchRequest| {
        Ok(SimilarBatchResponse { responses: Scorer::similar_batch_with(m, &r.requests)? })
    })
}

/// `String modelVersion(String modelsDir)`: the version in-process calls answer with now
/// (loading it if needed), for the job's log as its tasks open.
#[no_mangle]
pub extern "system" fn Java_dev_ecom_flink_nativelib_ServeNative_modelVersion<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    dir: JString<'l>,
) -> jstring {
    guarded(&mut env, "modelVersion", std::ptr::null_mut(), |env| {
        if dir.is_null() {
            return Err("modelsDir must not be null".into());
        }
        let dir: String = env.get_string(&dir).map_err(|e| format!("modelsDir: {e}"))?.into();
        let m = model(Path::new(&dir))?;
        env.new_string(&m.version).map(JString::into_raw).map_err(|e| format!("JNI: {e}"))
    })
}
