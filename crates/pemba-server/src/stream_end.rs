//! How a client's request stream ended: with the client's own end of stream, or cut off.
//!
//! tonic hands a handler a client-streaming call's cancellation (the client's HTTP/2
//! `RST_STREAM` with `CANCEL`) as the stream's ordinary end, so a handler that commits what it
//! holds once its stream ends would commit a cancelled call's partial input. [`StreamEndLayer`]
//! wraps the request body of the client-streaming methods and records whether it ended with the
//! client's `END_STREAM`; the handler asks [`StreamEnd::completed`] before committing.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};

/// The methods whose request is a stream the client ends (the only ones watched).
const CLIENT_STREAMING_METHODS: &[&str] =
    &["/authzed.api.v1.PermissionsService/ImportBulkRelationships"];

/// Whether a request's body ended with the client's end of stream; shared between the body and
/// the handler through the request's extensions.
#[derive(Clone, Debug, Default)]
pub struct StreamEnd(Arc<AtomicBool>);

impl StreamEnd {
    /// The watch on `request`'s body; none unless the request passed through [`StreamEndLayer`].
    pub fn of<T>(request: &tonic::Request<T>) -> Option<StreamEnd> {
        request.extensions().get::<StreamEnd>().cloned()
    }

    /// True once the client ended the stream itself; false while it is open and after it was
    /// cancelled or broken off.
    pub fn completed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn complete(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A request body that records on its [`StreamEnd`] when it ends cleanly.
struct Watched<B> {
    inner: B,
    end: StreamEnd,
}

impl<B: Body + Unpin> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.end.complete();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let ended = self.inner.is_end_stream();
        if ended {
            self.end.complete();
        }
        ended
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The tower layer that watches how client-streaming requests end.
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamEndLayer;

impl<S> tower_layer::Layer<S> for StreamEndLayer {
    type Service = StreamEndService<S>;

    fn layer(&self, inner: S) -> StreamEndService<S> {
        StreamEndService { inner }
    }
}

/// A service wrapped by [`StreamEndLayer`].
#[derive(Clone, Debug)]
pub struct StreamEndService<S> {
    inner: S,
}

impl<S> tower_service::Service<http::Request<tonic::body::Body>> for StreamEndService<S>
where
    S: tower_service::Service<http::Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> S::Future {
        if CLIENT_STREAMING_METHODS.contains(&request.uri().path()) {
            let end = StreamEnd::default();
            request.extensions_mut().insert(end.clone());
            request = request.map(|inner| tonic::body::Body::new(Watched { inner, end }));
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use bytes::Bytes;

    use super::*;

    /// A body that yields its frames, then either ends or fails.
    struct Scripted {
        frames: VecDeque<Result<Frame<Bytes>, tonic::Status>>,
    }

    impl Body for Scripted {
        type Data = Bytes;
        type Error = tonic::Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
            Poll::Ready(self.frames.pop_front())
        }
    }

    /// Polls `body` to its end or first error.
    fn drain(mut body: Watched<Scripted>) {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        while let Poll::Ready(Some(Ok(_))) = Pin::new(&mut body).poll_frame(&mut cx) {}
    }

    fn watched(frames: Vec<Result<Frame<Bytes>, tonic::Status>>) -> (Watched<Scripted>, StreamEnd) {
        let end = StreamEnd::default();
        let body = Watched {
            inner: Scripted {
                frames: frames.into(),
            },
            end: end.clone(),
        };
        (body, end)
    }

    #[test]
    fn a_stream_the_client_ends_is_completed() {
        let (body, end) = watched(vec![Ok(Frame::data(Bytes::from_static(b"part")))]);
        assert!(!end.completed(), "not before the end is read");
        drain(body);
        assert!(end.completed());
    }

    #[test]
    fn a_cancelled_or_broken_stream_is_not_completed() {
        for status in [
            tonic::Status::cancelled("reset"),
            tonic::Status::unknown("io"),
        ] {
            let (body, end) = watched(vec![
                Ok(Frame::data(Bytes::from_static(b"part"))),
                Err(status),
            ]);
            drain(body);
            assert!(!end.completed());
        }
    }
}
