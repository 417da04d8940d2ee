//! JNI entry points of `dev.ecom.flink.nativelib.EcomNative`, thin wrappers over ecom-core.
//! Every entry point is batched (many records per call), catches panics, and turns every
//! error into a Java exception whose message says what was wrong: nothing unwinds into the JVM.
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![deny(unused_must_use)]

use ecom_core::dp::{Accountant, Laplace, Quantity};
use ecom_core::features;
use ecom_core::lsh::{Lsh, LshParams};
use ecom_proto::v1::{EnrichedEvent, SessionState, UserHistory};
use jni::objects::{JByteArray, JClass, JDoubleArray, JIntArray, JLongArray, JObject, JObjectArray};
use jni::sys::{jdouble, jint, jlong, jlongArray, jobjectArray, jstring};
use jni::JNIEnv;
use prost::Message;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

type JniResult<T> = Result<T, Error>;

/// What went wrong inside a native call; becomes the Java exception.
enum Error {
    /// Bad arguments from Java: IllegalArgumentException.
    Arg(String),
    /// A privacy budget would be exceeded: IllegalStateException.
    Budget(String),
    /// A JNI failure (may already have a pending Java exception).
    Jni(jni::errors::Error),
}

impl From<jni::errors::Error> for Error {
    fn from(e: jni::errors::Error) -> Self {
        Error::Jni(e)
    }
}

thread_local! {
    /// The hasher of the last parameters this thread used: Flink calls from a few task threads,
    /// each nearly always with the same parameters, so this needs no lock and no rebuild.
    static LSH: RefCell<Option<Lsh>> = const { RefCell::new(None) };
}

thread_local! {
    /// Mechanisms built on this thread, by (quantity, ε bits): a job releases the same few kinds
    /// every window, and building one through OpenDP costs more than a release.
    static MECHANISMS: RefCell<Vec<(Quantity, u64, Rc<Laplace>)>> = const { RefCell::new(Vec::new()) };
}

/// The discrete Laplace mechanism for `quantity` at `epsilon`, from this thread's cache.
fn mechanism(quantity: Quantity, epsilon: f64) -> Result<Rc<Laplace>, ecom_core::dp::DpError> {
    MECHANISMS.with(|cell| {
        let mut cache = cell.borrow_mut();
        if let Some((_, _, m)) = cache.iter().find(|(q, e, _)| *q == quantity && *e == epsilon.to_bits()) {
            return Ok(Rc::clone(m));
        }
        let m = Rc::new(Laplace::new(quantity, epsilon)?);
        if cache.len() >= 256 {
            cache.clear(); // bounded: many distinct ε would be a misuse, not a reason to grow
        }
        cache.push((quantity, epsilon.to_bits(), Rc::clone(&m)));
        Ok(m)
    })
}

/// Runs `f` with a hasher for `params`, built once per thread and parameter change.
fn with_lsh<T>(params: LshParams, f: impl FnOnce(&Lsh) -> T) -> JniResult<T> {
    LSH.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.as_ref().map(Lsh::params) != Some(params) {
            *cached = Some(Lsh::new(params).map_err(|e| Error::Arg(e.to_string()))?);
        }
        Ok(f(cached.as_ref().expect("set above")))
    })
}

/// Runs `f`, converting errors and panics into a thrown Java exception and a null return.
fn guarded<'l, T>(env: &mut JNIEnv<'l>, what: &str, null: T, f: impl FnOnce(&mut JNIEnv<'l>) -> JniResult<T>) -> T {
    let outcome = catch_unwind(AssertUnwindSafe(|| f(env)));
    let (class, msg) = match outcome {
        Ok(Ok(v)) => return v,
        Ok(Err(Error::Arg(m))) => ("java/lang/IllegalArgumentException", format!("ecom-jni {what}: {m}")),
        Ok(Err(Error::Budget(m))) => ("java/lang/IllegalStateException", format!("ecom-jni {what}: {m}")),
        Ok(Err(Error::Jni(jni::errors::Error::JavaException))) => return null, // already pending
        Ok(Err(Error::Jni(e))) => ("java/lang/RuntimeException", format!("ecom-jni {what}: JNI error: {e}")),
        Err(panic) => {
            let m = ecom_core::packed::panic_message(panic.as_ref());
            ("java/lang/RuntimeException", format!("ecom-jni {what}: internal error (panic): {m}"))
        }
    };
    if !env.exception_check().unwrap_or(true) {
        let _ = env.throw_new(class, msg);
    }
    null
}

