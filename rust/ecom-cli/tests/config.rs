//! The configuration story through the real binary: a `--config` file's value and a renamed
//! flag's old variable both reach the flag (clap reads variables when flags are declared, so
//! this can only be seen end to end).
use std::process::Command;

fn generate(dir: &std::path::Path, config: Option<&std::path::Path>, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ecom"));
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(["generate", "--events", "200000", "--quiet", "--out"]).arg(dir);
    for v in ["ECOM_EVENTS", "ECOM_DURATION", "ECOM_DURATION_SECS", "ECOM_CONFIG"] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn a_config_file_and_a_renamed_variable_reach_their_flags() {
    let dir = std::env::temp_dir().join(format!("ecom-config-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ecom.toml");
    // --events is given on the command line (and wins), so the file sets another flag.
    std::fs::write(&file, "[generate]\nduration-secs = 0.0\n").unwrap();
    let out = generate(&dir.join("a"), Some(&file), &[]);
    assert!(out.contains("generated 0 records"), "{out}");

    let out = generate(&dir.join("b"), None, &[("ECOM_DURATION", "0.0")]);
    assert!(out.contains("generated 0 records"), "{out}");
    assert!(out.contains("$ECOM_DURATION is the old name of $ECOM_DURATION_SECS"), "{out}");

    let out = generate(&dir.join("c"), None, &[]);
    assert!(out.contains("generated 200000 records"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
