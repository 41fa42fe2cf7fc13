//! The service spec as deploykit changes it: pure functions, so what an
//! activation writes and what its undo puts back are tested without a swarm.
//!
//! A release switch writes, in the SAME versioned update that changes the image,
//! the exact spec it replaces into the service's own labels. The record and the
//! switch are then one write: no crash can leave a switched service without its
//! record, or a record of a switch that never happened, and the record lives with
//! the service (in the swarm's raft store, readable through any manager) instead of
//! on the machine that ran the deploy.

use bollard::models::{
    ServiceSpec, ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum,
};
use deploykit_core::ReleaseId;

/// Service label: the release the spec runs.
pub const RELEASE_LABEL: &str = "deploykit.release";
/// Service label: the release live before this spec was written ("" if the spec
/// before it ran no deploykit release, e.g. a stack deployed by hand).
pub const PREVIOUS_RELEASE_LABEL: &str = "deploykit.previous-release";
/// Service label: the exact spec before this one, as the engine's JSON.
pub const PREVIOUS_SPEC_LABEL: &str = "deploykit.previous-spec";

/// The image reference without a `@sha256:…` digest the manager may have pinned.
pub fn without_digest(image: &str) -> &str {
    image.split_once('@').map_or(image, |(name, _)| name)
}

/// The image the spec's tasks run, without a pinned digest.
pub fn image_of(spec: &ServiceSpec) -> Option<&str> {
    spec.task_template
        .as_ref()?
        .container_spec
        .as_ref()?
        .image
        .as_deref()
        .map(without_digest)
}

/// The release a spec runs: the tag of its image in `repo`, if it is one (an
/// alias such as `latest` names no release).
pub fn release_of(spec: &ServiceSpec, repo: &str) -> Option<ReleaseId> {
    let tag = image_of(spec)?.strip_prefix(repo)?.strip_prefix(':')?;
    if crate::target::ALIAS_TAGS.contains(&tag) {
        return None;
    }
    ReleaseId::parse(tag).ok()
}

/// The replicas of a replicated service (`None` for global mode).
pub fn replicas(spec: &ServiceSpec) -> Option<i64> {
    spec.mode.as_ref()?.replicated.as_ref()?.replicas
}

/// A label of the spec.
pub fn label<'a>(spec: &'a ServiceSpec, key: &str) -> Option<&'a str> {
    spec.labels.as_ref()?.get(key).map(String::as_str)
}

/// What a release switch recorded about the spec before it: the release that ran
/// then (`None`: not a deploykit release) and that exact spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The release live before the switch.
    pub previous: Option<ReleaseId>,
    /// The spec before the switch, exactly as the engine returned it.
    pub spec: ServiceSpec,
}

/// The record a switch left in `spec`'s labels, if any (and if readable).
pub fn record_of(spec: &ServiceSpec) -> Option<Record> {
    let previous = label(spec, PREVIOUS_RELEASE_LABEL)?;
    let json = label(spec, PREVIOUS_SPEC_LABEL)?;
    let spec = serde_json::from_str(json).ok()?;
    let previous = match previous {
        "" => None,
        id => Some(ReleaseId::parse(id).ok()?),
    };
    Some(Record { previous, spec })
}

/// `spec` without deploykit's record labels: what a record stores (records never
/// nest, so the labels do not grow with every deploy) and what a restore writes.
pub fn without_record(spec: &ServiceSpec) -> ServiceSpec {
    let mut spec = spec.clone();
    if let Some(labels) = spec.labels.as_mut() {
        labels.remove(PREVIOUS_RELEASE_LABEL);
        labels.remove(PREVIOUS_SPEC_LABEL);
    }
    spec
}

/// The spec that switches `current` (running `current_release`, if any) to
/// `image` of `release`: only the image changes, plus the release labels, the
/// record of `current`, and an update config that starts each new task before
/// stopping an old one and pauses (never continues, never rolls back on its own)
/// when a new task fails, so deploykit decides what happens next.
pub fn switched(
    current: &ServiceSpec,
    current_release: Option<&ReleaseId>,
    image: &str,
    release: &ReleaseId,
) -> ServiceSpec {
    let recorded = without_record(current);
    let mut spec = recorded.clone();
    let container = spec
        .task_template
        .get_or_insert_with(Default::default)
        .container_spec
        .get_or_insert_with(Default::default);
    container.image = Some(image.to_string());
    let update = spec
        .update_config
        .get_or_insert_with(ServiceSpecUpdateConfig::default);
    update.order = Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST);
    update.failure_action = Some(ServiceSpecUpdateConfigFailureActionEnum::PAUSE);
    let labels = spec.labels.get_or_insert_with(Default::default);
    labels.insert(RELEASE_LABEL.into(), release.to_string());
    labels.insert(
        PREVIOUS_RELEASE_LABEL.into(),
        current_release.map(ToString::to_string).unwrap_or_default(),
    );
    labels.insert(
        PREVIOUS_SPEC_LABEL.into(),
        serde_json::to_string(&recorded).expect("a service spec serialises"),
    );
    spec
}

