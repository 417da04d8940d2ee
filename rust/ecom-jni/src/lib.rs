//! JNI entry points of `dev.ecom.flink.nativelib.EcomNative`, thin wrappers over ecom-core.
//! Every entry point is batched (many records per call), catches panics, and turns every
//! error into a Java exception whose message says what was wrong: nothing unwinds into the JVM.
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![deny(unused_must_use)]

use ecom_core::lsh::{Lsh, DEFAULT_PARAMS};
use jni::objects::{JByteArray, JClass, JIntArray, JObject, JObjectArray, JString};
use jni::sys::{jint, jintArray, jlong, jlongArray, jobjectArray, jstring};
use jni::JNIEnv;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

type JniResult<T> = Result<T, Error>;

/// What went wrong inside a native call; becomes the Java exception.
enum Error {
    /// Bad arguments from Java: IllegalArgumentException.
    Arg(String),
    /// A JNI failure (may already have a pending Java exception).
    Jni(jni::errors::Error),
}

impl From<jni::errors::Error> for Error {
    fn from(e: jni::errors::Error) -> Self {
        Error::Jni(e)
    }
}

fn lsh() -> &'static Lsh {
    static LSH: OnceLock<Lsh> = OnceLock::new();
    LSH.get_or_init(|| Lsh::new(DEFAULT_PARAMS).expect("DEFAULT_PARAMS are valid"))
}

/// Runs `f`, converting errors and panics into a thrown Java exception and a null return.
fn guarded<'l, T>(env: &mut JNIEnv<'l>, what: &str, null: T, f: impl FnOnce(&mut JNIEnv<'l>) -> JniResult<T>) -> T {
    let outcome = catch_unwind(AssertUnwindSafe(|| f(env)));
    let (class, msg) = match outcome {
        Ok(Ok(v)) => return v,
        Ok(Err(Error::Arg(m))) => ("java/lang/IllegalArgumentException", format!("ecom-jni {what}: {m}")),
        Ok(Err(Error::Jni(jni::errors::Error::JavaException))) => return null, // already pending
        Ok(Err(Error::Jni(e))) => ("java/lang/RuntimeException", format!("ecom-jni {what}: JNI error: {e}")),
        Err(panic) => {
            let m = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            ("java/lang/RuntimeException", format!("ecom-jni {what}: internal error (panic): {m}"))
        }
    };
    if !env.exception_check().unwrap_or(true) {
        let _ = env.throw_new(class, msg);
    }
    null
}

/// `String[] validateBatch(byte[][] records, long nowMs)`: null for a valid record, else
/// "REJECT_REASON_X\tdetail".
#[no_mangle]
pub extern "system" fn Java_dev_ecom_flink_nativelib_EcomNative_validateBatch<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    records: JObjectArray<'l>,
    now_ms: jlong,
) -> jobjectArray {
    guarded(&mut env, "validateBatch", std::ptr::null_mut(), |env| {
        if records.is_null() {
            return Err(Error::Arg("records is null".into()));
        }
        let n = env.get_array_length(&records)?;
        let out = env.new_object_array(n, "java/lang/String", JObject::null())?;
        for i in 0..n {
            // A local frame per record keeps the local-reference table small for big batches.
            env.with_local_frame(4, |env| -> JniResult<()> {
                let item = env.get_object_array_element(&records, i)?;
                if item.is_null() {
                    return Err(Error::Arg(format!("records[{i}] is null")));
                }
                let bytes = env.convert_byte_array(JByteArray::from(item))?;
                if let Err(r) = ecom_core::validate_bytes(&bytes, now_ms) {
                    let s = env.new_string(format!("{}\t{}", r.reason.as_str_name(), r.detail))?;
                    env.set_object_array_element(&out, i, s)?;
                }
                Ok(())
            })?;
        }
        Ok(out.into_raw())
    })
}

/// `long[] lshBatch(String[] tokens, int[] offsets)`: for each of the n sets, num_perm
/// signature values followed by num_bands bucket hashes.
#[no_mangle]
pub extern "system" fn Java_dev_ecom_flink_nativelib_EcomNative_lshBatch<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    tokens: JObjectArray<'l>,
    offsets: JIntArray<'l>,
) -> jlongArray {
    guarded(&mut env, "lshBatch", std::ptr::null_mut(), |env| {
        if tokens.is_null() || offsets.is_null() {
            return Err(Error::Arg("tokens and offsets must not be null".into()));
        }
        let n_tokens = env.get_array_length(&tokens)?;
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
        let mut all = Vec::with_capacity(n_tokens as usize);
        for i in 0..n_tokens {
            let t = env.with_local_frame(2, |env| -> JniResult<String> {
                let obj = env.get_object_array_element(&tokens, i)?;
                if obj.is_null() {
                    return Err(Error::Arg(format!("tokens[{i}] is null")));
                }
                Ok(env.get_string(&JString::from(obj))?.into())
            })?;
            all.push(t);
        }
        let lsh = lsh();
        let p = lsh.params();
        let mut out: Vec<jlong> = Vec::with_capacity((n_off as usize - 1) * (p.num_perm + p.num_bands));
        for w in off.windows(2) {
            let sig = lsh.signature(&all[w[0] as usize..w[1] as usize]);
            let buckets = lsh.band_buckets(&sig);
            // Java has no unsigned long: the bits are carried as they are.
            out.extend(sig.iter().chain(buckets.iter()).map(|v| *v as jlong));
        }
        let arr = env.new_long_array(out.len() as i32)?;
        env.set_long_array_region(&arr, 0, &out)?;
        Ok(arr.into_raw())
    })
}

/// `int[] lshShape()`: {num_perm, num_bands}.
#[no_mangle]
pub extern "system" fn Java_dev_ecom_flink_nativelib_EcomNative_lshShape<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
) -> jintArray {
    guarded(&mut env, "lshShape", std::ptr::null_mut(), |env| {
        let p = lsh().params();
        let arr = env.new_int_array(2)?;
        env.set_int_array_region(&arr, 0, &[p.num_perm as jint, p.num_bands as jint])?;
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
