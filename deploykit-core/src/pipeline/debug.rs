//! `Debug` for [`Pipeline`]: which parts it has and its rules. The parts are
//! trait objects without `Debug`, so they show as present or not (probes by name).

use super::Pipeline;

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("env", &self.env)
            .field("who", &self.who)
            .field("target", &self.target.is_some())
            .field("backup", &self.backup.is_some())
            .field("migrator", &self.migrator.is_some())
            .field(
                "probes",
                &self.probes.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .field("rollback", &self.rollback.is_some())
            .field("lock", &self.lock.is_some())
            .field("gate", &self.gate.is_some())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}
