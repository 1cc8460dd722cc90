//! The connection wrapper that keeps a hostile server from holding a run past its deadline.
//!
//! `tokio::time::timeout` only fires when the timed future yields. A server that streams 1xx
//! heads as fast as it can keeps hyper's parse loop busy (data is always ready), so the outer
//! timeout is seen late and the loop burns a core meanwhile. Every read and write through
//! [`Guarded`] therefore checks the run's one deadline itself and the number of informational
//! responses hyper has reported, and fails the IO once either is exceeded.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// 1xx responses accepted before the final one (100 Continue, 103 Early Hints … a real server
/// sends one or two).
pub(crate) const MAX_INFORMATIONAL: u32 = 8;

/// Why the wrapper failed an IO; found again in hyper's error chain by [`GuardError::find`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GuardError {
    #[error("deadline of the run reached")]
    Deadline,
    #[error("more than {MAX_INFORMATIONAL} informational (1xx) responses before the final one")]
    Informational,
}

impl GuardError {
    /// The guard's verdict somewhere in an error's source chain.
    pub(crate) fn find(e: &(dyn std::error::Error + 'static)) -> Option<GuardError> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(g) = err.downcast_ref::<GuardError>() {
                return Some(*g);
            }
            if let Some(g) = err
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<GuardError>())
            {
                return Some(*g);
            }
            cur = err.source();
        }
        None
    }
}

/// Shared between the wrapper and the request's `on_informational` callback.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub deadline: Instant,
    pub informational: Arc<AtomicU32>,
}

impl Limits {
    pub(crate) fn new(deadline: Instant) -> Self {
        Limits {
            deadline,
            informational: Arc::new(AtomicU32::new(0)),
        }
    }

    fn check(&self) -> io::Result<()> {
        if self.informational.load(Ordering::Relaxed) > MAX_INFORMATIONAL {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                GuardError::Informational,
            ));
        }
        if Instant::now() >= self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                GuardError::Deadline,
            ));
        }
        Ok(())
    }
}

/// An IO stream whose every operation first checks [`Limits`].
pub(crate) struct Guarded<S> {
    inner: S,
    limits: Limits,
}

impl<S> Guarded<S> {
    pub(crate) fn new(inner: S, limits: Limits) -> Self {
        Guarded { inner, limits }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.limits.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.limits.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
