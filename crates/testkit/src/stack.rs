//! The system the tests and the benchmark run: the mock third-party API, a producer of one
//! queue, and the consumers started on them, every binary pointed at the same Redis (or
//! cluster) and queue. Each is a real binary configured as a deployment configures it, by
//! environment variables: the stack's own (Redis and the queue), then each process' on top.
//!
//! The stack holds the mock, the producer and the consumers added to it, and stops them in the
//! order a deployment does (consumers first, so that they drain); a consumer a scenario kills,
//! restarts or outnumbers is handed to it instead ([`Stack::try_consumer`]).

use std::net::SocketAddr;

use crate::{Binaries, MockApi, Process, Result, free_addr, started};

/// How to start a [`Stack`].
#[derive(Debug, Clone)]
pub struct StackSettings<'a> {
    /// Where the binaries are and where their logs go.
    pub binaries: Binaries,
    /// The prefix of its processes' log labels (`<label>-mock-api`, `<label>-producer`).
    pub label: &'a str,
    /// What every binary of the stack gets: `REDIS_URL`, `QUEUE_NAME`, and any other setting
    /// they share.
    pub env: Vec<(&'a str, String)>,
    /// The mock's settings (`MOCK_*`).
    pub mock: Vec<(&'a str, String)>,
    /// Whether the mock serves HTTPS (a certificate signed by an authority made for it, which
    /// the consumers are given).
    pub https: bool,
    /// The producer's own settings, on top of `env`.
    pub producer: Vec<(&'a str, String)>,
}

/// A running mock-api and producer of one queue, each killed when dropped.
pub struct Stack {
    /// The mock API the consumers call.
    pub mock: MockApi,
    /// The producer.
    pub producer: Process,
    /// Where the producer serves.
    pub producer_addr: SocketAddr,
    /// The consumers added with [`Stack::try_add_consumer`].
    pub consumers: Vec<Process>,
    /// What every binary of the stack gets.
    env: Vec<(String, String)>,
    binaries: Binaries,
    /// The prefix of its processes' log labels.
    label: String,
}

impl Stack {
    /// Starts the mock, then a producer on a free port, as `settings` says, and waits until
    /// both listen.
    ///
    /// # Errors
    /// When either cannot start or does not listen in time.
    pub fn try_start(settings: StackSettings<'_>) -> Result<Self> {
        let StackSettings {
            binaries,
            label,
            env,
            mock,
            https,
            producer,
        } = settings;
        let mock = binaries.try_mock_api(&mock, https, &format!("{label}-mock-api"))?;
        let env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let producer_addr = free_addr();
        let producer = serve_producer(&binaries, &env, label, producer_addr, &producer)?;
        Ok(Self {
            mock,
            producer,
            producer_addr,
            consumers: Vec::new(),
            env,
            binaries,
            label: label.to_owned(),
        })
    }

    /// [`Stack::try_start`] for tests: panics with the reason.
    pub fn start(settings: StackSettings<'_>) -> Self {
        started(Self::try_start(settings))
    }

    /// Starts another producer of the stack's queue on `addr` with `env` on top of the stack's
    /// variables, and waits until it listens.
    ///
    /// # Errors
    /// When it cannot start or does not listen in time.
    pub fn try_producer(&self, addr: SocketAddr, env: &[(&str, String)]) -> Result<Process> {
        serve_producer(&self.binaries, &self.env, &self.label, addr, env)
    }

    /// Kills the producer (SIGKILL) and starts a new one on its address with `env` on top of the
    /// stack's variables.
    ///
    /// # Errors
    /// When the new one cannot start or does not listen in time.
    pub fn try_restart_producer(&mut self, env: &[(&str, String)]) -> Result<()> {
        self.producer.kill();
        self.producer = self.try_producer(self.producer_addr, env)?;
        Ok(())
    }

    /// The variables a consumer of the stack gets: the stack's, the mock's (`API_URL`, and the
    /// authority to trust over HTTPS), any free port for `/metrics` (so that consumers run side
    /// by side), then `env` on top.
    pub fn consumer_env<'a>(&'a self, env: &[(&'a str, String)]) -> Vec<(&'a str, String)> {
        let mut vars = with(&self.env, &self.mock.consumer_env());
        vars.push(("CONSUMER_ADDR", "127.0.0.1:0".to_owned()));
        vars.extend_from_slice(env);
        vars
    }

    /// Starts a consumer with [`Stack::consumer_env`], logging as `<label>-<name>`.
    ///
    /// # Errors
    /// When it cannot start.
    pub fn try_consumer(&self, env: &[(&str, String)], name: &str) -> Result<Process> {
        let label = format!("{}-{name}", self.label);
        self.binaries
            .try_spawn("consumer", &self.consumer_env(env), &label)
    }

    /// Starts a consumer as [`Stack::try_consumer`] does, serving `/healthz` and `/metrics` on
    /// `addr`, and waits until it listens there.
    ///
    /// # Errors
    /// When it cannot start, or exits or does not listen in time.
    pub fn try_serving_consumer(
        &self,
        addr: SocketAddr,
        env: &[(&str, String)],
        name: &str,
    ) -> Result<Process> {
        let mut vars = self.consumer_env(env);
        vars.push(("CONSUMER_ADDR", addr.to_string()));
        let label = format!("{}-{name}", self.label);
        self.binaries.try_serve("consumer", addr, &vars, &label)
    }

    /// Starts a consumer as [`Stack::try_consumer`] does, kept and stopped with the stack.
    ///
    /// # Errors
    /// When it cannot start.
    pub fn try_add_consumer(&mut self, env: &[(&str, String)], name: &str) -> Result<()> {
        let consumer = self.try_consumer(env, name)?;
        self.consumers.push(consumer);
        Ok(())
    }

    /// Fails when a consumer added to the stack, the producer or the mock has exited.
    ///
    /// # Errors
    /// Naming the one that exited, and its log.
    pub fn check_running(&mut self) -> Result<()> {
        for consumer in &mut self.consumers {
            consumer.check_running()?;
        }
        self.producer.check_running()?;
        self.mock.process.check_running()
    }

    /// Stops the consumers added to the stack, then the producer, then the mock, each with
    /// SIGTERM (so that it drains as in production) and 10 s to exit; dropping them then kills
    /// what still runs.
    ///
    /// # Errors
    /// When one cannot be signalled (it is gone).
    pub fn try_stop(&mut self) -> Result<()> {
        for consumer in &mut self.consumers {
            consumer.try_stop()?;
        }
        self.producer.try_stop()?;
        self.mock.process.try_stop()
    }
}

/// `env`, then `extra` on top.
fn with<'a>(env: &'a [(String, String)], extra: &[(&'a str, String)]) -> Vec<(&'a str, String)> {
    let mut vars: Vec<(&str, String)> = env
        .iter()
        .map(|(key, value)| (key.as_str(), value.clone()))
        .collect();
    vars.extend_from_slice(extra);
    vars
}

/// Starts a producer with `env`, then `extra`, serving on `addr`, logging as
/// `<label>-producer`, and waits until it listens.
fn serve_producer(
    binaries: &Binaries,
    env: &[(String, String)],
    label: &str,
    addr: SocketAddr,
    extra: &[(&str, String)],
) -> Result<Process> {
    let mut vars = with(env, extra);
    vars.push(("PRODUCER_ADDR", addr.to_string()));
    binaries.try_serve("producer", addr, &vars, &format!("{label}-producer"))
}
