//! Waiting for a job to end (`GET /v1/jobs/{id}?wait_ms=`): one listener per
//! api process reads the job ends PostgreSQL announces and passes them to
//! every waiting request, which then reads the job again.

use std::sync::{Arc, Weak};
use std::time::Duration;

use facerec_core::JobId;
use facerec_store::Store;
use tokio::sync::broadcast;
use tracing::{info, warn};

/// How long the listener waits before connecting again after losing PostgreSQL.
const RECONNECT: Duration = Duration::from_secs(1);

/// Announced job ends, for this process's waiting requests.
pub struct JobEnds {
    sender: Arc<broadcast::Sender<JobId>>,
}

impl JobEnds {
    /// Starts listening in the background, reconnecting after a lost connection,
    /// until the returned value is dropped.
    pub fn start(store: Store) -> Self {
        let sender = Arc::new(broadcast::channel(4096).0);
        tokio::spawn(listen(store, Arc::downgrade(&sender)));
        Self { sender }
    }

    /// Every job end announced from now on. A waiter must also read the job
    /// again now and then: ends announced while the listener reconnects, or
    /// while a waiter lags behind, are not delivered.
    pub fn subscribe(&self) -> broadcast::Receiver<JobId> {
        self.sender.subscribe()
    }
}

async fn listen(store: Store, sender: Weak<broadcast::Sender<JobId>>) {
    let mut failing = false;
    while sender.strong_count() > 0 {
        match store.listen_for_job_ends().await {
            Ok(mut listener) => {
                if failing {
                    info!("listening for job ends again");
                }
                loop {
                    match listener.next().await {
                        Ok(Some(id)) => match sender.upgrade() {
                            Some(s) => {
                                // No one waiting is not an error.
                                let _ = s.send(id);
                            }
                            None => return,
                        },
                        // Lost and reconnected on the next call; waiters read again on their own.
                        Ok(None) => {}
                        // The api has stopped (no one can wait any more) or is stopping.
                        Err(_) if sender.strong_count() == 0 || store.pool().is_closed() => return,
                        Err(error) => {
                            warn!(error = %error, "lost the job-end listener; waiting requests fall back to reading the job every second");
                            failing = true;
                            break;
                        }
                    }
                }
            }
            Err(_) if sender.strong_count() == 0 || store.pool().is_closed() => return,
            Err(error) if !failing => {
                warn!(error = %error, "cannot listen for job ends; waiting requests fall back to reading the job every second");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(RECONNECT).await;
    }
}
