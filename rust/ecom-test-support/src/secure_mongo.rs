//! A FerretDB that checks passwords (SCRAM) and listens with TLS, with dev/up's development
//! certificates ($ECOM_HOME/tls).
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A running `ecom-ferretdb --auth --listen-tls`; stopped on drop (and its files removed when
/// they were its own).
pub struct SecureMongo {
    child: std::process::Child,
    port: u16,
    auth_db: String,
    own_dir: Option<PathBuf>,
}

impl SecureMongo {
    pub const USER: &'static str = "ecom-test";

    /// Starts one with files of its own in a new directory under the system's temporary one.
    pub fn start(password: &str) -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("ecom-secure-mongo-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server =
            Self::start_on(password, &dir.join("data"), &format!("127.0.0.1:{free}"), "admin", &dir.join("log"));
        server.own_dir = Some(dir);
        server
    }

    /// Starts one on `data_dir` (another FerretDB's files, when that one is stopped), plaintext
    /// on `plain` and TLS on a free port, the user made in `auth_db` (its authSource) unless that
    /// database exists, its log appended to `log`.
    pub fn start_on(password: &str, data_dir: &Path, plain: &str, auth_db: &str, log: &Path) -> Self {
        let bin = std::env::var("FERRETDB_BIN").expect("FERRETDB_BIN (run through dev/test)");
        let tls = PathBuf::from(std::env::var("ECOM_HOME").expect("ECOM_HOME")).join("tls");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Outside the data (an audit of it must not find it) and gone once the server has read
        // it at start.
        let pw = std::env::temp_dir().join(format!("ecom-secure-mongo-{}-{port}.pw", std::process::id()));
        std::fs::write(&pw, password).unwrap();
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = std::process::Command::new(bin)
            .args(["--listen", plain, "--listen-tls", &format!("127.0.0.1:{port}")])
            .arg("--tls-cert")
            .arg(tls.join("server.pem"))
            .arg("--tls-key")
            .arg(tls.join("server.key"))
            .args(["--auth", "--setup-user", Self::USER, "--setup-database", auth_db, "--setup-password-file"])
            .arg(&pw)
            .arg("--data-dir")
            .arg(data_dir)
            .stderr(log_file)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{}", std::fs::read_to_string(log).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(100));
        }
        std::fs::remove_file(&pw).unwrap();
        Self { child, port, auth_db: auth_db.to_string(), own_dir: None }
    }

    /// `mongodb://USER@127.0.0.1:PORT/?tls=true…` with `password` beside it and the
    /// development CA trusted unless `trust_ca` is false.
    pub fn url(&self, password: Option<&str>, trust_ca: bool) -> ecom_core::secret::SecretUrl {
        let ca = PathBuf::from(std::env::var("ECOM_HOME").unwrap()).join("tls/ca.pem");
        let trust = if trust_ca { format!("&tlsCAFile={}", ca.display()) } else { String::new() };
        let url =
            format!("mongodb://{}@127.0.0.1:{}/?tls=true&authSource={}{trust}", Self::USER, self.port, self.auth_db);
        ecom_core::secret::SecretUrl::new(&url, password)
    }
}

impl Drop for SecureMongo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.own_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
