//! What every handler shares: the connections, the settings and the api's
//! shared limits, built once by `app`. It only holds them: the middleware of
//! each part (admission, spooling, authentication) takes just that part, so
//! no part depends on the whole and every module edge points one way.

use std::sync::Arc;

use facerec_queue::JobQueue;
use facerec_store::Store;

use crate::Settings;
use crate::admission::Admission;
use crate::auth::Auth;
use crate::job_ends::JobEnds;
use crate::live_slots::LiveStreams;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub queue: JobQueue,
    pub admission: Arc<Admission>,
    pub job_ends: Arc<JobEnds>,
    pub auth: Arc<Auth>,
    pub live: Arc<LiveStreams>,
    pub settings: Arc<Settings>,
}
