//! What every job handler (and every live frame) shares: the connections, the
//! pipelines and the settings. Below `handler`, `jobs`, `verify` and `live`,
//! which all take it, so none of them depends on another for it.

use std::sync::Arc;

use facerec_queue::JobQueue;
use facerec_store::Store;

use crate::Settings;
use crate::pool::PipelinePool;

#[derive(Clone)]
pub(crate) struct JobContext {
    pub store: Store,
    pub queue: JobQueue,
    pub pool: PipelinePool,
    pub settings: Arc<Settings>,
}
