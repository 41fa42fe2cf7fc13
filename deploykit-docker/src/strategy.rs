//! How [`ComposeTarget`](crate::ComposeTarget) replaces a service's container, and
//! what start-first requires of the service.
//!
//! * [`Strategy::StartFirst`] is the docker-rollout way: scale the service to one
//!   more container with `--no-recreate`, wait until the new container serves while
//!   the old one keeps serving, then stop and remove the old one. No request is lost.
//! * [`Strategy::StopFirst`] is what `compose up` does: the old container is stopped
//!   before the new one starts, so every deploy has a gap (measured in
//!   docs/BENCHMARKS.md).
//! * [`Strategy::Auto`] (the default) is start-first wherever the service allows it,
//!   and stop-first otherwise, with a warning that says why and what to change
//!   ([`StrategyChoice`]).
//!
//! Start-first needs two containers of the service to run at once, so it is refused
//! (before anything is touched) for a service with a fixed `container_name` or one
//! that publishes a fixed host port: [`StartFirstSettings::from_config`] reads the
//! service out of `compose config` and says why and what to do instead.
//!
//! Under `network_mode: host` both containers bind the same port in the same network
//! namespace, which works only if the app sets `SO_REUSEPORT` on its listening socket
//! (the kernel then spreads connections over both until the old one closes its
//! listener). That cannot be seen from outside: [`Strategy::Auto`] therefore keeps
//! such a service on stop-first, and an explicit [`Strategy::StartFirst`] is taken at
//! its word (an app without it fails to bind, its container never serves, and the
//! deploy fails while the old container keeps serving).

use std::str::FromStr;
use std::time::Duration;

use deploykit_core::{Error, Result};
use serde_json::Value;

/// How a release's container replaces the running one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// Start-first when `compose config` shows the service allows it (no
    /// `container_name`, no fixed host port, not `network_mode: host`), stop-first
    /// otherwise, saying why once per deploy.
    #[default]
    Auto,
    /// `compose up` re-creates the container: the old one stops before the new one
    /// starts (a gap of some seconds on every deploy). Works for every service.
    StopFirst,
    /// Start the new container next to the old one, wait until it is healthy, then
    /// stop the old one. Needs a service without `container_name` and without a
    /// fixed host port; under `network_mode: host` the app must bind with
    /// `SO_REUSEPORT`.
    StartFirst,
}

impl Strategy {
    /// The name used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Auto => "auto",
            Strategy::StopFirst => "stop_first",
            Strategy::StartFirst => "start_first",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            // Docker's kebab spelling, the config's old one, still reads.
            "auto" => Ok(Strategy::Auto),
            "stop_first" | "stop-first" => Ok(Strategy::StopFirst),
            "start_first" | "start-first" => Ok(Strategy::StartFirst),
            other => Err(Error::Invalid {
                what: "compose deploy strategy",
                value: other.chars().take(40).collect(),
                reason: "use \"auto\", \"start_first\" or \"stop_first\"".into(),
            }),
        }
    }
}

/// What start-first needs to know about the service from its resolved config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartFirstSettings {
    /// The service's `stop_grace_period` (compose's default: 10 s): how long the old
    /// container gets between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
}

/// Compose's default `stop_grace_period`.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

impl StartFirstSettings {
    /// Reads `service` out of `compose config` output (`text`: YAML from v1, JSON
    /// from v2) and refuses start-first, with what to do instead, when two containers
    /// of it cannot run at once. `location` names the project for errors.
    pub fn from_config(text: &str, service: &str, location: &str) -> Result<Self> {
        let svc = service_config(text, service, location)?;
        if let Some(obstacle) = obstacle(&svc, service) {
            return Err(
                Error::part("start-first", location, obstacle.why).with_hint(format!(
                    "{}, or set strategy = \"stop_first\"",
                    obstacle.change
                )),
            );
        }
        Self::of_service(&svc, service, location)
    }

