//! Throw-away key material, made by `openssl`: a certificate authority and one certificate for
//! 127.0.0.1 (and `localhost`) that it signed, for a server a test starts (a single Redis, every
//! node of a cluster, which also present it to each other on the cluster bus, or the mock API
//! over HTTPS); and an RSA key as a Google service-account key file holds one, for the tests of
//! the JWT bearer grant.

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
        let openssl = |args: &[&str]| openssl(&dir, args);
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

/// Runs `openssl` with `args` in `dir`; answers its standard output. Panics unless it succeeds.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(output.status.success(), "openssl {args:?}");
    output.stdout
}

/// A throw-away 2048-bit RSA key in its own folder, removed when dropped: `private.pem`
/// (PKCS#8, as Google's key files hold it) and `public.pem` (its public half, SubjectPublicKeyInfo).
pub struct RsaKey {
    dir: PathBuf,
}

impl RsaKey {
    /// Makes a new key with `openssl`.
    pub fn generate() -> Self {
        let dir = fresh_dir();
        let genpkey = [
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ];
        openssl(&dir, &[&genpkey[..], &["-out", "private.pem"]].concat());
        openssl(
            &dir,
            &[
                "pkey",
                "-in",
                "private.pem",
                "-pubout",
                "-out",
                "public.pem",
            ],
        );
        Self { dir }
    }

    /// The private key (PKCS#8 PEM).
    pub fn private_pem(&self) -> PathBuf {
        self.dir.join("private.pem")
    }

    /// The public key (SubjectPublicKeyInfo PEM).
    pub fn public_pem(&self) -> PathBuf {
        self.dir.join("public.pem")
    }

    /// The public key as PKCS#1 `RSAPublicKey` DER (what `ring` verifies RSA signatures with).
    pub fn public_pkcs1_der(&self) -> Vec<u8> {
        let args = [
            "rsa",
            "-in",
            "private.pem",
            "-RSAPublicKey_out",
            "-outform",
            "DER",
        ];
        openssl(&self.dir, &args)
    }

    /// Writes a Google service-account key file for this key beside it, as Google issues one
    /// (`type`, `client_email`, `private_key`, `token_uri`), and answers its path.
    pub fn service_account_file(&self, client_email: &str, token_uri: &str) -> PathBuf {
        let private_key = std::fs::read_to_string(self.private_pem()).expect("read the key");
        let account = serde_json::json!({
            "type": "service_account",
            "client_email": client_email,
            "private_key": private_key,
            "token_uri": token_uri,
        });
        let file = self.dir.join("service-account.json");
        std::fs::write(&file, account.to_string()).expect("write the key file");
        file
    }
}

impl Drop for RsaKey {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
