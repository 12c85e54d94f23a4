//! Throw-away TLS material: a certificate authority and one certificate for 127.0.0.1 (and
//! `localhost`) that it signed, for a server a test starts: a single Redis, every node of a
//! cluster (the nodes also present it to each other on the cluster bus), or the mock API over
//! HTTPS.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::fresh_dir;

/// The files, in their own folder, removed when dropped.
pub struct Certificates {
    dir: PathBuf,
    ca: PathBuf,
}

impl Certificates {
    /// Makes a new authority and a certificate for `IP:127.0.0.1` and `DNS:localhost` with
    /// `openssl`, valid two days.
    pub fn generate() -> Self {
        let dir = fresh_dir();
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run openssl");
            assert!(status.success(), "openssl {args:?}");
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let ca = ["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"];
        openssl(
            &[
                &["req", "-x509"],
                &ec[..],
                &ca,
                &["-subj", "/CN=taskq-test-ca"],
            ]
            .concat(),
        );
        let csr = ["-keyout", "server.key", "-out", "server.csr"];
        openssl(&[&["req"], &ec[..], &csr, &["-subj", "/CN=127.0.0.1"]].concat());
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write san.ext");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        Self {
            ca: dir.join("ca.crt"),
            dir,
        }
    }

    /// The authority's certificate, which clients trust.
    pub fn ca_file(&self) -> &Path {
        &self.ca
    }

    /// The server's certificate (PEM).
    pub fn cert_file(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    /// The server's private key (PEM).
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// The `redis-server` arguments that make it speak only TLS, on `port`.
    pub(crate) fn server_args(&self, port: u16) -> Vec<String> {
        let file = |name: &str| self.dir.join(name).display().to_string();
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &file("server.crt"),
            "--tls-key-file",
            &file("server.key"),
            "--tls-ca-cert-file",
            &file("ca.crt"),
            "--tls-auth-clients",
            "no",
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
