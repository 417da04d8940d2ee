//! One configuration story for every command: each flag can also come from an environment
//! variable and from a TOML file, with a flag winning over the environment, the environment
//! over the file, and the file over the flag's default.
//!
//! - Every flag without an environment variable of its own gets `ECOM_<FLAG>` (`--max-batch`:
//!   `ECOM_MAX_BATCH`); the few that keep the names the wider ecosystem uses (`KAFKA_BOOTSTRAP`,
//!   `ES_URL`, `REDIS_URL`, `MONGODB_URL`, `FLINK_REST`, ...) say so in `--help`.
//! - `--config FILE` (or `$ECOM_CONFIG`) names a TOML file with a table per command, keys as the
//!   flags are spelled: `[serve]` `max-batch = 500`, `[bench.e2e]` `rates = [500, 1000]`. A value
//!   from the file is handed to the flag through its environment variable, unless that is set,
//!   so the precedence holds. A key no flag of that command has is an error naming it.
use anyhow::{bail, Context};
use clap::{Arg, ArgAction, Command};
use std::ffi::OsString;
use std::path::PathBuf;

/// The environment variable naming the configuration file.
pub(crate) const CONFIG_ENV: &str = "ECOM_CONFIG";

/// The environment variable a flag without one of its own gets.
fn env_name(long: &str) -> String {
    format!("ECOM_{}", long.to_uppercase().replace('-', "_"))
}

/// Whether `a` is a flag that takes a value or is a switch (not a positional, not help/version).
fn configurable(a: &Arg) -> bool {
    a.get_long().is_some()
        && !matches!(a.get_action(), ArgAction::Help | ArgAction::HelpShort | ArgAction::Version)
        && !a.is_positional()
}

/// `cmd` and every subcommand with `ECOM_<FLAG>` on each flag that has no environment variable.
pub(crate) fn with_env(cmd: Command) -> Command {
    let cmd = cmd.mut_args(|a| {
        if configurable(&a) && a.get_env().is_none() {
            let env = env_name(a.get_long().expect("configurable flags are long"));
            a.env(env)
        } else {
            a
        }
    });
    let names: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_string()).collect();
    names.into_iter().fold(cmd, |cmd, n| cmd.mut_subcommand(n, with_env))
}

/// The old names' variables of renamed flags: `ECOM_<ALIAS>` set while `ECOM_<FLAG>` is not
/// (`$ECOM_BATCH_MAX` for `--batch-size`, whose alias is `--batch-max`), anywhere in `cmd`, as
/// (the flag's variable, the value, the old variable): what the caller sets, with a warning.
pub(crate) fn renamed_env(cmd: &Command) -> Vec<(String, OsString, String)> {
    let mut out = Vec::new();
    for a in cmd.get_arguments().filter(|a| configurable(a)) {
        let (Some(long), Some(env)) = (a.get_long(), a.get_env()) else { continue };
        if env != env_name(long).as_str() || std::env::var_os(env).is_some() {
            continue;
        }
        for alias in a.get_all_aliases().unwrap_or_default() {
            let old = env_name(alias);
            if let Some(v) = std::env::var_os(&old) {
                out.push((env.to_string_lossy().into_owned(), v, old));
                break;
            }
        }
    }
    for sub in cmd.get_subcommands() {
        out.extend(renamed_env(sub));
    }
    out.sort();
    out.dedup();
    out
}

/// The file `--config` or `$ECOM_CONFIG` names, if any.
fn config_file(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os(CONFIG_ENV).map(PathBuf::from)
}

/// The subcommand path `args` invoke (`["bench", "e2e"]`), by `cmd`'s own subcommands.
fn invoked(cmd: &Command, args: &[OsString]) -> Vec<String> {
    let mut path = Vec::new();
    let mut cur = cmd;
    for a in args.iter().skip(1) {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if let Some(sub) = cur.find_subcommand(a.as_ref()) {
            path.push(sub.get_name().to_string());
            cur = sub;
        }
    }
    path
}

/// A TOML value as the flag's text: arrays join with commas (the list flags' delimiter).
fn text(v: &toml::Value) -> anyhow::Result<String> {
    Ok(match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(a) => a.iter().map(text).collect::<anyhow::Result<Vec<_>>>()?.join(","),
        other => bail!("{other} is not a string, number, boolean or list"),
    })
}

