//! Jobs in PostgreSQL, by concern: their rows and how they become typed
//! records (`rows`), submission and idempotency (`submission`), claims
//! and leases (`claim`), and how a job ends (`finish`). A job's state
//! moves only through the conditional updates in these modules.

mod claim;
mod finish;
mod rows;
mod submission;

pub use claim::{Claim, ClaimOutcome};
pub use finish::CancelOutcome;
pub use submission::{NewJob, Submitted};

pub(crate) use rows::{JOB_COLUMNS, JobRow};

use facerec_core::{JobId, JobRecord};

use crate::error::QueryContext;
use crate::{Store, StoreError};

impl Store {
    pub async fn get_job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let row: Option<JobRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.0).fetch_optional(&self.pool).await.context("get job")?;
        row.map(JobRow::into_record).transpose()
    }
}
