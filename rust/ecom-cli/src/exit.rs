//! The exit codes a script can act on (README.md, docs/OPERATIONS.md "Exit codes"):
//! 0 success; 1 any other failure; 2 a bad flag or configuration (clap's own usage errors
//! exit 2 too); 3 a dependency (Kafka, Redis, Elasticsearch, MongoDB, Flink, serve) did not
//! answer; 4 the data did not reconcile (records lost, duplicated or not in every store).
use std::fmt;

/// A bad flag or configuration.
pub(crate) const CONFIG: u8 = 2;
/// A dependency did not answer.
pub(crate) const UNREACHABLE: u8 = 3;
/// The data did not reconcile.
pub(crate) const UNRECONCILED: u8 = 4;

/// An error that chooses the command's exit code.
#[derive(Debug)]
pub(crate) struct Exit {
    code: u8,
    message: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// The data did not reconcile: exit code 4.
pub(crate) fn unreconciled(message: impl Into<String>) -> anyhow::Error {
    Exit { code: UNRECONCILED, message: message.into() }.into()
}

/// A dependency did not answer: exit code 3.
pub(crate) fn unreachable(message: impl Into<String>) -> anyhow::Error {
    Exit { code: UNREACHABLE, message: message.into() }.into()
}

/// A bad flag or configuration: exit code 2.
pub(crate) fn config(message: impl Into<String>) -> anyhow::Error {
    Exit { code: CONFIG, message: message.into() }.into()
}

/// The exit code for `err`: its [`Exit`]'s, else 3 when its cause is a connection to a
/// dependency that failed or timed out, else 1.
pub(crate) fn code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Exit>() {
            return e.code;
        }
        if let Some(e) = cause.downcast_ref::<reqwest::Error>() {
            if e.is_connect() || e.is_timeout() {
                return UNREACHABLE;
            }
        }
        if let Some(e) = cause.downcast_ref::<mongodb::error::Error>() {
            if matches!(*e.kind, mongodb::error::ErrorKind::ServerSelection { .. }) {
                return UNREACHABLE;
            }
        }
        if let Some(e) = cause.downcast_ref::<redis::RedisError>() {
            if e.is_connection_refusal() || e.is_timeout() || e.is_io_error() {
                return UNREACHABLE;
            }
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            if matches!(e.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut) {
                return UNREACHABLE;
            }
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_code() {
        assert_eq!(code(&unreconciled("lost 3").context("the demo")), UNRECONCILED);
        assert_eq!(code(&config("--rate 0")), CONFIG);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(code(&anyhow::Error::from(refused).context("reaching Redis")), UNREACHABLE);
        assert_eq!(code(&anyhow::anyhow!("anything else")), 1);
    }

    #[tokio::test]
    async fn a_server_that_does_not_listen_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let e = reqwest::get(format!("http://127.0.0.1:{port}/")).await.unwrap_err();
        assert_eq!(code(&anyhow::Error::from(e).context("asking Flink")), UNREACHABLE);
    }
}
