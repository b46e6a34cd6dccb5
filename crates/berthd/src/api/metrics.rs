//! dockerd's `metrics-addr` listener: `GET /metrics` (plain HTTP, as dockerd's),
//! the page made by [`crate::daemon::metrics::render`].

use crate::daemon::metrics::render;
use crate::daemon::services::Daemon;
use std::sync::Arc;

/// Serves `GET /metrics` on `listener` (plain HTTP, as dockerd's).
pub fn serve(listener: tokio::net::TcpListener, d: Arc<Daemon>) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Method, Response, StatusCode};
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let d = d.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let d = d.clone();
                        async move {
                            let r = if req.method() == Method::GET && req.uri().path() == "/metrics"
                            {
                                Response::builder()
                                    .header(
                                        "Content-Type",
                                        "text/plain; version=0.0.4; charset=utf-8",
                                    )
                                    .body(Full::new(Bytes::from(render(&d))))
                            } else {
                                Response::builder()
                                    .status(StatusCode::NOT_FOUND)
                                    .body(Full::new(Bytes::from_static(b"404 page not found\n")))
                            };
                            Ok::<_, std::convert::Infallible>(r.expect("a valid response"))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}