    fn of_service(svc: &Value, service: &str, location: &str) -> Result<Self> {
        let stop_grace = match svc.get("stop_grace_period") {
            None | Some(Value::Null) => DEFAULT_STOP_GRACE,
            Some(v) => {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                parse_compose_duration(&text).ok_or_else(|| {
                    Error::part(
                        "start-first",
                        location,
                        format!("cannot read stop_grace_period {text:?} of service {service}"),
                    )
                    .with_hint("write it like 10s, 1m30s or 500ms")
                })?
            }
        };
        Ok(Self { stop_grace })
    }
}

/// The strategy a target uses for one deploy, decided from the configured
/// [`Strategy`] and the service's `compose config`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StrategyChoice {
    /// [`Strategy::StartFirst`] or [`Strategy::StopFirst`], never `Auto`.
    pub strategy: Strategy,
    /// The start-first settings, when start-first is used.
    pub start_first: Option<StartFirstSettings>,
    /// Why [`Strategy::Auto`] fell back to stop-first, and what to change for
    /// zero-downtime deploys: the warning a deploy shows once.
    pub stop_first_because: Option<String>,
}

impl StrategyChoice {
    /// Stop-first, as configured: nothing to read, nothing to say.
    pub fn stop_first() -> Self {
        Self {
            strategy: Strategy::StopFirst,
            start_first: None,
            stop_first_because: None,
        }
    }

    /// Decides `wanted` for `service` from `compose config` output (`text`).
    /// An explicit start-first the service cannot have is refused, as
    /// [`StartFirstSettings::from_config`] does; `Auto` falls back to stop-first
    /// with the reason instead.
    pub fn resolve(wanted: Strategy, text: &str, service: &str, location: &str) -> Result<Self> {
        match wanted {
            Strategy::StopFirst => Ok(Self::stop_first()),
            Strategy::StartFirst => Ok(Self {
                strategy: Strategy::StartFirst,
                start_first: Some(StartFirstSettings::from_config(text, service, location)?),
                stop_first_because: None,
            }),
            Strategy::Auto => {
                let svc = service_config(text, service, location)?;
                let obstacle = obstacle(&svc, service).or_else(|| host_network(&svc, service));
                match obstacle {
                    Some(o) => Ok(Self {
                        strategy: Strategy::StopFirst,
                        start_first: None,
                        stop_first_because: Some(format!(
                            "{location}: stop_first is used, so the service is down while its \
                             container is replaced: {}. For zero-downtime deploys, {}; to keep \
                             stop_first and silence this, set strategy = \"stop_first\"",
                            o.why, o.change
                        )),
                    }),
                    None => Ok(Self {
                        strategy: Strategy::StartFirst,
                        start_first: Some(StartFirstSettings::of_service(&svc, service, location)?),
                        stop_first_because: None,
                    }),
                }
            }
        }
    }
}

/// Why two containers of a service cannot run at once, and what to change.
struct Obstacle {
    why: String,
    change: String,
}

/// `service`'s entry in `compose config` output, or why it cannot be read.
fn service_config(text: &str, service: &str, location: &str) -> Result<Value> {
    let config: Value = serde_saphyr::from_str(text).map_err(|e| {
        Error::part(
            "start-first",
            location,
            format!("cannot read `compose config` output: {e}"),
        )
        .with_hint(
            "check that `compose config` works for the project, or set strategy = \"stop_first\"",
        )
    })?;
    config
        .get("services")
        .and_then(|s| s.get(service))
        .cloned()
        .ok_or_else(|| {
            Error::part(
                "start-first",
                location,
                format!("`compose config` has no service {service}"),
            )
            .with_hint("name a service of the project's compose files")
        })
}

