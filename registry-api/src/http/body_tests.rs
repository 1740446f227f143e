//! Idle request bodies: when the clock runs, what resets it, and how the
//! failure is recognised through the layers that wrap it.

use futures::StreamExt;
use tokio::sync::mpsc;

use super::*;

const IDLE: Duration = Duration::from_secs(10);

/// A body fed by the returned sender, wrapped as the layer wraps it.
fn fed() -> (mpsc::UnboundedSender<Bytes>, Body) {
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let bytes = rx.recv().await?;
        Some((Ok::<_, std::io::Error>(bytes), rx))
    });
    let body = Body::new(IdleBody {
        inner: Body::from_stream(stream),
        idle: IDLE,
        timer: None,
        armed: false,
    });
    (tx, body)
}

#[tokio::test(start_paused = true)]
async fn a_body_that_stops_sending_fails_after_the_idle_timeout() {
    let (tx, body) = fed();
    tx.send(Bytes::from_static(b"{\"name\":")).unwrap();
    let started = Instant::now();
    match read_body(body, 1024).await {
        Err(BodyError::Stalled(timeout)) => assert_eq!(timeout.idle, IDLE),
        other => panic!("{:?}", other.map_err(|_| "another error")),
    }
    assert_eq!(started.elapsed(), IDLE);
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn bytes_reset_the_clock_and_empty_frames_do_not() {
    let (tx, body) = fed();
    let feeder = tokio::spawn(async move {
        // Five bytes, each just before the timeout: 4.5 timeouts in all.
        for _ in 0..5 {
            tokio::time::sleep(IDLE * 9 / 10).await;
            tx.send(Bytes::from_static(b"x")).unwrap();
        }
    });
    assert_eq!(&read_body(body, 1024).await.ok().unwrap()[..], b"xxxxx");
    feeder.await.unwrap();

    let (tx, body) = fed();
    let started = Instant::now();
    let feeder = tokio::spawn(async move {
        // Empty frames at 0.4, 0.8, 1.2… timeouts: the body fails at 1.
        for _ in 0..5 {
            tokio::time::sleep(IDLE * 2 / 5).await;
            let _ = tx.send(Bytes::new());
        }
    });
    assert!(matches!(
        read_body(body, 1024).await,
        Err(BodyError::Stalled(_))
    ));
    assert_eq!(started.elapsed(), IDLE);
    feeder.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_clock_starts_when_a_read_waits() {
    let (tx, body) = fed();
    tx.send(Bytes::from_static(b"all")).unwrap();
    drop(tx);
    // A handler busy for longer than the timeout before it reads.
    tokio::time::sleep(IDLE * 3).await;
    assert_eq!(&read_body(body, 1024).await.ok().unwrap()[..], b"all");
}

#[tokio::test(start_paused = true)]
async fn the_stall_is_recognised_through_axum_and_storage_errors() {
    let (_tx, body) = fed();
    let e = body.into_data_stream().next().await.unwrap().unwrap_err();
    assert!(stalled(&e).is_some(), "{e}");
    // The upload path keeps the timeout itself as the storage error's source.
    let e = e.into_inner();
    assert!(e.is::<BodyIdleTimeout>(), "{e}");
    let other = std::io::Error::other("reset");
    assert!(stalled(&other).is_none());
}

#[tokio::test]
async fn a_body_past_the_limit_is_too_large() {
    let body = Body::from(vec![0u8; 2048]);
    assert!(matches!(
        read_body(body, 1024).await,
        Err(BodyError::TooLarge)
    ));
}
