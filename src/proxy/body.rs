//! [`GatewayBody`], the one opaque body type of the gateway, and a bounded body collector.
//!
//! Every response the gateway hands back (a streamed backend response, a synthetic error, the
//! inner service's response) and every request it forwards carries a [`GatewayBody`]. Bodies
//! are streamed frame by frame; the only place a body is buffered is [`collect_limited`], which
//! always has a limit.
//!
//! # Examples
//!
//! ```
//! use http_body_util::BodyExt;
//! use stagegate::proxy::GatewayBody;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let body = GatewayBody::full("hello");
//! let bytes = body.collect().await.unwrap().to_bytes();
//! assert_eq!(&bytes[..], b"hello");
//! # });
//! ```

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, LengthLimitError, Limited};

/// A boxed, thread-safe error, used only at the tower / hyper boundary (body and service errors).
///
/// # Examples
///
/// ```
/// use stagegate::proxy::BoxError;
///
/// let err: BoxError = "upstream went away".into();
/// assert_eq!(err.to_string(), "upstream went away");
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The opaque body type of the gateway, for requests and responses alike.
///
/// It is `Send` (axum and hyper need that) but not `Sync`: it accepts any `Send` body, including
/// axum's own `Body`, which is not `Sync` either. Data is [`Bytes`], errors are [`BoxError`].
/// Converting into `axum::body::Body` is `axum::body::Body::new(gateway_body)`.
///
/// # Examples
///
/// ```
/// use http_body::Body as _;
/// use http_body_util::Full;
/// use stagegate::proxy::GatewayBody;
///
/// assert!(GatewayBody::empty().is_end_stream());
/// assert_eq!(GatewayBody::full("abc").size_hint().exact(), Some(3));
/// // Any `Body<Data = Bytes>` whose error converts into `BoxError` can be wrapped.
/// let wrapped = GatewayBody::new(Full::new(bytes::Bytes::from_static(b"xyz")));
/// assert_eq!(wrapped.size_hint().exact(), Some(3));
/// ```
pub struct GatewayBody(UnsyncBoxBody<Bytes, BoxError>);

impl GatewayBody {
    /// Wraps any body whose data is [`Bytes`] and whose error converts into [`BoxError`].
    ///
    /// Wrapping a `GatewayBody` again is cheap: the box is reused, not nested.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_body_util::Empty;
    /// use stagegate::proxy::GatewayBody;
    ///
    /// let body = GatewayBody::new(Empty::<bytes::Bytes>::new());
    /// # let _ = body;
    /// ```
    pub fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // Avoid boxing a box: a `GatewayBody` passed back in is returned as is.
        let mut slot = Some(body);
        if let Some(existing) =
            (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<GatewayBody>>()
            && let Some(inner) = existing.take()
        {
            return inner;
        }
        match slot {
            Some(body) => Self(body.map_err(Into::into).boxed_unsync()),
            None => Self::empty(),
        }
    }

    /// A body with no data.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_body::Body as _;
    /// assert!(stagegate::proxy::GatewayBody::empty().is_end_stream());
    /// ```
    pub fn empty() -> Self {
        Self(Empty::new().map_err(|never| match never {}).boxed_unsync())
    }

    /// A body holding `data` in one frame.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_body::Body as _;
    /// let body = stagegate::proxy::GatewayBody::full(String::from("{\"ok\":true}"));
    /// assert_eq!(body.size_hint().exact(), Some(11));
    /// ```
    pub fn full(data: impl Into<Bytes>) -> Self {
        Self(
            Full::new(data.into())
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
    }
}

impl Default for GatewayBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for GatewayBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayBody")
            .field("size_hint", &self.0.size_hint())
            .finish_non_exhaustive()
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

impl From<Bytes> for GatewayBody {
    fn from(data: Bytes) -> Self {
        Self::full(data)
    }
}

impl From<String> for GatewayBody {
    fn from(data: String) -> Self {
        Self::full(data)
    }
}

impl From<&'static str> for GatewayBody {
    fn from(data: &'static str) -> Self {
        Self::full(data)
    }
}

