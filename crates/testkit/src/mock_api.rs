//! The project's fake third-party API (`mock-api`) on a free port, over plain HTTP or over HTTPS
//! with a certificate signed by an authority made for it, and what a client or a consumer needs
//! to reach it (the base URL, the authority to trust).
//!
//! The system tests and the benchmark both run consumers against it; what they vary is its
//! behaviour (`MOCK_DELAY_MS`, `MOCK_POLLS_UNTIL_DONE`, ...), given as environment variables.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{Value, json};

use crate::{Certificates, Process, Result, free_addr, started, try_get_ok_json};

/// A running `mock-api`; it stops when dropped.
pub struct MockApi {
    /// The process, to signal or kill it.
    pub process: Process,
    addr: SocketAddr,
    /// Its certificates when it serves HTTPS (clients trust their authority).
    tls: Option<Certificates>,
}

impl MockApi {
    /// Starts `program` (a `mock-api`) with `env` on a free port, over HTTPS when `https`, its
    /// log (stderr) going to `log` when given, and waits until it listens.
    ///
    /// # Errors
    /// When it cannot start, exits, or does not listen within 10 s.
    pub fn try_start(
        program: &Path,
        env: &[(&str, String)],
        https: bool,
        log: Option<&Path>,
    ) -> Result<Self> {
        let addr = free_addr();
        let tls = https.then(Certificates::generate);
        let mut vars = env.to_vec();
        vars.push(("MOCK_API_ADDR", addr.to_string()));
        if let Some(tls) = &tls {
            vars.push(("MOCK_TLS_CERT", tls.cert_file().display().to_string()));
            vars.push(("MOCK_TLS_KEY", tls.key_file().display().to_string()));
        }
        Ok(Self {
            process: Process::try_serve(program, addr, &vars, log)?,
            addr,
            tls,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://...` when it serves HTTPS.
    pub fn base(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The file of the authority that signed its certificate, when it serves HTTPS.
    pub fn ca_file(&self) -> Option<&Path> {
        self.tls.as_ref().map(Certificates::ca_file)
    }

    /// A client builder (see [`crate::http_client_builder`]) that trusts its certificate.
    ///
    /// # Errors
    /// When the authority's file cannot be read or parsed.
    pub fn client_builder(&self) -> Result<reqwest::ClientBuilder> {
        let builder = crate::http_client_builder();
        let Some(ca) = self.ca_file() else {
            return Ok(builder);
        };
        let pem = std::fs::read(ca)
            .map_err(|e| crate::Error(format!("reading {}: {e}", ca.display())))?;
        let certificate = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| crate::Error(format!("parsing {}: {e}", ca.display())))?;
        Ok(builder.add_root_certificate(certificate))
    }

    /// The variables that point a consumer at it: `API_URL`, and `API_CA_FILE` over HTTPS.
    pub fn consumer_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![("API_URL", format!("{}/", self.base()))];
        if let Some(ca) = self.ca_file() {
            vars.push(("API_CA_FILE", ca.display().to_string()));
        }
        vars
    }

    /// Its `GET /stats` (calls, throttled, jobs, ...), read with `client`.
    ///
    /// # Errors
    /// When it does not answer 200 with JSON.
    pub async fn try_stats(&self, client: &reqwest::Client) -> Result<Value> {
        try_get_ok_json(client, format!("{}/stats", self.base())).await
    }

    /// [`MockApi::try_stats`] for tests: panics with the reason.
    pub async fn stats(&self, client: &reqwest::Client) -> Value {
        started(self.try_stats(client).await)
    }
}

/// The profile (`QUEUES_FILE`'s `api`) of a queue that calls the mock at `base` as Replicate's
/// API (`MOCK_SHAPE=replicate`): submit a prediction, poll it until it succeeds, the API key in
/// the environment variable `key_var`.
pub fn replicate_profile(base: &str, key_var: &str) -> Value {
    json!({
        "base_url": base,
        "headers": {"Authorization": format!("Bearer ${{{key_var}}}")},
        "submit": {"path": "/v1/predictions", "body": {"version": "v1", "input": "{{payload}}"}, "id": "/id"},
        "poll": {"path": "/v1/predictions/{{id}}"},
        "status": {"pointer": "/status", "processing": ["starting", "processing"],
                   "done": ["succeeded"], "failed": ["failed", "canceled"]},
        "result": "/output",
        "error": "/error",
    })
}