/// The (environment variable, value) pairs the configuration file gives the invoked command,
/// for the variables not set already. Errors name the file, the table and the key.
pub(crate) fn from_file(cmd: &Command, args: &[OsString]) -> anyhow::Result<Vec<(String, String)>> {
    let Some(file) = config_file(args) else { return Ok(Vec::new()) };
    let body = std::fs::read_to_string(&file)
        .with_context(|| format!("reading the configuration file {}", file.display()))
        .map_err(|e| crate::exit::config(format!("{e:#}")))?;
    let table: toml::Table =
        body.parse().map_err(|e| crate::exit::config(format!("{}: not valid TOML: {e}", file.display())))?;
    let path = invoked(cmd, args);
    let Some(sub) = path.iter().try_fold(cmd, |c, n| c.find_subcommand(n)) else { return Ok(Vec::new()) };
    let mut section: Option<&toml::Table> = Some(&table);
    for n in &path {
        section = section.and_then(|t| t.get(n)).and_then(toml::Value::as_table);
    }
    let Some(section) = section else { return Ok(Vec::new()) };
    let name = path.join(".");
    let mut out = Vec::new();
    for (key, value) in section {
        if value.is_table() {
            continue; // a nested command's table, e.g. [bench.e2e] inside [bench]
        }
        // A key is a flag's name or one of its aliases (`brokers` for `bootstrap-servers`).
        let named = |a: &&Arg| {
            a.get_long() == Some(key.as_str()) || a.get_all_aliases().is_some_and(|al| al.contains(&key.as_str()))
        };
        let Some(arg) = sub.get_arguments().find(|a| configurable(a) && named(a)) else {
            return Err(crate::exit::config(format!(
                "{}: [{name}] {key}: `ecom {}` has no --{key}",
                file.display(),
                path.join(" ")
            )));
        };
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned()).unwrap_or_else(|| env_name(key));
        if std::env::var_os(&env).is_none() {
            let v =
                text(value).map_err(|e| crate::exit::config(format!("{}: [{name}] {key}: {e:#}", file.display())))?;
            out.push((env, v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn every_flag_of_every_command_has_an_environment_variable() {
        let cmd = with_env(crate::Cli::command());
        fn walk(c: &Command, path: &str) {
            for a in c.get_arguments().filter(|a| configurable(a)) {
                assert!(a.get_env().is_some(), "{path} --{} has no environment variable", a.get_long().unwrap());
            }
            for s in c.get_subcommands() {
                walk(s, &format!("{path} {}", s.get_name()));
            }
        }
        walk(&cmd, "ecom");
        let serve = cmd.find_subcommand("serve").unwrap();
        let max_batch = serve.get_arguments().find(|a| a.get_long() == Some("max-batch")).unwrap();
        assert_eq!(max_batch.get_env().unwrap(), "ECOM_MAX_BATCH");
    }

    #[test]
    fn a_renamed_flags_old_variable_still_counts() {
        let cmd = with_env(crate::Cli::command());
        // Unique to this test: no other test reads ECOM_DURATION or ECOM_DURATION_SECS.
        std::env::set_var("ECOM_DURATION", "7");
        let got = renamed_env(&cmd);
        std::env::remove_var("ECOM_DURATION");
        assert_eq!(got, vec![("ECOM_DURATION_SECS".to_string(), OsString::from("7"), "ECOM_DURATION".to_string())]);
    }

    #[test]
    fn kafka_is_named_as_the_job_and_kafka_name_it_everywhere() {
        fn walk(c: &Command, path: &str, found: &mut usize) {
            for a in c.get_arguments() {
                assert_ne!(a.get_long(), Some("brokers"), "{path}: --brokers is an alias of --bootstrap-servers");
                if a.get_long() == Some("bootstrap-servers") {
                    assert_eq!(a.get_env().unwrap(), "KAFKA_BOOTSTRAP", "{path}");
                    assert!(a.get_all_aliases().unwrap_or_default().contains(&"brokers"), "{path}");
                    *found += 1;
                }
            }
            for s in c.get_subcommands() {
                walk(s, &format!("{path} {}", s.get_name()), found);
            }
        }
        let mut found = 0;
        walk(&with_env(crate::Cli::command()), "ecom", &mut found);
        assert!(found >= 7, "{found}");
    }

    #[test]
    fn the_file_fills_what_neither_flag_nor_environment_gives_and_refuses_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("ecom-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ecom.toml");
        std::fs::write(&file, "[bench.e2e]\nrates = [500, 1000]\nscale-out = true\n[serve]\nreload-ms = 250\n")
            .unwrap();
        let cmd = with_env(crate::Cli::command());
        let f = file.to_str().unwrap();
        let got = from_file(&cmd, &args(&["ecom", "--config", f, "bench", "e2e"])).unwrap();
        assert!(got.contains(&("ECOM_RATES".into(), "500,1000".into())), "{got:?}");
        assert!(got.contains(&("ECOM_SCALE_OUT".into(), "true".into())), "{got:?}");
        let got = from_file(&cmd, &args(&["ecom", "serve", &format!("--config={f}")])).unwrap();
        assert_eq!(got, vec![("ECOM_RELOAD_MS".to_string(), "250".to_string())]);

        std::fs::write(&file, "[sink]\nbrokers = \"k:9092\"\n").unwrap();
        // The alias is a key too; the environment (dev/env.sh sets it) still wins over the file.
        let got = from_file(&cmd, &args(&["ecom", "sink", "--config", f])).unwrap();
        if std::env::var_os("KAFKA_BOOTSTRAP").is_some() {
            assert_eq!(got, vec![]);
        } else {
            assert_eq!(got, vec![("KAFKA_BOOTSTRAP".to_string(), "k:9092".to_string())]);
        }

        std::fs::write(&file, "[serve]\nno-such-flag = 1\n").unwrap();
        let err = from_file(&cmd, &args(&["ecom", "serve", "--config", f])).unwrap_err();
        assert_eq!(crate::exit::code(&err), crate::exit::CONFIG);
        assert!(err.to_string().contains("[serve] no-such-flag"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
