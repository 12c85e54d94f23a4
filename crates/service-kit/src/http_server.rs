//! Serving an axum router over HTTP/1.1 with its connections held to [`Limits`]: `axum::serve`
//! without its one weakness, that it keeps every connection as long as the client likes (no
//! header-read or idle timeout, no cap), so that idle or dripping connections could take every
//! file descriptor of the process.
//!
//! Each accepted connection is served by hyper in a task of its own, as `axum::serve` does, with
//! three small wrappers that tell its [`Held`] record what happens on it: the socket (bytes
//! heard), the request body (all of it arrived) and the answer (sent). A [`Watched`] future
//! around the connection reads that record after every step and closes the connection when
//! its timer is up or the cap needs its room (see [`crate::connections`]). Every connection
//! shares the one router (a clone is a reference count), so none rebuilds its route table.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::serve::Listener;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::connections::{Connections, Due, Held};

/// Serves `router` on `listener` until `shutdown` resolves, then lets the requests in progress
/// finish (idle connections close at once) and returns when every connection has closed.
///
/// # Errors
/// Never: the listener retries failed accepts. The `io::Result` is `axum::serve`'s, which
/// callers already handle.
pub async fn serve<L: Listener>(
    mut listener: L,
    router: Router,
    connections: Arc<Connections>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let (stop, stopping) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = async {
                connections.room().await;
                listener.accept().await
            } => accepted,
        };
        let (io, _) = accepted;
        let held = Arc::new(connections.accepted());
        let mut stopping = stopping.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let mut watched = Watched::new(io, router, Arc::clone(&held));
            tokio::select! {
                () = &mut watched => return,
                _ = stopping.changed() => {}
            }
            if !held.is_waiting() {
                watched.conn.as_mut().graceful_shutdown();
                watched.await;
            }
        });
    }
    let _ = stop.send(());
    drop(stopping);
    stop.closed().await;
    Ok(())
}

/// The hyper connection of one accepted socket.
type Conn<I> = http1::Connection<TokioIo<Heard<I>>, Requests>;

/// A connection, closed when its record says so.
struct Watched<I: AsyncRead + AsyncWrite + Unpin + Send + 'static> {
    conn: Pin<Box<Conn<I>>>,
    held: Arc<Held>,
    /// The timer, and the instant it is set for (none once it fired).
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl<I: AsyncRead + AsyncWrite + Unpin + Send + 'static> Watched<I> {
    fn new(io: I, router: Router, held: Arc<Held>) -> Self {
        let io = TokioIo::new(Heard {
            inner: io,
            held: Arc::clone(&held),
        });
        let requests = Requests {
            router,
            held: Arc::clone(&held),
        };
        Self {
            conn: Box::pin(http1::Builder::new().serve_connection(io, requests)),
            held,
            timer: Box::pin(tokio::time::sleep_until(Instant::now())),
            armed: None,
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin + Send + 'static> Future for Watched<I> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.conn.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        // Every change of the record happens inside the connection's poll above (or is an
        // eviction, which wakes this task), so reading it after each poll misses none.
        loop {
            match this.held.due(cx.waker()) {
                Due::Nothing => return Poll::Pending,
                Due::Close(why) => {
                    this.held.count_closed(why);
                    tracing::debug!(reason = ?why, "closing a connection");
                    return Poll::Ready(());
                }
                Due::At(at) => {
                    // Moved only to an earlier deadline: a later one is read again when the
                    // timer fires, so a busy connection does not reset its timer per request.
                    if this.armed.is_none_or(|armed| at < armed) {
                        this.timer.as_mut().reset(at);
                        this.armed = Some(at);
                    }
                    ready!(this.timer.as_mut().poll(cx));
                    this.armed = None;
                }
            }
        }
    }
}

/// A socket that tells its record when bytes arrive.
struct Heard<I> {
    inner: I,
    held: Arc<Held>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Heard<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.held.heard();
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Heard<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router as hyper calls it, noting on the record when each request starts, when its body
/// has arrived and when its answer is sent.
struct Requests {
    router: Router,
    held: Arc<Held>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Requests {
    type Response = hyper::Response<Answer>;
    type Error = Infallible;
    type Future = Answering;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let held = Arc::clone(&self.held);
        held.request_started(hyper::body::Body::is_end_stream(request.body()));
        let request: Request = request.map(|incoming| {
            Body::new(Arriving {
                incoming,
                held: Some(Arc::clone(&held)),
            })
        });
        Answering {
            inner: self.router.clone().call(request),
            ended: Some(InProgress(held)),
        }
    }
}

/// A request in progress; its end is noted when this drops (with the answer sent, or with the
/// request given up).
struct InProgress(Arc<Held>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// The router's answer to come.
struct Answering {
    inner: <Router as Service<Request>>::Future,
    ended: Option<InProgress>,
}

impl Future for Answering {
    type Output = Result<hyper::Response<Answer>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(response) = ready!(Pin::new(&mut self.inner).poll(cx));
        let ended = self.ended.take();
        Poll::Ready(Ok(response.map(|body| Answer {
            body,
            _ended: ended,
        })))
    }
}

/// An answer's body; the request ends when hyper has sent it and drops it.
struct Answer {
    body: Body,
    /// Held for its drop.
    _ended: Option<InProgress>,
}

impl hyper::body::Body for Answer {
    type Data = <Body as hyper::body::Body>::Data;
    type Error = <Body as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request's body; noted as arrived at its end, or when the handler drops it unread.
struct Arriving {
    incoming: Incoming,
    held: Option<Arc<Held>>,
}

impl Arriving {
    fn arrived(&mut self) {
        if let Some(held) = self.held.take() {
            held.body_received();
        }
    }
}

impl Drop for Arriving {
    fn drop(&mut self) {
        self.arrived();
    }
}

impl hyper::body::Body for Arriving {
    type Data = <Incoming as hyper::body::Body>::Data;
    type Error = <Incoming as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.incoming).poll_frame(cx));
        if frame.is_none() || self.incoming.is_end_stream() {
            self.arrived();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}