impl From<Vec<u8>> for GatewayBody {
    fn from(data: Vec<u8>) -> Self {
        Self::full(data)
    }
}

/// Why a body could not be read.
///
/// # Examples
///
/// ```
/// use stagegate::proxy::BodyError;
///
/// let err = BodyError::TooLarge { limit: 8 };
/// assert_eq!(err.to_string(), "body exceeds the limit of 8 bytes");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is longer than the limit it had to be buffered within.
    #[error("body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The backend response body did not finish within the forwarding timeout.
    #[error("body not finished within the backend timeout")]
    Timeout,
    /// The underlying body stream failed.
    #[error("body stream failed")]
    Stream(#[source] BoxError),
}

/// Reads a whole body into memory, failing with [`BodyError::TooLarge`] as soon as it is known
/// to be longer than `limit` bytes (from its size hint, before reading anything, or while
/// reading). Trailers are dropped.
///
/// Use it only where a step has to see the whole body (the signature's `Content-MD5`, form
/// parameter mapping); everything else streams.
///
/// # Errors
///
/// [`BodyError::TooLarge`] over the limit, [`BodyError::Stream`] if the body itself fails.
pub(crate) async fn collect_limited<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let declared = body.size_hint().lower();
    if usize::try_from(declared).map_or(true, |declared| declared > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(BodyError::TooLarge { limit }),
        Err(err) => Err(BodyError::Stream(err)),
    }
}

pin_project_lite::pin_project! {
    /// A body that fails with [`BodyError::Timeout`] once a deadline has passed.
    pub(crate) struct DeadlineBody<B> {
        #[pin]
        inner: B,
        #[pin]
        sleep: tokio::time::Sleep,
        expired: bool,
    }
}

impl<B> DeadlineBody<B> {
    pub(crate) fn new(inner: B, deadline: tokio::time::Instant) -> Self {
        Self {
            inner,
            sleep: tokio::time::sleep_until(deadline),
            expired: false,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => {
                *this.expired = true;
                Poll::Ready(Some(Err(Box::new(BodyError::Timeout))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn gateway_body_is_send() {
        fn assert_send<T: Send + Unpin + 'static>() {}
        assert_send::<GatewayBody>();
    }

    #[test]
    fn rewrapping_does_not_nest() {
        let body = GatewayBody::new(GatewayBody::full("abc"));
        assert_eq!(body.size_hint().exact(), Some(3));
    }

    #[tokio::test]
    async fn collect_limited_rejects_by_size_hint_and_by_stream() {
        let err = collect_limited(GatewayBody::full(vec![0u8; 11]), 10)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit: 10 }));

        // A stream with no size hint is cut while reading.
        let chunks = futures_util::stream::iter(
            (0..4).map(|_| Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"abcd")))),
        );
        let body = http_body_util::StreamBody::new(chunks);
        let err = collect_limited(body, 10).await.unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit: 10 }));
    }

    #[tokio::test]
    async fn collect_limited_reports_stream_errors() {
        let chunks = futures_util::stream::iter(vec![
            Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"ab"))),
            Err("boom".into()),
        ]);
        let err = collect_limited(http_body_util::StreamBody::new(chunks), 10)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::Stream(_)));
    }

    #[tokio::test]
    async fn deadline_body_fails_after_deadline() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
        let body = DeadlineBody::new(http_body_util::StreamBody::new(stream), deadline);
        let err = body.collect().await.unwrap_err();
        assert!(
            err.downcast_ref::<BodyError>()
                .is_some_and(|e| matches!(e, BodyError::Timeout))
        );
    }

    #[tokio::test]
    async fn collect_limited_refuses_a_body_over_the_limit() {
        let ok = collect_limited(GatewayBody::full("0123456789"), 10)
            .await
            .unwrap();
        assert_eq!(ok.len(), 10);

        let err = collect_limited(GatewayBody::full("0123456789"), 9)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit: 9 }));
    }
}