/// A `container_name` or a fixed host port: only one container can have it.
fn obstacle(svc: &Value, service: &str) -> Option<Obstacle> {
    if let Some(name) = svc.get("container_name").and_then(Value::as_str) {
        return Some(Obstacle {
            why: format!(
                "start-first needs two containers of service {service} at once, but it has \
                 container_name: {name} (a name only one container can have)"
            ),
            change: "remove container_name from the service".into(),
        });
    }
    let fixed: Vec<String> = svc
        .get("ports")
        .and_then(Value::as_array)
        .map(|ports| ports.iter().filter_map(fixed_host_port).collect())
        .unwrap_or_default();
    (!fixed.is_empty()).then(|| Obstacle {
        why: format!(
            "start-first needs two containers of service {service} at once, but it \
             publishes fixed host port(s) {} that only one container can bind",
            fixed.join(", ")
        ),
        change: "put a proxy in front and publish no host port from the service (or only a \
                 container port)"
            .into(),
    })
}

/// `network_mode: host`: both containers would bind the same port, which works only
/// if the app sets `SO_REUSEPORT`, and that cannot be seen from outside.
fn host_network(svc: &Value, service: &str) -> Option<Obstacle> {
    (svc.get("network_mode").and_then(Value::as_str) == Some("host")).then(|| Obstacle {
        why: format!(
            "service {service} has network_mode: host, where a second container can bind \
             the same port only if the app sets SO_REUSEPORT"
        ),
        change: "set strategy = \"start_first\" if the app binds with SO_REUSEPORT, or \
                 move the service to a network of its own behind a proxy"
            .into(),
    })
}

/// The published host port of one `ports:` entry, if it is fixed. Short syntax:
/// `"3001"` (container port only), `"3001:3001"`, `"127.0.0.1:3001:3001/tcp"`,
/// `"127.0.0.1::3001"` (random host port); long syntax: `{published, target}`.
fn fixed_host_port(entry: &Value) -> Option<String> {
    match entry {
        Value::String(s) => {
            let spec = s.split('/').next().unwrap_or(s);
            let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
            // rsplitn: [container, host port, host ip]
            let host = parts.get(1).copied().unwrap_or("");
            (!host.is_empty() && host != "0").then(|| s.clone())
        }
        Value::Number(_) => None,
        Value::Object(map) => match map.get("published") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) if p.is_empty() || p == "0" => None,
            Some(Value::Number(n)) if n.as_u64() == Some(0) => None,
            Some(p) => {
                let p = match p {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let target = map.get("target").map(|t| t.to_string()).unwrap_or_default();
                Some(format!("{p}:{target}"))
            }
        },
        _ => None,
    }
}

/// A compose duration (`1m30s`, `10s`, `500ms`, `1.5s`, `2h`) as a [`Duration`].
pub fn parse_compose_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * factor;
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `docker-compose config` 1.29 prints (checked on the rig).
    const V1: &str = "services:
  named:
    container_name: crm-backend
    image: x
  ported:
    image: x
    ports:
    - published: 3001
      target: 3001
  fine:
    image: x
    network_mode: host
    ports:
    - target: 5000
    - 127.0.0.1::5001/udp
    stop_grace_period: 1m30s
  bound:
    image: x
    ports:
    - 127.0.0.1:4000:4000/udp