/// Strings packed by the Java side as one UTF-8 `byte[]` and the end offset of each string: one
/// JNI copy for the whole batch instead of several JNI calls per string.
struct Packed {
    bytes: Vec<u8>,
    ends: Vec<i32>,
}

impl Packed {
    fn read(env: &mut JNIEnv<'_>, bytes: &JByteArray<'_>, ends: &JIntArray<'_>, name: &str) -> JniResult<Self> {
        if bytes.is_null() || ends.is_null() {
            return Err(Error::Arg(format!("{name}: packed bytes and ends must not be null")));
        }
        let mut packed =
            Packed { bytes: env.convert_byte_array(bytes)?, ends: vec![0; env.get_array_length(ends)? as usize] };
        env.get_int_array_region(ends, 0, &mut packed.ends)?;
        Ok(packed)
    }

    /// The strings, each checked to be UTF-8 (and the ends to be in order and in the bytes).
    fn strs(&self, name: &str) -> JniResult<Vec<&str>> {
        ecom_core::packed::split(&self.bytes, &self.ends, name).map_err(Error::Arg)
    }
}

/// Element `i` of a `byte[][]` copied out, or None when it is null.
fn bytes_at(env: &mut JNIEnv<'_>, arr: &JObjectArray<'_>, i: i32) -> JniResult<Option<Vec<u8>>> {
    env.with_local_frame(2, |env| -> JniResult<Option<Vec<u8>>> {
        let obj = env.get_object_array_element(arr, i)?;
        if obj.is_null() {
            return Ok(None);
        }
        Ok(Some(env.convert_byte_array(JByteArray::from(obj))?))
    })
}

/// `String[] validateBatch(byte[][] records, long nowMs, int maxRecordBytes)`: null for a valid
/// record, else "REJECT_REASON_X\tdetail". A record over `maxRecordBytes` is OVERSIZE_RECORD.
#[no_mangle]
pub extern "system" fn Java_dev_ecom_flink_nativelib_EcomNative_validateBatch<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    records: JObjectArray<'l>,
    now_ms: jlong,
    max_record_bytes: jint,
) -> jobjectArray {
    guarded(&mut env, "validateBatch", std::ptr::null_mut(), |env| {
        if records.is_null() {
            return Err(Error::Arg("records is null".into()));
        }
        let max_record_bytes = usize::try_from(max_record_bytes)
            .map_err(|_| Error::Arg(format!("maxRecordBytes must not be negative, got {max_record_bytes}")))?;
        let n = env.get_array_length(&records)?;
        let out = env.new_object_array(n, "java/lang/String", JObject::null())?;
        for i in 0..n {
            let bytes = bytes_at(env, &records, i)?.ok_or_else(|| Error::Arg(format!("records[{i}] is null")))?;
            // A local frame per record keeps the local-reference table small for big batches.
            env.with_local_frame(2, |env| -> JniResult<()> {
                if let Err(r) = ecom_core::validate_bytes_within(&bytes, now_ms, max_record_bytes) {
                    let s = env.new_string(format!("{}\t{}", r.reason.as_str_name(), r.detail))?;
                    env.set_object_array_element(&out, i, s)?;
                }
                Ok(())
            })?;
        }
        Ok(out.into_raw())
    })
}

/// `long[] lshBatchUtf8(byte[] tokens, int[] tokenEnds, int[] offsets, int numPerm, int
/// numBands)`: the tokens packed as UTF-8 (see `Packed`); set i is tokens offsets[i] ..
/// offsets[i+1]. For each of the n sets: num_perm signature values, then num_bands bucket hashes.
#[no_mangle]
pub extern "system" fn Java_dev_ecom_flink_nativelib_EcomNative_lshBatchUtf8<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    tokens: JByteArray<'l>,
    token_ends: JIntArray<'l>,
    offsets: JIntArray<'l>,
    num_perm: jint,
    num_bands: jint,
) -> jlongArray {
    guarded(&mut env, "lshBatch", std::ptr::null_mut(), |env| {
        if offsets.is_null() {
            return Err(Error::Arg("offsets must not be null".into()));
        }
        let packed = Packed::read(env, &tokens, &token_ends, "tokens")?;
        let all = packed.strs("tokens")?;
        let n_tokens = all.len() as jint;
        let n_off = env.get_array_length(&offsets)?;
        if n_off < 1 {
            return Err(Error::Arg("offsets must have n+1 entries (at least 1)".into()));
        }
        let mut off = vec![0 as jint; n_off as usize];
        env.get_int_array_region(&offsets, 0, &mut off)?;
        if off[0] != 0 || off.windows(2).any(|w| w[0] > w[1]) || off[off.len() - 1] != n_tokens {
            return Err(Error::Arg(format!(
                "offsets must start at 0, never decrease and end at tokens.length ({n_tokens})"
            )));
        }
        if num_perm <= 0 || num_bands <= 0 {
            return Err(Error::Arg(format!("numPerm {num_perm} and numBands {num_bands} must be > 0")));
        }
        let params = LshParams { num_perm: num_perm as usize, num_bands: num_bands as usize };
        let out = with_lsh(params, |lsh| {
            let mut out: Vec<jlong> = Vec::with_capacity((n_off as usize - 1) * (params.num_perm + params.num_bands));
            for w in off.windows(2) {
                // &str hashes as String does: the same signature training computes.
                let sig = lsh.signature(&all[w[0] as usize..w[1] as usize]);
                let buckets = lsh.band_buckets(&sig);
                // Java has no unsigned long: the bits are carried as they are.
                out.extend(sig.iter().chain(buckets.iter()).map(|v| *v as jlong));
            }
            out
        })?;
        let arr = env.new_long_array(out.len() as i32)?;
        env.set_long_array_region(&arr, 0, &out)?;
        Ok(arr.into_raw())
    })
}

