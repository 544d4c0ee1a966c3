//! Announcing pushes to idle consumers ([`crate::PushSignal`]), only when one
//! may be idle.
//!
//! A consumer sleeps only after a fetch found no due message, and one with
//! room fetches again the moment it has it. So while due messages wait, every
//! consumer is busy, and an announcement would only wake each of them, in the
//! middle of its inference, for nothing: in a steady ingestion that was one
//! wake-up per job on every worker. A push is announced when, once it is in,
//! no more than [`ANNOUNCE_SLACK`] due messages besides its own wait. The
//! slack covers pushes that land together: each one's count includes the
//! others', and only a burst of more than `ANNOUNCE_SLACK + 1` pushes between
//! one's arrival and its count could leave an idle consumer unannounced,
//! until its next tick.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use apalis_redis::{Config, ConnectionManager};

/// Due messages, besides the push's own, that still get it announced.
pub const ANNOUNCE_SLACK: usize = 4;

/// KEYS: the active list, the scheduled set (apalis files pushes there, due
/// at their push time; a fetch moves the due ones to the active list).
/// ARGV: the channel, the time now (Unix seconds, the clock apalis stamps
/// pushes with), the most due messages that still get announced.
/// Returns the subscribers reached, or -1 when not announced.
static ANNOUNCE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local due = redis.call('LLEN', KEYS[1]) + redis.call('ZCOUNT', KEYS[2], '-inf', ARGV[2])
        if due <= tonumber(ARGV[3]) then
            return redis.call('PUBLISH', ARGV[1], 1)
        end
        return -1
        ",
    )
});

/// Announces `count` messages just pushed on `channel`, unless enough others
/// wait that every consumer is busy.
pub(crate) async fn announce(
    conn: &ConnectionManager,
    config: &Config,
    channel: &str,
    count: usize,
) -> redis::RedisResult<()> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let mut conn = conn.clone();
    let _reached_or_not_announced: i64 = ANNOUNCE
        .key(config.active_jobs_list())
        .key(config.scheduled_jobs_set())
        .arg(channel)
        .arg(now)
        .arg(count + ANNOUNCE_SLACK)
        .invoke_async(&mut conn)
        .await?;
    Ok(())
}