version: '2.4'
";

    fn check(text: &str, service: &str) -> std::result::Result<StartFirstSettings, String> {
        StartFirstSettings::from_config(text, service, "crm on test engine").map_err(|e| {
            let hint = match &e {
                Error::Part { hint, .. } => hint.clone().unwrap_or_default(),
                _ => Default::default(),
            };
            format!("{e} | hint: {hint}")
        })
    }

    #[test]
    fn a_container_name_is_refused_with_what_to_do() {
        let err = check(V1, "named").unwrap_err();
        assert!(err.contains("container_name: crm-backend"), "{err}");
        assert!(err.contains("stop_first"), "{err}");
    }

    #[test]
    fn fixed_host_ports_are_refused_in_long_and_short_syntax() {
        let err = check(V1, "ported").unwrap_err();
        assert!(err.contains("3001:3001") && err.contains("proxy"), "{err}");
        let err = check(V1, "bound").unwrap_err();
        assert!(err.contains("127.0.0.1:4000:4000/udp"), "{err}");
        let v2 = r#"{"services":{"web":{"ports":[{"mode":"ingress","target":80,"published":"8080","protocol":"tcp"}]}}}"#;
        assert!(check(v2, "web").unwrap_err().contains("8080:80"));
        let short = "services:\n  web:\n    ports: [\"3001:3001\"]\n";
        assert!(check(short, "web").is_err());
    }

    #[test]
    fn container_ports_random_host_ports_and_host_networking_are_allowed() {
        let ok = check(V1, "fine").unwrap();
        assert_eq!(ok.stop_grace, Duration::from_secs(90));
        let v2 = r#"{"services":{"web":{"network_mode":"host","stop_grace_period":"2s","ports":[{"target":80,"published":""}]}}}"#;
        assert_eq!(check(v2, "web").unwrap().stop_grace, Duration::from_secs(2));
        let none = "services:\n  web:\n    image: x\n";
        assert_eq!(check(none, "web").unwrap().stop_grace, DEFAULT_STOP_GRACE);
    }

    #[test]
    fn a_missing_service_or_unreadable_config_is_refused() {
        assert!(check(V1, "nope").unwrap_err().contains("no service nope"));
        assert!(check("services: [", "web").is_err());
    }

    #[test]
    fn compose_durations() {
        assert_eq!(parse_compose_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_compose_duration("1m30s"),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_compose_duration("500ms"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_compose_duration("1.5s"),
            Some(Duration::from_millis(1500))
        );
        for bad in ["", "s", "10", "10x", "-1s"] {
            assert_eq!(parse_compose_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn strategy_names_round_trip() {
        for s in [Strategy::Auto, Strategy::StopFirst, Strategy::StartFirst] {
            assert_eq!(s.as_str().parse::<Strategy>().unwrap(), s);
        }
        assert!("rolling".parse::<Strategy>().is_err());
    }

    fn auto(text: &str, service: &str) -> StrategyChoice {
        StrategyChoice::resolve(Strategy::Auto, text, service, "crm on test engine").unwrap()
    }

    #[test]
    fn auto_is_the_default_and_starts_first_where_two_containers_can_run() {
        assert_eq!(Strategy::default(), Strategy::Auto);
        let plain = "services:\n  web:\n    image: x\n    stop_grace_period: 3s\n    ports:\n    - \"3000\"\n";
        let chosen = auto(plain, "web");
        assert_eq!(chosen.strategy, Strategy::StartFirst);
        assert_eq!(chosen.stop_first_because, None);
        assert_eq!(
            chosen.start_first.unwrap().stop_grace,
            Duration::from_secs(3)
        );
    }

    #[test]
    fn auto_falls_back_to_stop_first_saying_why_and_what_to_change() {
        for (service, why, change) in [
            (
                "named",
                "container_name: crm-backend",
                "remove container_name",
            ),
            ("ported", "3001:3001", "proxy"),
            ("fine", "network_mode: host", "SO_REUSEPORT"),
        ] {
            let chosen = auto(V1, service);
            assert_eq!(chosen.strategy, Strategy::StopFirst, "{service}");
            assert_eq!(chosen.start_first, None);
            let because = chosen.stop_first_because.unwrap();
            assert!(because.contains(why), "{because}");
            assert!(because.contains(change), "{because}");
            assert!(because.contains("crm on test engine"), "{because}");
            assert!(because.contains("strategy = \"stop_first\""), "{because}");
        }
    }

    #[test]
    fn explicit_strategies_are_taken_at_their_word() {
        let stop = StrategyChoice::resolve(Strategy::StopFirst, "not even yaml: [", "web", "x");
        assert_eq!(stop.unwrap(), StrategyChoice::stop_first());
        // Host networking is the user's call (the app may set SO_REUSEPORT)...
        let start = StrategyChoice::resolve(Strategy::StartFirst, V1, "fine", "x").unwrap();
        assert_eq!(start.strategy, Strategy::StartFirst);
        // ...a container_name is not.
        assert!(StrategyChoice::resolve(Strategy::StartFirst, V1, "named", "x").is_err());
    }
}