/// `byte[][] sessionUpdateBatch(byte[][] states, byte[][] events, long[] users, double[] out)`:
/// folds event i (EnrichedEvent bytes) into state i (SessionState bytes; null = a new session)
/// and writes its feature vector to out[i*F .. (i+1)*F] (F = featureCount()). users holds
/// 3 longs per event (prior sessions, prior purchases, last session start ms) or is null.
/// Returns the new states. Events of one session must come in order within a batch; the
/// caller passes each event with its session's latest state.
#[no_mangle]
pub extern "system" fn Java_dev_ecom_flink_nativelib_EcomNative_sessionUpdateBatch<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    states: JObjectArray<'l>,
    events: JObjectArray<'l>,
    users: JLongArray<'l>,
    out: JDoubleArray<'l>,
) -> jobjectArray {
    guarded(&mut env, "sessionUpdateBatch", std::ptr::null_mut(), |env| {
        if states.is_null() || events.is_null() || out.is_null() {
            return Err(Error::Arg("states, events and out must not be null".into()));
        }
        let n = env.get_array_length(&events)?;
        let n_states = env.get_array_length(&states)?;
        if n_states != n {
            return Err(Error::Arg(format!("states has {n_states} entries, events {n}")));
        }
        let f = features::LEN;
        if env.get_array_length(&out)? as usize != n as usize * f {
            return Err(Error::Arg(format!("out must have events.length * {f} = {} entries", n as usize * f)));
        }
        let mut hist = Vec::new();
        if !users.is_null() {
            if env.get_array_length(&users)? as usize != n as usize * 3 {
                return Err(Error::Arg(format!("users must be null or have events.length * 3 = {} entries", n * 3)));
            }
            hist = vec![0 as jlong; n as usize * 3];
            env.get_long_array_region(&users, 0, &mut hist)?;
        }
        let result = env.new_object_array(n, "[B", JObject::null())?;
        let mut values = vec![0.0 as jdouble; n as usize * f];
        for i in 0..n {
            let iu = i as usize;
            let mut state = match bytes_at(env, &states, i)? {
                None => features::new_state(),
                Some(bytes) => SessionState::decode(bytes.as_slice())
                    .map_err(|e| Error::Arg(format!("states[{i}] is not a SessionState: {e}")))?,
            };
            let bytes = bytes_at(env, &events, i)?.ok_or_else(|| Error::Arg(format!("events[{i}] is null")))?;
            let event = EnrichedEvent::decode(bytes.as_slice())
                .map_err(|e| Error::Arg(format!("events[{i}] is not an EnrichedEvent: {e}")))?;
            features::update(&mut state, &event).map_err(|e| Error::Arg(format!("events[{i}]: {e}")))?;
            let user = if hist.is_empty() {
                UserHistory::default()
            } else {
                UserHistory {
                    prior_sessions: hist[iu * 3].clamp(0, u32::MAX as i64) as u32,
                    prior_purchases: hist[iu * 3 + 1].clamp(0, u32::MAX as i64) as u32,
                    last_session_ms: hist[iu * 3 + 2],
                }
            };
            values[iu * f..(iu + 1) * f].copy_from_slice(&features::compute(&state, &user));
            env.with_local_frame(2, |env| -> JniResult<()> {
                let encoded = env.byte_array_from_slice(&state.encode_to_vec())?;
                env.set_object_array_element(&result, i, encoded)?;
                Ok(())
            })?;
        }
        env.set_double_array_region(&out, 0, &values)?;
        Ok(result.into_raw())
    })
}

