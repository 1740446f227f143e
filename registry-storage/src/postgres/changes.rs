//! [`PgChangeFeed`]: other replicas' writes, from PostgreSQL's
//! `LISTEN registry_changes` (the triggers of migration 0004 announce every
//! committed change of what caches hold).

use std::sync::Arc;
use std::time::Duration;

use registry_core::{Namespace, RepositoryName};
use sqlx::postgres::PgListener;

use super::error::Error;
use super::PgStore;
use crate::changes::{BroadcastFeed, Change, ChangeFeed, ChangeStream};
use crate::error::Result;

/// The channel the triggers notify on.
const CHANNEL: &str = "registry_changes";

/// How long the listener waits before connecting again after a failure.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// A [`ChangeFeed`] of a PostgreSQL database: one listening connection per
/// feed (outside the store's pool bound: it holds no statement), handing
/// every notification to the subscribers. When the connection drops,
/// subscribers get [`Change::Everything`] (what was missed is unknown) and
/// the feed connects again. Stops listening when dropped.
#[derive(Debug)]
pub struct PgChangeFeed {
    feed: BroadcastFeed,
    listener: tokio::task::AbortHandle,
}

impl Drop for PgChangeFeed {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl ChangeFeed for PgChangeFeed {
    fn subscribe(&self) -> ChangeStream {
        self.feed.subscribe()
    }
}

/// What a notification's payload says changed; an unknown payload (from a
/// newer version) drops everything rather than nothing.
fn parse(payload: &str) -> Change {
    let parsed = match payload.split_once(':') {
        Some(("r", repo)) => repo.parse::<RepositoryName>().ok().map(Change::Repository),
        Some(("n", ns)) => ns.parse::<Namespace>().ok().map(Change::Namespace),
        None if payload == "a" => Some(Change::Auth),
        _ => None,
    };
    parsed.unwrap_or(Change::Everything)
}

impl PgStore {
    /// Starts listening for other replicas' changes on this database (give
    /// the feed to [`Stores::with_change_feed`](crate::Stores::with_change_feed)).
    /// Fails if the first `LISTEN` does; later connection losses are
    /// survived as described on [`PgChangeFeed`].
    pub async fn change_feed(&self) -> Result<Arc<PgChangeFeed>> {
        let listener = self.listen().await?;
        let feed = BroadcastFeed::default();
        let task = tokio::spawn(follow(self.clone(), listener, feed.clone()));
        Ok(Arc::new(PgChangeFeed {
            feed,
            listener: task.abort_handle(),
        }))
    }

    async fn listen(&self) -> Result<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(Error::from)?;
        listener.listen(CHANNEL).await.map_err(Error::from)?;
        Ok(listener)
    }
}

async fn follow(store: PgStore, mut listener: PgListener, feed: BroadcastFeed) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => feed.publish(parse(notification.payload())),
            // The connection dropped; the next call connects again (and
            // listens again) by itself.
            Ok(None) => {
                tracing::warn!("lost the database's change notifications; reconnecting");
                feed.publish(Change::Everything);
            }
            Err(e) => {
                tracing::warn!(error = %e, "database change notifications failed; reconnecting");
                feed.publish(Change::Everything);
                tokio::time::sleep(RECONNECT_PAUSE).await;
                match store.listen().await {
                    Ok(fresh) => listener = fresh,
                    Err(e) => tracing::warn!(error = %e, "listening for database changes failed"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert_eq!(
            parse("r:team/app"),
            Change::Repository("team/app".parse().unwrap())
        );
        assert_eq!(parse("n:team"), Change::Namespace("team".parse().unwrap()));
        assert_eq!(parse("a"), Change::Auth);
        assert_eq!(parse("r:Not A Name"), Change::Everything);
        assert_eq!(parse("x:future"), Change::Everything);
    }
}
