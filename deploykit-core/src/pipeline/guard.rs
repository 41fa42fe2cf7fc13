//! Running a part's future under a deadline and catching its panic, written once:
//! a hung or panicking part must end as a failed step (which gets undone), never as
//! a hung or aborted deploy.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;

/// Why a guarded future produced no value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unguarded {
    /// It panicked, with this message.
    Panicked(String),
    /// It did not finish within the deadline.
    TimedOut,
}

/// Runs `work` for at most `limit`, turning a panic into [`Unguarded::Panicked`].
pub(crate) async fn guarded<T>(
    limit: Duration,
    work: impl Future<Output = T>,
) -> std::result::Result<T, Unguarded> {
    match tokio::time::timeout(limit, AssertUnwindSafe(work).catch_unwind()).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panic)) => Err(Unguarded::Panicked(panic_message(&panic))),
        Err(_) => Err(Unguarded::TimedOut),
    }
}

/// The text of a caught panic, if it carried one.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn value_panic_and_deadline_each_come_back_as_data() {
        let limit = Duration::from_millis(50);
        assert_eq!(guarded(limit, async { 7 }).await, Ok(7));
        assert_eq!(
            guarded(limit, async { panic!("boom") }).await,
            Err::<(), _>(Unguarded::Panicked("boom".into()))
        );
        assert_eq!(
            guarded(limit, std::future::pending::<()>()).await,
            Err(Unguarded::TimedOut)
        );
    }
}