/// `String[] featureSchema()`: the schema hash, then the feature names in order.
#[no_mangle]
pub extern "system" fn Java_dev_ecom_flink_nativelib_EcomNative_featureSchema<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
) -> jobjectArray {
    guarded(&mut env, "featureSchema", std::ptr::null_mut(), |env| {
        let arr = env.new_object_array(features::LEN as i32 + 1, "java/lang/String", JObject::null())?;
        let hash = env.new_string(features::schema_hash())?;
        env.set_object_array_element(&arr, 0, hash)?;
        for (i, name) in features::NAMES.iter().enumerate() {
            let s = env.new_string(name)?;
            env.set_object_array_element(&arr, i as i32 + 1, s)?;
        }
        Ok(arr.into_raw())
    })
}

/// `long[] dpReleaseWindowUtf8(byte[] streams, int[] streamEnds, long windowStartMs, long[] values, long[] uppers,
/// double[] epsilons, double budget, double[] spentOut)`: releases value i of one window with
/// discrete Laplace noise (uppers[i] = 0: a count; > 0: a sum of per-event values clamped to
/// [0, uppers[i]]) at epsilons[i], charging streams[i]'s budget for this window. spentOut[i]
/// gets the ε the release spent (OpenDP's privacy map). Nothing is released when any stream
/// would go over the budget (IllegalStateException).
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the JNI signature: one flat call per window
pub extern "system" fn Java_dev_ecom_flink_nativelib_EcomNative_dpReleaseWindowUtf8<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    streams: JByteArray<'l>,
    stream_ends: JIntArray<'l>,
    window_start_ms: jlong,
    values: JLongArray<'l>,
    uppers: JLongArray<'l>,
    epsilons: JDoubleArray<'l>,
    budget: jdouble,
    spent_out: JDoubleArray<'l>,
) -> jlongArray {
    guarded(&mut env, "dpReleaseWindow", std::ptr::null_mut(), |env| {
        if values.is_null() || uppers.is_null() || epsilons.is_null() || spent_out.is_null() {
            return Err(Error::Arg("no argument may be null".into()));
        }
        let packed = Packed::read(env, &streams, &stream_ends, "streams")?;
        let names = packed.strs("streams")?;
        let n = names.len() as jint;
        for (name, len) in [
            ("values", env.get_array_length(&values)?),
            ("uppers", env.get_array_length(&uppers)?),
            ("epsilons", env.get_array_length(&epsilons)?),
            ("spentOut", env.get_array_length(&spent_out)?),
        ] {
            if len != n {
                return Err(Error::Arg(format!("{name} has {len} entries, streams {n}")));
            }
        }
        let (mut v, mut u, mut eps) = (vec![0; n as usize], vec![0; n as usize], vec![0.0; n as usize]);
        env.get_long_array_region(&values, 0, &mut v)?;
        env.get_long_array_region(&uppers, 0, &mut u)?;
        env.get_double_array_region(&epsilons, 0, &mut eps)?;
        let mut accountant = Accountant::new(budget).map_err(|e| Error::Arg(e.to_string()))?;
        let mut mechanisms = Vec::with_capacity(n as usize);
        for i in 0..n as usize {
            let q = if u[i] == 0 { Quantity::Count } else { Quantity::BoundedSum { upper: u[i] } };
            let m = mechanism(q, eps[i]).map_err(|e| Error::Arg(format!("release {i}: {e}")))?;
            // Charge everything first: a window over budget releases nothing.
            accountant.charge(names[i], window_start_ms, m.epsilon()).map_err(|e| Error::Budget(e.to_string()))?;
            mechanisms.push(m);
        }
        let mut noisy = Vec::with_capacity(n as usize);
        let mut spent = Vec::with_capacity(n as usize);
        for (m, value) in mechanisms.iter().zip(&v) {
            noisy.push(m.release(*value).map_err(|e| Error::Arg(e.to_string()))?);
            spent.push(m.epsilon());
        }
        env.set_double_array_region(&spent_out, 0, &spent)?;
        let arr = env.new_long_array(n)?;
        env.set_long_array_region(&arr, 0, &noisy)?;
        Ok(arr.into_raw())
    })
}

/// `String version()`: the crate version of the native library.
#[no_mangle]
pub extern "system" fn Java_dev_ecom_flink_nativelib_EcomNative_version<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
) -> jstring {
    guarded(&mut env, "version", std::ptr::null_mut(), |env| {
        Ok(env.new_string(concat!("ecom-jni ", env!("CARGO_PKG_VERSION")))?.into_raw())
    })
}
