use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A response in progress counts as idle from its last byte: one that keeps writing
/// (a dashboard stream's keep-alives) lives on, one that falls silent is closed.
#[tokio::test]
async fn a_response_that_keeps_writing_outlives_the_idle_timeout_and_a_silent_one_does_not() {
    let idle_timeout = Duration::from_millis(300);
    let stream = |every: Duration| {
        Sse::new(futures::stream::pending::<Result<Event, Infallible>>())
            .keep_alive(KeepAlive::new().interval(every))
    };
    let router = Router::new()
        .route("/chatty", get(move || async move { stream(idle_timeout / 4) }))
        .route("/silent", get(move || async move { stream(idle_timeout * 100) }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    // The watchdog looks again a header timeout after a request starts: short here too.
    let limits = Limits { max_connections: 8, header_timeout: idle_timeout, idle_timeout };
    let metrics = Arc::new(Metrics::new(switchback_core::SiteNames::new("chicago", "virginia")));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        Listeners { plain: listener, tls: None },
        router,
        limits,
        metrics,
        shutdown.clone(),
    ));

    let open = |path: &'static str| async move {
        let mut socket = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("{e}"));
        let request = format!("GET {path} HTTP/1.1\r\nHost: switchback\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
        socket
    };
    let mut chatty = open("/chatty").await;
    let mut silent = open("/silent").await;

    // Four idle timeouts go by on the chatty stream, which never stops answering.
    let until = tokio::time::Instant::now() + idle_timeout * 4;
    let mut buffer = [0; 4096];
    let mut received = Vec::new();
    while tokio::time::Instant::now() < until {
        let read = tokio::time::timeout(idle_timeout, chatty.read(&mut buffer)).await;
        let n = read.unwrap_or_else(|_| panic!("the stream went quiet")).unwrap_or_else(|e| panic!("{e}"));
        assert!(n > 0, "the stream was cut: {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buffer[..n]);
    }
    let received = String::from_utf8_lossy(&received);
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    assert!(received.matches("\n:\n").count() >= 4, "keep-alives: {received}");

    let mut rest = Vec::new();
    let closed = tokio::time::timeout(idle_timeout * 4, silent.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a silent response was never closed");

    // A client that leaves ends its stream: nothing is left for the shutdown to wait on.
    drop(chatty);
    shutdown.cancel();
    let _ = server.await;
}
