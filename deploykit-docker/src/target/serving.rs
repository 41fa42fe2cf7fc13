//! Waiting until a release's container serves, and the error that says why it
//! does not (with the container's last log lines).

use deploykit_core::{Error, Result};
use tokio::time::Instant;

use super::ComposeTarget;
use crate::engine::{ContainerState, Health};
use crate::strategy::Strategy;

impl ComposeTarget {
    /// Waits until the service's container runs `image` and is healthy (or has no
    /// HEALTHCHECK and runs); fails at once on `unhealthy` or an exited container.
    pub async fn wait_serving(&self, image: &str) -> Result<ContainerState> {
        self.wait_until_serving(image, None).await
    }

    /// Like [`wait_serving`](Self::wait_serving), for one container (`id`), never
    /// another of the service: with start-first the old container serves too.
    pub(super) async fn wait_until_serving(
        &self,
        image: &str,
        id: Option<&str>,
    ) -> Result<ContainerState> {
        let deadline = Instant::now() + self.health_deadline;
        let mut last: Option<ContainerState> = None;
        loop {
            let seen = match id {
                Some(id) => match self.engine.inspect(id).await? {
                    Some(c) => Some(c),
                    None => {
                        return Err(Error::part(
                            "activate.health",
                            self.where_(),
                            format!("the new container {id} of {image} disappeared"),
                        )
                        .with_hint("something else removed it; deploy again"))
                    }
                },
                None => self.container().await?,
            };
            if let Some(c) = seen {
                let ours = c.image == image;
                if ours && c.is_serving() {
                    return Ok(c);
                }
                let broken = ours
                    && (c.health == Some(Health::Unhealthy)
                        || matches!(c.status.as_str(), "exited" | "dead"));
                if broken {
                    return Err(self.not_serving(&c, "").await);
                }
                last = Some(c);
            }
            if Instant::now() + self.poll > deadline {
                break;
            }
            tokio::time::sleep(self.poll).await;
        }
        let why = format!("did not turn healthy within {:?}; ", self.health_deadline);
        match last {
            Some(c) => Err(self.not_serving(&c, &why).await),
            None => Err(Error::part(
                "activate.health",
                self.where_(),
                format!("{why}no container of the service exists"),
            )),
        }
    }

    pub(super) async fn not_serving(&self, c: &ContainerState, why: &str) -> Error {
        let hint = match self.strategy_in_use() {
            Strategy::StopFirst | Strategy::Auto => {
                "fix the release and deploy again; the previous release is restored by the rollback"
            }
            Strategy::StartFirst => {
                "fix the release and deploy again; the new container was removed and the \
                 previous release's container kept serving (start-first)"
            }
        };
        let logs = self.engine.log_tail(&c.id, self.log_lines).await;
        Error::part(
            "activate.health",
            self.where_(),
            format!(
                "{why}{}\n---- container output (last lines) ----\n{}\n----",
                c.describe(),
                logs.trim_end()
            ),
        )
        .with_hint(hint)
    }
}
