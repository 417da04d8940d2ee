//! The JNI string packing (ecom-core's `packed::split`, what ecom-jni unpacks the job's token
//! and stream-name batches with). Input: one byte n (how many ends, at most 63), n little-endian
//! i32 ends, then the bytes. Invariants: nothing panics; accepted, the strings are n and, joined,
//! are the bytes up to the last end.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let n = usize::from(n % 64);
    if rest.len() < n * 4 {
        return;
    }
    let (ends, bytes) = rest.split_at(n * 4);
    let ends: Vec<i32> = ends.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if let Ok(strs) = ecom_core::packed::split(bytes, &ends, "fuzz") {
        assert_eq!(strs.len(), n);
        let used = ends.last().map_or(0, |&e| e as usize);
        assert_eq!(strs.concat().as_bytes(), &bytes[..used]);
    }
});
