//! Kafka clients as every ecom command makes them: the bootstrap servers it was given, plus the
//! client properties of the file `$ECOM_KAFKA_PROPERTIES_FILE` names, so one file gives every
//! command (and every child it starts) TLS or SASL. The file holds librdkafka's properties,
//! one `key=value` per line (`#` starts a comment), e.g. `security.protocol=ssl`,
//! `ssl.ca.location=/etc/ecom/ca.pem`, `sasl.mechanism=SCRAM-SHA-512`, `sasl.username=…`,
//! `sasl.password=…`. Values are never printed.

use rdkafka::ClientConfig;
use std::sync::OnceLock;

/// The environment variable naming the properties file.
pub const PROPERTIES_ENV: &str = "ECOM_KAFKA_PROPERTIES_FILE";

/// Parses `key=value` lines; blank lines and `#` comments are skipped. `bootstrap.servers`
/// comes from each command's `--bootstrap-servers`, so the file may not set it.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("line {}: expected key=value", i + 1));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("line {}: empty key", i + 1));
        }
        if k == "bootstrap.servers" {
            return Err(format!("line {}: bootstrap.servers comes from --bootstrap-servers, not this file", i + 1));
        }
        out.push((k.to_string(), v.trim().to_string()));
    }
    Ok(out)
}

fn properties() -> anyhow::Result<&'static [(String, String)]> {
    static PROPS: OnceLock<Result<Vec<(String, String)>, String>> = OnceLock::new();
    let props = PROPS.get_or_init(|| match std::env::var_os(PROPERTIES_ENV) {
        None => Ok(Vec::new()),
        Some(f) => {
            let path = std::path::PathBuf::from(f);
            std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| parse(&t))
                .map_err(|e| format!("${PROPERTIES_ENV} ({}): {e}", path.display()))
        }
    });
    props.as_deref().map_err(|e| anyhow::anyhow!("{e}"))
}

/// A client configuration for `brokers` with the properties file's settings.
pub fn client(brokers: &str) -> anyhow::Result<ClientConfig> {
    let mut c = ClientConfig::new();
    for (k, v) in properties()? {
        c.set(k, v);
    }
    c.set("bootstrap.servers", brokers);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse_and_refuse_what_they_must() {
        let p = parse("# TLS\nsecurity.protocol = ssl\n\nssl.ca.location=/x/ca.pem\nsasl.password=a=b\n").unwrap();
        assert_eq!(
            p,
            vec![
                ("security.protocol".into(), "ssl".into()),
                ("ssl.ca.location".into(), "/x/ca.pem".into()),
                ("sasl.password".into(), "a=b".into())
            ]
        );
        assert!(parse("no equals sign").unwrap_err().contains("line 1"));
        assert!(parse("bootstrap.servers=x:1").unwrap_err().contains("--bootstrap-servers"));
    }
}
