//! Events: being told the moment a task changes, instead of asking Redis again and again.
//!
//! Every script that changes tasks publishes what it changed, once per call, on the queue's
//! events channel (`{taskq:<queue>}:events`; lines of `<state> <name>`, see `prelude.lua`), and a
//! script that makes work due now (a new task, a provider's webhook) says so on the queue's wake
//! channel. `PUBLISH` on a single Redis or under Sentinel; `SPUBLISH` (sharded pub/sub) on a
//! Redis Cluster, where the channels, under the queue's hash tag, belong to its shard.
//!
//! [`subscribe`] keeps one pub/sub connection for a set of channels, however many callers wait:
//! the producer subscribes to the events of the queues it serves and wakes its long-polls and
//! event streams; the consumer subscribes to the wake channels of its queues. Pub/sub delivers
//! at most once: a message published while the connection is down is lost. So the subscription
//! says when it is lost and when it is live again ([`Signal::Lost`], [`Signal::Live`]), and a
//! caller re-reads what it waits on at each `Live` (the first one included: anything published
//! before the subscription was made is missed too). A hung Redis is found by a ping every
//! [`PING_EVERY`] on a single Redis or under Sentinel; a connection that fails is made again
//! with a growing pause, through the sentinels again under Sentinel (so a failover is followed).

use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::PubSub;
use redis::{ProtocolVersion, PushKind, RedisResult, Value};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::connect::{PubSubSource, RedisConnection, cluster_builder};
use crate::task::State;

/// How often an idle subscription checks that Redis still answers.
pub const PING_EVERY: Duration = Duration::from_secs(2);
/// Signals a slow reader may leave unread before the subscription waits for it (and Redis keeps
/// the rest in the connection's output buffer).
const SIGNALS_BUFFERED: usize = 1024;
/// The pauses between connection attempts.
const RECONNECT: Backoff = Backoff {
    base: Duration::from_millis(100),
    max: Duration::from_secs(5),
};

/// What a subscription reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A message on the channel at `channel` (its position in the list subscribed to).
    Message {
        /// Which channel, by position.
        channel: usize,
        /// The message.
        payload: String,
    },
    /// The subscription is live (again): anything may have changed while it was not.
    Live,
    /// The subscription was lost; it is being made again.
    Lost,
}

/// One change in an events message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change<'a> {
    /// The task's name.
    pub name: &'a str,
    /// Its state now.
    pub state: State,
}

/// The changes an events message tells (lines it cannot read are skipped: a newer script's
/// state, say, is not this reader's business).
pub fn changes(payload: &str) -> impl Iterator<Item = Change<'_>> {
    payload.split('\n').filter_map(|line| {
        let (state, name) = line.split_once(' ')?;
        Some(Change {
            name,
            state: state.parse().ok()?,
        })
    })
}

/// Subscribes to `channels` on the Redis `conn` talks to, on a connection of its own, and
/// reports on the returned receiver until it is dropped.
pub fn subscribe(conn: &RedisConnection, channels: Vec<String>) -> mpsc::Receiver<Signal> {
    let (signals, receiver) = mpsc::channel(SIGNALS_BUFFERED);
    let listener = Listener {
        source: conn.pubsub_source(),
        channels,
        signals,
        patience: conn.connect_timeout(),
    };
    tokio::spawn(listener.run());
    receiver
}

struct Listener {
    source: PubSubSource,
    channels: Vec<String>,
    signals: mpsc::Sender<Signal>,
    /// How long connecting, subscribing or a ping may take.
    patience: Duration,
}

/// How a connection ended.
enum End {
    /// Nobody listens any more.
    Unheard,
    /// The connection failed before it was live.
    Failed(redis::RedisError),
    /// The live connection was lost.
    Lost(redis::RedisError),
}

