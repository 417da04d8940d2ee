//! ecom serve's transport security against real clients over loopback: mutual TLS refuses a
//! plaintext client, a client without a certificate and one whose certificate another CA
//! signed; the bearer token refuses a call without it or with a wrong one; health stays open.
mod common;

use common::{certs, free_addr, redis_url, Running};
use ecom_core::secret::{Secret, SecretUrl};
use ecom_proto::v1::guard_client::GuardClient;
use ecom_proto::v1::{GuardRequest, Verdict};
use std::path::Path;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

fn pem(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

fn tls_endpoint(addr: std::net::SocketAddr, ca: &Path, client: Option<&Path>) -> Endpoint {
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem(ca, "ca.pem"))).domain_name("localhost");
    if let Some(c) = client {
        tls = tls.identity(Identity::from_pem(pem(c, "client.pem"), pem(c, "client.key")));
    }
    Endpoint::from_shared(format!("https://{addr}")).unwrap().tls_config(tls).unwrap()
}

fn req() -> GuardRequest {
    GuardRequest {
        event_id: "tls-1".into(),
        ip: "198.51.100.77".into(),
        user_id: "u-tls".into(),
        session_id: "s-tls".into(),
        kind: 1,
        event_time_ms: 1_700_000_000_000,
        ..Default::default()
    }
}

async fn check(channel: tonic::transport::Channel, token: Option<&str>) -> Result<i32, tonic::Status> {
    let mut r = tonic::Request::new(req());
    if let Some(t) = token {
        r.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    GuardClient::new(channel).check(r).await.map(|a| a.into_inner().verdict)
}

#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn mutual_tls_and_the_bearer_token_refuse_whoever_lacks_them() {
    let ours = certs("tls-ours");
    let theirs = certs("tls-theirs");
    let addr = free_addr();
    let cfg = ecom_serve::ServeConfig {
        grpc_addr: addr,
        http_addr: free_addr(),
        redis_url: SecretUrl::new(&redis_url(), None),
        tls: Some(ecom_serve::TlsConfig {
            cert_pem: pem(&ours, "server.pem"),
            key_pem: pem(&ours, "server.key"),
            client_ca_pem: Some(pem(&ours, "ca.pem")),
        }),
        token: Some(Secret::new("the-right-token")),
        ..Default::default()
    };
    let serve = Running::start_with(cfg, tls_endpoint(addr, &ours, Some(&ours))).await;

    // A plaintext client never gets an answer.
    let plain = Endpoint::from_shared(format!("http://{addr}")).unwrap();
    let refused = match plain.connect().await {
        Err(_) => true,
        Ok(ch) => check(ch, Some("the-right-token")).await.is_err(),
    };
    assert!(refused, "a plaintext client was answered by an mTLS serve");

    // TLS without a client certificate, or with one another CA signed: refused in the handshake.
    for client in [None, Some(theirs.as_path())] {
        let refused = match tls_endpoint(addr, &ours, client).connect().await {
            Err(_) => true,
            Ok(ch) => check(ch, Some("the-right-token")).await.is_err(),
        };
        assert!(refused, "a client with certificate {client:?} was answered by an mTLS serve");
    }

    // The right certificate: no token or a wrong one is UNAUTHENTICATED, the right one answers.
    let channel = serve.channel.clone();
    let none = check(channel.clone(), None).await.unwrap_err();
    assert_eq!(none.code(), tonic::Code::Unauthenticated, "{none:?}");
    assert!(none.message().contains("bearer token"), "{}", none.message());
    let wrong = check(channel.clone(), Some("the-wrong-token")).await.unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated, "{wrong:?}");
    assert!(!wrong.message().contains("the-right-token"), "the error names the token: {}", wrong.message());
    let verdict = check(channel.clone(), Some("the-right-token")).await.unwrap();
    assert_ne!(verdict, Verdict::Unspecified as i32);

    // Health answers without a token (probes carry none).
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let h = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(h.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    serve.stop().await;
}

/// Guard against the local stack's TLS Redis (dev/up: 127.0.0.1:6380, dev/certs' CA), through
/// the client serve makes (`redis_client`); one serve per test process, so the guard alone.
#[tokio::test]
#[ignore = "needs the local stack (dev/up)"]
async fn guard_reaches_redis_over_tls_with_the_ca_and_falls_back_without_it() {
    let home = std::env::var("ECOM_HOME").expect("run through dev/test (ECOM_HOME)");
    let ca = std::fs::read(format!("{home}/tls/ca.pem")).expect("dev/up makes $ECOM_HOME/tls");
    let url = SecretUrl::new("rediss://127.0.0.1:6380", None);
    let mut fallbacks = Vec::new();
    for ca_pem in [Some(ca.as_slice()), None] {
        let client = ecom_serve::redis_client(&url, ca_pem).unwrap();
        let cfg = ecom_serve::guard::GuardConfig {
            redis_timeout: std::time::Duration::from_millis(500),
            ..Default::default()
        };
        let guard = ecom_serve::guard::Guard::with_client(client, cfg, 10).unwrap();
        fallbacks.push(guard.check_each(vec![req()]).await[0].fallback);
    }
    // With the CA the guard's state is in Redis; without it the certificate is not trusted and
    // the answer is the fallback.
    assert_eq!(fallbacks, vec![false, true]);
}
