//! Strings packed as one UTF-8 byte buffer and the end offset of each: how the Flink job hands a
//! batch of strings over JNI in one copy instead of several JNI calls per string. Also what a
//! caught panic says, for the JNI libraries' exceptions.

/// The message of a panic caught with `catch_unwind` ("unknown panic" when it is not a string).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The strings of `bytes` ending at `ends`, each checked to be UTF-8. `ends` must not decrease
/// nor pass the bytes; the error names `name` and what is wrong.
pub fn split<'a>(bytes: &'a [u8], ends: &[i32], name: &str) -> Result<Vec<&'a str>, String> {
    if ends.first().is_some_and(|&e| e < 0)
        || ends.windows(2).any(|w| w[1] < w[0])
        || ends.last().is_some_and(|&e| e as usize > bytes.len())
    {
        return Err(format!("{name}: string ends must not decrease or pass the bytes"));
    }
    let mut start = 0;
    ends.iter()
        .enumerate()
        .map(|(i, &end)| {
            let s =
                std::str::from_utf8(&bytes[start..end as usize]).map_err(|e| format!("{name}[{i}] is not UTF-8: {e}"));
            start = end as usize;
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_refuses_bad_ends_and_bytes() {
        assert_eq!(split(b"abcde", &[2, 2, 5], "t").unwrap(), vec!["ab", "", "cde"]);
        assert_eq!(split(b"", &[], "t").unwrap(), Vec::<&str>::new());
        assert!(split(b"abc", &[2, 1], "t").unwrap_err().contains("must not decrease"));
        assert!(split(b"abc", &[4], "t").unwrap_err().contains("pass the bytes"));
        assert!(split(b"abc", &[-1, 2], "t").is_err());
        assert!(split(b"a\xffc", &[1, 3], "t").unwrap_err().starts_with("t[1] is not UTF-8"));
    }
}
