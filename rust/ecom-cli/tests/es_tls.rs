//! Elasticsearch over https with a private CA. The local Elasticsearch (the integ-test build)
//! has no TLS, so a TLS terminator with dev/certs' server certificate stands in front of it, as
//! a proxy or ingress would: the client speaks real TLS to it and real HTTP to Elasticsearch.
//! `SSL_CERT_FILE` (OpenSSL's convention, read by rustls-native-certs) makes every
//! Elasticsearch client trust the private CA; without it the certificate is refused.
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{crypto::ring, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Accepts TLS on a free port and relays each connection to the local Elasticsearch.
async fn tls_terminator(tls: &Path) -> u16 {
    let certs = CertificateDer::pem_file_iter(tls.join("server.pem")).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(tls.join("server.key")).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A refused handshake (the untrusting client) ends here, which is the point.
                let Ok(mut tls) = acceptor.accept(conn).await else { return };
                let Ok(mut es) = TcpStream::connect("127.0.0.1:9200").await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut es).await;
            });
        }
    });
    port
}

fn retention_dry_run(es_url: &str, ca: Option<&Path>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ecom"));
    cmd.args(["retention", "--keep-days", "36500", "--dry-run", "--es-url", es_url]);
    cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    if let Some(ca) = ca {
        cmd.env("SSL_CERT_FILE", ca);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack (dev/up)"]
async fn an_https_elasticsearch_with_a_private_ca_is_used_with_ssl_cert_file_and_refused_without() {
    let home = std::env::var("ECOM_HOME").expect("run through dev/test (ECOM_HOME)");
    let tls = Path::new(&home).join("tls");
    let port = tls_terminator(&tls).await;
    let url = format!("https://127.0.0.1:{port}");

    let trusted = tokio::task::spawn_blocking({
        let (url, ca) = (url.clone(), tls.join("ca.pem"));
        move || retention_dry_run(&url, Some(&ca))
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&trusted.stdout);
    assert!(
        trusted.status.success() && out.contains("Elasticsearch: would remove"),
        "with the CA: {out}\n{}",
        String::from_utf8_lossy(&trusted.stderr)
    );

    let untrusted = tokio::task::spawn_blocking(move || retention_dry_run(&url, None)).await.unwrap();
    let err = String::from_utf8_lossy(&untrusted.stderr).to_lowercase();
    assert!(
        !untrusted.status.success() && err.contains("unknownissuer") && err.contains("set ssl_cert_file"),
        "without the CA: {err}"
    );
}