/// `spec` scaled to no replicas: the undo of a first deploy with nothing to go
/// back to. `None` for a global service, which cannot be scaled.
pub fn scaled_to_zero(spec: &ServiceSpec) -> Option<ServiceSpec> {
    let mut spec = spec.clone();
    let replicated = spec.mode.as_mut()?.replicated.as_mut()?;
    replicated.replicas = Some(0);
    Some(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::TaskSpecContainerSpec;
    use bollard::models::{ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec};

    fn spec(image: &str, env: &[&str], replicas: i64) -> ServiceSpec {
        ServiceSpec {
            name: Some("shop_web".into()),
            labels: Some([("com.docker.stack.namespace".to_string(), "shop".to_string())].into()),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(image.into()),
                    env: Some(env.iter().map(|s| s.to_string()).collect()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated {
                    replicas: Some(replicas),
                }),
                ..Default::default()
            }),
            update_config: Some(ServiceSpecUpdateConfig {
                parallelism: Some(2),
                order: Some(ServiceSpecUpdateConfigOrderEnum::STOP_FIRST),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn id(s: &str) -> ReleaseId {
        ReleaseId::parse(s).unwrap()
    }

    #[test]
    fn a_switch_changes_only_the_image_and_records_the_exact_spec_it_replaces() {
        let v1 = spec("shop/web:v1@sha256:abc", &["A=1"], 3);
        let v2 = switched(&v1, Some(&id("v1")), "shop/web:v2", &id("v2"));
        assert_eq!(image_of(&v2), Some("shop/web:v2"));
        assert_eq!(release_of(&v2, "shop/web"), Some(id("v2")));
        assert_eq!(replicas(&v2), Some(3));
        let container = v2.task_template.as_ref().unwrap().container_spec.as_ref();
        assert_eq!(container.unwrap().env, Some(vec!["A=1".to_string()]));
        let update = v2.update_config.as_ref().unwrap();
        assert_eq!(
            update.order,
            Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST)
        );
        assert_eq!(
            update.failure_action,
            Some(ServiceSpecUpdateConfigFailureActionEnum::PAUSE)
        );
        assert_eq!(update.parallelism, Some(2), "the rest of the config stays");
        assert_eq!(label(&v2, "com.docker.stack.namespace"), Some("shop"));

        let record = record_of(&v2).expect("the switch records what it replaced");
        assert_eq!(record.previous, Some(id("v1")));
        assert_eq!(record.spec, v1, "the record is the exact previous spec");
    }

    #[test]
    fn records_never_nest_so_labels_stay_small_over_many_deploys() {
        let mut current = spec("shop/web:v0", &[], 1);
        let mut previous = None;
        for n in 1..20 {
            let release = id(&format!("v{n}"));
            current = switched(
                &current,
                previous.as_ref(),
                &format!("shop/web:{release}"),
                &release,
            );
            previous = Some(release);
        }
        let record = record_of(&current).unwrap();
        assert_eq!(record.previous, Some(id("v18")));
        assert!(
            record_of(&record.spec).is_none(),
            "a record holds no record"
        );
        assert!(label(&current, PREVIOUS_SPEC_LABEL).unwrap().len() < 2_000);
    }

    #[test]
    fn a_spec_deployed_by_hand_is_recorded_as_no_release() {
        let by_hand = spec("shop/web:latest", &[], 1);
        assert_eq!(release_of(&by_hand, "shop/web"), None);
        let v1 = switched(&by_hand, None, "shop/web:v1", &id("v1"));
        let record = record_of(&v1).unwrap();
        assert_eq!(record.previous, None);
        assert_eq!(record.spec, by_hand);
    }

    #[test]
    fn an_image_of_another_repository_is_no_release() {
        let other = spec("shop/webber:v1", &[], 1);
        assert_eq!(release_of(&other, "shop/web"), None);
        assert_eq!(scaled_to_zero(&other).and_then(|s| replicas(&s)), Some(0));
    }
}