impl Listener {
    async fn run(self) {
        let mut failures = 0;
        loop {
            let end = match &self.source {
                PubSubSource::Single(client) => self.listen(client).await,
                PubSubSource::Sentinel(master) => match master.master_client().await {
                    Ok(client) => self.listen(&client).await,
                    Err(err) => End::Failed(err),
                },
                PubSubSource::Cluster(url, options) => {
                    let builder = cluster_builder(url, options);
                    self.listen_cluster(builder).await
                }
            };
            match end {
                End::Unheard => return,
                End::Lost(err) => {
                    warn!(error = %err, "event subscription lost; subscribing again");
                    failures = 0;
                    if self.signals.send(Signal::Lost).await.is_err() {
                        return;
                    }
                }
                End::Failed(err) => {
                    failures += 1;
                    if failures == 1 {
                        warn!(error = %err, "could not subscribe to events; trying again");
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RECONNECT.delay(failures.max(1))) => {}
                () = self.signals.closed() => return,
            }
        }
    }

    /// Within the listener's patience, or a timeout error.
    async fn patiently<T>(&self, call: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
        tokio::time::timeout(self.patience, call)
            .await
            .unwrap_or_else(|_| {
                Err(redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "redis did not answer in time",
                )))
            })
    }

    /// A single Redis (or the master Sentinel named): `SUBSCRIBE`, then messages and pings.
    async fn listen(&self, client: &redis::Client) -> End {
        let subscribed = self
            .patiently(async {
                let mut pubsub: PubSub = client.get_async_pubsub().await?;
                pubsub.subscribe(&self.channels).await?;
                Ok(pubsub)
            })
            .await;
        let (mut sink, mut stream) = match subscribed {
            Ok(pubsub) => pubsub.split(),
            Err(err) => return End::Failed(err),
        };
        if self.live().await.is_err() {
            return End::Unheard;
        }
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.reset();
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else {
                        return End::Lost(closed("the connection closed"));
                    };
                    let channel = message.get_channel_name().to_owned();
                    let payload = message.get_payload::<String>().unwrap_or_default();
                    if self.tell(&channel, payload).await.is_err() {
                        return End::Unheard;
                    }
                }
                _ = ping.tick() => {
                    if let Err(err) = self.patiently(sink.ping::<Value>()).await {
                        return End::Lost(err);
                    }
                }
                () = self.signals.closed() => return End::Unheard,
            }
        }
    }

    /// A Redis Cluster: `SSUBSCRIBE` over RESP3, messages as pushes. redis-rs subscribes again
    /// by itself after a reconnection (to whichever node then holds the slot); a disconnection and
    /// the confirmation that follows are this subscription's `Lost` and `Live`.
    async fn listen_cluster(&self, builder: redis::cluster::ClusterClientBuilder) -> End {
        let (pushes, mut received) = mpsc::unbounded_channel();
        let client = match builder
            .use_protocol(ProtocolVersion::RESP3)
            .push_sender(pushes)
            .build()
        {
            Ok(client) => client,
            Err(err) => return End::Failed(err),
        };
        let subscribed = self
            .patiently(async {
                let mut connection = client.get_async_connection().await?;
                connection.ssubscribe(&self.channels).await?;
                Ok(connection)
            })
            .await;
        // The connection must live as long as the subscription.
        let _connection = match subscribed {
            Ok(connection) => connection,
            Err(err) => return End::Failed(err),
        };
        if self.live().await.is_err() {
            return End::Unheard;
        }
        let mut lost = false;
        loop {
            let push = tokio::select! {
                push = received.recv() => push,
                () = self.signals.closed() => return End::Unheard,
            };
            let Some(push) = push else {
                return End::Lost(closed("the cluster connection ended"));
            };
            let told = match push.kind {
                PushKind::SMessage => match channel_and_payload(push.data) {
                    Some((channel, payload)) => self.tell(&channel, payload).await,
                    None => Ok(()),
                },
                PushKind::Disconnection if !lost => {
                    lost = true;
                    warn!("event subscription lost; redis-rs subscribes again");
                    self.signals.send(Signal::Lost).await.map_err(drop)
                }
                PushKind::SSubscribe if lost => {
                    lost = false;
                    self.live().await
                }
                _ => Ok(()),
            };
            if told.is_err() {
                return End::Unheard;
            }
        }
    }

    async fn live(&self) -> Result<(), ()> {
        info!(channels = self.channels.len(), "subscribed to events");
        self.signals.send(Signal::Live).await.map_err(drop)
    }

    async fn tell(&self, channel: &str, payload: String) -> Result<(), ()> {
        let Some(channel) = self.channels.iter().position(|c| c == channel) else {
            return Ok(());
        };
        self.signals
            .send(Signal::Message { channel, payload })
            .await
            .map_err(drop)
    }
}

fn closed(why: &'static str) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        why,
    ))
}

/// A push's `[channel, message]`.
fn channel_and_payload(data: Vec<Value>) -> Option<(String, String)> {
    let mut data = data.into_iter();
    let channel = redis::from_redis_value(data.next()?).ok()?;
    let payload = redis::from_redis_value(data.next()?).ok()?;
    Some((channel, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_message_reads_as_changes_and_odd_lines_are_skipped() {
        let found: Vec<_> = changes("done a b\nrunning x\nweird y\n\nprocessing {z}").collect();
        assert_eq!(
            found,
            vec![
                Change {
                    name: "a b",
                    state: State::Done
                },
                Change {
                    name: "x",
                    state: State::Running
                },
                Change {
                    name: "{z}",
                    state: State::Processing
                },
            ]
        );
    }
}
