//! Looking inside the queue, for tests and operators: what apalis keeps in
//! Redis per message, read through the queue so no one else needs its key
//! names. Each is a few Redis commands on this queue's keys only.

use crate::{JobQueue, QueueError};

/// Keys per `SCAN` step: large enough that a queue's keys take a few round
/// trips, small enough that Redis never blocks on one.
const SCAN_COUNT: usize = 1000;

impl JobQueue {
    /// Messages held in Redis: every message pushed, waiting or taken, until
    /// a vacuum removes it (finished, older than the retention).
    pub async fn held_count(&self) -> Result<usize, QueueError> {
        let mut conn = self.conn.clone();
        redis::cmd("HLEN").arg(self.config.job_data_hash()).query_async(&mut conn).await.map_err(QueueError::Inspect)
    }

    /// Bookkeeping keys apalis keeps per message (`<queue>:meta:*`); a vacuum
    /// removes them with the message.
    pub async fn bookkeeping_keys(&self) -> Result<usize, QueueError> {
        Ok(self.keys(&format!("{}:*", self.config.job_meta_hash())).await?.len())
    }

    /// The JSON payload of every message held (see [`JobQueue::held_count`]).
    pub async fn held_payloads(&self) -> Result<Vec<serde_json::Value>, QueueError> {
        let mut conn = self.conn.clone();
        let raw: Vec<Vec<u8>> = redis::cmd("HVALS")
            .arg(self.config.job_data_hash())
            .query_async(&mut conn)
            .await
            .map_err(QueueError::Inspect)?;
        raw.iter().map(|bytes| serde_json::from_slice(bytes).map_err(QueueError::Payload)).collect()
    }

    /// When each message sent for later ([`JobQueue::enqueue_at`]) comes
    /// due, in unix seconds, soonest first.
    pub async fn scheduled_due(&self) -> Result<Vec<u64>, QueueError> {
        let mut conn = self.conn.clone();
        let scheduled: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(self.config.scheduled_jobs_set())
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(QueueError::Inspect)?;
        Ok(scheduled.into_iter().map(|(_, due)| due as u64).collect())
    }

    /// Deletes every key of this queue (`<queue>:*`): its messages, their
    /// bookkeeping, its consumers' registrations and its live frames, as a
    /// Redis flush would. Jobs live on in PostgreSQL; the reconciler sends
    /// them again. (Not `<queue>*`: that would also match a queue whose name
    /// merely starts with this one's.)
    pub async fn purge(&self) -> Result<(), QueueError> {
        let keys = self.keys(&format!("{}:*", self.name)).await?;
        let mut conn = self.conn.clone();
        for chunk in keys.chunks(SCAN_COUNT) {
            redis::cmd("DEL").arg(chunk).query_async::<()>(&mut conn).await.map_err(QueueError::Inspect)?;
        }
        Ok(())
    }

    /// Every key matching `pattern`, by `SCAN` (which, unlike `KEYS`, never
    /// holds Redis up on a large database).
    async fn keys(&self, pattern: &str) -> Result<Vec<String>, QueueError> {
        let mut conn = self.conn.clone();
        let (mut keys, mut cursor) = (Vec::new(), 0_u64);
        loop {
            let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                .cursor_arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await
                .map_err(QueueError::Inspect)?;
            keys.extend(found);
            if next == 0 {
                // SCAN may return a key twice.
                keys.sort_unstable();
                keys.dedup();
                return Ok(keys);
            }
            cursor = next;
        }
    }
}
