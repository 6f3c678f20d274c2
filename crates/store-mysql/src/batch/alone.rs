//! The naive baseline (`StoreOptions::group_commit` off): each call runs alone, in its own
//! transaction that waits for its row locks, concurrently with the others — what every order,
//! payment and charge did before group commit. Kept so that `mall-bench` can measure what group
//! commit is worth in the same run; the decisions are the same (the batch function, on a batch
//! of one).

use anyhow::anyhow;

use super::{Coalesced, Failed, Lane, Verdict};
use crate::MysqlStore;

impl<J, T, E> Coalesced<J, T, E>
where
    J: Send + 'static,
    T: Send + 'static,
    E: From<anyhow::Error> + Send + 'static,
{
    /// Runs `job` as a batch of one with waiting locks (retried whole on contention, like any
    /// batch), and answers it.
    pub(super) async fn alone(
        self: std::sync::Arc<Self>,
        store: MysqlStore,
        job: J,
    ) -> Result<T, E> {
        self.stats.record(1);
        match self.run_batch(&store, vec![job], Lane::Wait, &tracing::Span::current()).await {
            (_, Ok(verdicts)) => match verdicts.into_iter().next() {
                Some(Verdict::Done(outcome)) => outcome,
                Some(Verdict::Deferred(busy)) => Err(E::from(anyhow!(
                    "a lone call of {} skipped {busy} while waiting for locks",
                    self.what
                ))),
                None => Err(E::from(anyhow!("a lone call of {} got no answer", self.what))),
            },
            (_, Err(Failed { error, .. })) => {
                Err(E::from(error.context(format!("a lone call of {} failed", self.what))))
            }
        }
    }
}
