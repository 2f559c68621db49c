//! A cap on the bytes a client may send before `connect` succeeds. tungstenite's
//! message limit is fixed when the socket is built (1 MiB, the post-`connect`
//! limit), so without this an unauthenticated client could make every connection
//! buffer a megabyte before being told its message is too big.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Wraps a stream; reads fail once more than `remaining` bytes arrived, until
/// [`ReadBudget::lift`] is called.
pub(crate) struct ReadBudget<S> {
    /// The upgraded connection.
    inner: S,
    /// Bytes still allowed; `None` once lifted.
    remaining: Option<usize>,
}

/// The error a read returns when the budget is spent.
pub(crate) fn is_budget_exceeded(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::FileTooLarge
}

impl<S> ReadBudget<S> {
    pub fn new(inner: S, budget: usize) -> Self {
        Self {
            inner,
            remaining: Some(budget),
        }
    }

    /// Removes the cap (after `connect`, or to discard what is left on the wire).
    pub fn lift(&mut self) {
        self.remaining = None;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadBudget<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.remaining == Some(0) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "too many bytes before connect",
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(remaining)) = (&polled, this.remaining.as_mut()) {
            let read = buf.filled().len() - before;
            *remaining = remaining.saturating_sub(read);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadBudget<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_stop_at_the_budget_until_lifted() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut limited = ReadBudget::new(server, 10);
        client.write_all(&[7u8; 30]).await.unwrap();
        let mut buf = [0u8; 30];
        let mut total = 0;
        let error = loop {
            match limited.read(&mut buf).await {
                Ok(n) => total += n,
                Err(e) => break e,
            }
        };
        assert!(is_budget_exceeded(&error));
        assert!(total >= 10, "the budget itself is readable");
        limited.lift();
        client.write_all(b"more").await.unwrap();
        drop(client);
        let mut rest = Vec::new();
        limited.read_to_end(&mut rest).await.unwrap();
        assert!(rest.ends_with(b"more"));
    }
}
